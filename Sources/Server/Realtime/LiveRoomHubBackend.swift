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
            return .refused(code: "unknown-destination", message: "send to /app/live/{roomId}/chat|join|leave")
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
        }
    }

    func connectionClosed(_ connection: HubConnectionContext) async {
        await viewers.leaveAll(connection: connection.connectionId)
    }
}
