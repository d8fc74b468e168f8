import Hub
import Logging
import NIOCore

/// The live-room domain behind the STOMP endpoint: who may subscribe where, and what `SEND`s to
/// `/app/live/{roomId}/…` do (DESIGN.md "Live room hub"). Refusals keep the connection open; the
/// hub tells the client on `/user/queue/errors` (and in a RECEIPT when one was asked for).
struct LiveRoomHubBackend: LiveRoomBackend {
    let rooms: RoomService
    let live: LiveRoomService
    let viewers: ViewerTracker
    /// Sums reactions per room and window (nil: reactions refused).
    var reactions: ReactionAggregator? = nil
    /// Whether a room takes reactions, remembered a second (not one store read per reaction).
    var reactionRooms = ReactionRoomCheck(limit: 10_000)
    let logger: Logger

    func canSubscribe(destination: String, connection: HubConnectionContext) async -> SubscribeDecision {
        guard case .topic(let roomId, _) = LiveDestination(destination) else {
            return .refuse(code: "unknown-destination", message: "subscribe to /topic/live/{roomId}/chat|product|status|viewers")
        }
        guard (try? await rooms.room(id: roomId)) != nil else {
            return .refuse(code: "unknown-room", message: "no live room \(roomId)")
        }
        return .allow
    }

    func handleSend(destination: String, body: ByteBuffer, contentType: String?, connection: HubConnectionContext) async -> SendOutcome {
        guard case .app(let roomId, let action) = LiveDestination(destination) else {
            return .refused(code: "unknown-destination", message: "send to /app/live/{roomId}/chat|join|leave|react")
        }
        switch action {
        case .chat:
            let payload: JSONValue
            do {
                payload = try JSONValue(parsing: body.readableBytesView, maxDepth: 8)
            } catch {
                return .refused(code: "invalid-json", message: "the chat body must be JSON {\"message\": \"…\"}")
            }
            guard let message = payload["message"]?.stringValue else {
                return .refused(code: "invalid-payload", message: "the chat body needs a string \"message\"")
            }
            do {
                _ = try await live.postChat(roomId: roomId, user: connection.identity, message: message)
                return .accepted
            } catch {
                return .refused(code: error.code.lowercased().replacingOccurrences(of: "_", with: "-"), message: error.description)
            }
        case .join:
            guard let room = try? await rooms.room(id: roomId) else {
                return .refused(code: "unknown-room", message: "no live room \(roomId)")
            }
            guard room.status != .ended else { return .refused(code: "room-ended", message: "the live room has ended") }
            await viewers.join(roomId: roomId, connection: connection.connectionId)
            await live.prefetchProfile(connection.identity)
            return .accepted
        case .leave:
            await viewers.leave(roomId: roomId, connection: connection.connectionId)
            return .accepted
        case .react:
            return await react(roomId: roomId, body: body, connection: connection)
        }
    }

    /// `{"type":"heart"|"fire"|"clap"|"laugh"|"wow"}` into the room's current window
    /// (`ReactionAggregator`). Not chat: mutes and bans do not stop it. Over the sender's rate
    /// (`LIVEHUB_REACTIONS_PER_SECOND`, per user, guests per connection) it is refused with
    /// `rate-limited` and not counted.
    private func react(roomId: String, body: ByteBuffer, connection: HubConnectionContext) async -> SendOutcome {
        guard let reactions else { return .refused(code: "unknown-destination", message: "reactions are off") }
        let allowed = ReactionAggregator.types.joined(separator: "|")
        guard let payload = try? JSONValue(parsing: body.readableBytesView, maxDepth: 4), let type = payload["type"]?.stringValue else {
            return .refused(code: "invalid-payload", message: "the reaction body must be JSON {\"type\": \"\(allowed)\"}")
        }
        guard ReactionAggregator.types.contains(type) else {
            return .refused(code: "invalid-reaction", message: "unknown reaction type; use one of \(allowed)")
        }
        let open: Bool
        if let known = reactionRooms.known(roomId) {
            open = known
        } else {
            guard let room = try? await rooms.room(id: roomId) else { return .refused(code: "unknown-room", message: "no live room \(roomId)") }
            open = room.status != .ended
            reactionRooms.remember(roomId, open: open)
        }
        guard open else { return .refused(code: "room-ended", message: "the live room has ended (or does not exist)") }
        let sender = connection.identity.map { "user:\($0.userId)" } ?? "guest:\(connection.connectionId)"
        switch reactions.add(roomId: roomId, type: type, senderKey: sender) {
        case nil:
            return .accepted
        case .rateLimited?:
            return .refused(code: "rate-limited", message: "too many reactions (limit \(Int(reactions.limiter.limit.ratePerSecond))/s)")
        case .tooManyRooms?:
            return .refused(code: "busy", message: "too many rooms are reacting right now; try again")
        case .unknownType?:
            return .refused(code: "invalid-reaction", message: "unknown reaction type; use one of \(allowed)")
        }
    }

    func connectionClosed(_ connection: HubConnectionContext) async {
        await viewers.leaveAll(connection: connection.connectionId)
    }

    /// The chat topic recovers from `live_chat` (its offsets are the rows' `seq`s); the other room
    /// topics from the hub's history ring.
    func recoveryLog(destination: String) -> (any HubTopicLog)? {
        guard case .topic(let roomId, .chat) = LiveDestination(destination) else { return nil }
        return ChatTopicLog(live: live, roomId: roomId)
    }
}

/// The chat topic's durable log: `live_chat` rows with `seq` above the offset (`LiveRoomService.chatLog`).
struct ChatTopicLog: HubTopicLog {
    let live: LiveRoomService
    let roomId: String

    func messages(after offset: UInt64, limit: Int) async -> HubTopicLogRead {
        guard offset <= UInt64(Int64.max), limit < Int.max else { return .unavailable }
        guard let log = await live.chatLog(roomId: roomId, afterSeq: Int64(offset), limit: limit + 1) else { return .unavailable }
        if log.rows > limit { return .tooMany }
        return .messages(log.messages.map { entry in
            let payload: ByteBuffer
            switch entry.message {
            case .line(let view): payload = RealtimeWiring.json(view)
            case .deleted(let id): payload = ChatDeletedMessage.payload(id)
            }
            return HubStreamPosition.Offset(offset: UInt64(max(entry.seq, 0)), payload: payload)
        })
    }
}
