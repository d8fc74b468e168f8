import Foundation
import Hub
import Hummingbird
import HummingbirdCore
import NIOHTTP1
import Logging
import MediaCore
import NIOCore
import ServiceLifecycle

/// Connects the domain to the hub: every persisted change is broadcast on its STOMP topic or
/// pushed to a user's bell sockets through the `HubBroker` (never to the `Hub` directly, so a
/// multi-node broker reaches every node), and the WebSocket routes are mounted.
struct RealtimeWiring: Sendable {
    let stomp: STOMPEndpoint
    let bell: SocketIOEndpoint
    /// The bell's Engine.IO long-polling transport and its upgrade to WebSocket.
    let bellPolling: EngineIOPolling
    /// SockJS's HTTP transports over `stomp` (`SockJSHTTPRoutes`).
    let sockJS: SockJSHTTPTransport
    let corsOrigins: [String]

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json<T: Encodable>(_ value: T) -> ByteBuffer {
        ByteBuffer(bytes: (try? encoder.encode(value)) ?? Data("null".utf8))
    }

    static func makeHub(configuration: LiveHubConfiguration, metrics: LiveHubMetrics) -> Hub {
        Hub(
            configuration: HubConfiguration(
                maxConnectionsPerUser: configuration.wsMaxConnectionsPerUser > 0 ? configuration.wsMaxConnectionsPerUser : nil,
                maxInboundBytes: configuration.wsMaxInboundBytes,
                history: HubHistoryConfiguration(
                    maxEntriesPerTopic: configuration.hubHistorySize, ttl: configuration.hubHistoryTTL,
                    maxTopics: configuration.hubHistoryMaxTopics, maxBytes: configuration.hubHistoryMaxBytes),
                historyTopicPrefix: "/topic/live/"),
            metricsFactory: metrics.factory)
    }

    /// `/topic/live/{roomId}/viewers`: what `ViewerTracker` announces.
    static func announceViewers(through broker: any HubBroker) -> ViewerTracker.Announce {
        { roomId, count, peak in
            await broker.publish(topic: LiveDestination.topic(roomId, .viewers), payload: json(ViewerCountMessage(roomId: roomId, count: count, peak: peak)))
        }
    }

    // MARK: The domain's event sinks (given to each service when it is made)

    /// A room's status on `/topic/live/{id}/status` and in its replay timeline (issue 21); what was
    /// kept per room goes when it ends (issue 17: its chat history; `RoomService` clears its
    /// viewers); the owner's bell when it goes live.
    static func roomEvents(
        broker: any HubBroker, live: LiveRoomService, notifications: NotificationService, streams: StreamRegistry,
        timeline: TimelineRecorder? = nil
    ) -> RoomEvents {
        var events = RoomEvents()
        events.statusChanged = { status, room, wentLive in
            await broker.publish(topic: LiveDestination.topic(room.id, .status), payload: json(status))
            await timeline?.statusChanged(status)
            if room.status == .ended {
                await live.roomEnded(room.id)
            }
            if wentLive {
                _ = try? await notifications.notify(
                    userId: room.shopOwnerId, type: "LIVE_STARTED", title: "You are live", body: "\"\(room.title)\" is live now.")
            }
        }
        events.streamEnded = { roomId in streams.end(roomId: roomId) }
        return events
    }

    /// Products and chat on their room topics; each order on the owner's bell; features, pins and
    /// order toasts in the replay timeline (issue 21; chat lines are read from `live_chat`).
    static func liveRoomEvents(broker: any HubBroker, notifications: NotificationService, timeline: TimelineRecorder? = nil) -> LiveRoomEvents {
        var events = LiveRoomEvents()
        events.productsChanged = { roomId, products in
            await broker.publish(topic: LiveDestination.topic(roomId, .product), payload: json(products))
            await timeline?.productsChanged(roomId: roomId, products: products)
        }
        events.chatPosted = { chat, seq in
            // The chat topic's offsets are the rows' `seq`s, so recovery reads what was missed
            // from `live_chat` (`ChatTopicLog`).
            await broker.publish(
                topic: LiveDestination.topic(chat.liveRoomId, .chat), payload: json(chat), contentType: "application/json",
                offset: seq.flatMap { $0 > 0 ? UInt64($0) : nil })
            // A posted line is never pinned; `LiveRoomService.pin` announces the line it pinned.
            if chat.isPinned { await timeline?.chatPinned(chat) }
        }
        // Issue 22: a moderator's delete, `{"type":"DELETED","id"}` on the chat topic.
        // Its offset is the `seq` of the DELETED row, so recovery replays the delete in order.
        events.chatDeleted = { roomId, chatId, tombstoneSeq in
            await broker.publish(
                topic: LiveDestination.topic(roomId, .chat), payload: ChatDeletedMessage.payload(chatId), contentType: "application/json",
                offset: tombstoneSeq > 0 ? UInt64(tombstoneSeq) : nil)
        }
        events.orderApplied = { room, order in
            await timeline?.orderApplied(order)
            let what = order.productName ?? "a product"
            _ = try? await notifications.notify(
                userId: room.shopOwnerId, type: "LIVE_ORDER", title: "New order in \"\(room.title)\"",
                body: "\(order.username ?? "A viewer") bought \(what) (\(amountText(order.amount))).")
        }
        return events
    }

    /// Every bell change goes to every tab of the user as the event itself, then the fresh count.
    static func bellPush(broker: any HubBroker) -> NotificationService.BellPush {
        { userId, event in
            let unread: Int
            switch event {
            case .created(let notification, let count):
                unread = count
                await broker.sendToUser(userId: userId, event: "notification:new", payload: json(NewNotificationMessage(notification, unreadCount: count)))
            case .read(let id, let count):
                unread = count
                await broker.sendToUser(userId: userId, event: "notification:updated", payload: json(NotificationUpdatedMessage(action: "read", notificationId: id, unreadCount: count)))
            case .readAll(let count):
                unread = count
                await broker.sendToUser(userId: userId, event: "notification:updated", payload: json(NotificationUpdatedMessage(action: "read-all", notificationId: nil, unreadCount: count)))
            }
            await broker.sendToUser(userId: userId, event: "unreadCount:updated", json: #"{"count":\#(unread)}"#)
        }
    }

    // MARK: The endpoints

    /// The STOMP and Socket.IO endpoints over the domain (their backends call the services).
    static func make(
        hub: Hub, broker: any HubBroker, viewers: ViewerTracker,
        rooms: RoomService, live: LiveRoomService, notifications: NotificationService, verifier: JWTVerifier,
        configuration: LiveHubConfiguration, webSocketsPerAddress: ConnectionsPerAddress? = nil, logger: Logger
    ) -> RealtimeWiring {
        let authenticator = JWTHubAuthenticator(verifier: verifier, clock: hub.clock)
        let reactions = ReactionAggregator(
            window: configuration.reactionWindow, maxRooms: configuration.reactionMaxRooms, perSecond: configuration.reactionsPerSecond,
            clock: hub.clock
        ) { roomId, payload in
            await broker.publish(topic: LiveDestination.topic(roomId, .reactions), payload: payload)
        }
        let stomp = STOMPEndpoint(
            hub: hub, backend: LiveRoomHubBackend(rooms: rooms, live: live, viewers: viewers, reactions: reactions, logger: logger),
            authenticator: authenticator,
            configuration: STOMPConfiguration(
                connectTimeout: configuration.stompConnectTimeout, maxSockJSMessageSize: configuration.sockJSMaxMessageBytes,
                maxSubscriptions: configuration.wsMaxSubscriptions, maxRecoveredMessages: configuration.recoveryMaxMessages,
                // Reactions have their own limit (`LIVEHUB_REACTIONS_PER_SECOND`), not the chat's.
                separatelyLimitedSendSuffixes: ["/react"]))
        let bell = SocketIOEndpoint(
            hub: hub, backend: BellHubBackend(notifications: notifications, broker: broker, replayMax: configuration.bellReplayMax, logger: logger), authenticator: authenticator,
            configuration: SocketIOConfiguration(
                pingInterval: Int(configuration.socketIOPingInterval / .milliseconds(1)),
                pingTimeout: Int(configuration.socketIOPingTimeout / .milliseconds(1)),
                maxPayload: configuration.socketIOMaxPayload,
                connectTimeout: configuration.socketIOConnectTimeout,
                // Clients that connect first and authenticate after send `AUTH {token}` (DESIGN.md).
                missingToken: .requireAuthEvent(timeout: configuration.socketIOAuthTimeout)))
        // Long-polling sessions count against the same per-address limit as WebSockets.
        let polling = EngineIOPolling(
            endpoint: bell, limits: .init(maxSessions: configuration.socketIOMaxPollingSessions), perAddress: webSocketsPerAddress)
        // A SockJS HTTP session counts against the per-address WebSocket limit, as its WebSocket would.
        let admission = webSocketsPerAddress.map { counter in
            SockJSHTTPAdmission(limitDescription: "open WebSockets and SockJS sessions", acquire: counter.acquire, release: counter.release)
        }
        let sockJS = SockJSHTTPTransport(
            endpoint: stomp,
            configuration: SockJSHTTPConfiguration(
                disconnectDelay: configuration.sockJSDisconnectDelay, streamBytesLimit: configuration.sockJSStreamBytes,
                maxSessions: configuration.sockJSMaxSessions),
            admission: admission, logger: logger)
        return RealtimeWiring(stomp: stomp, bell: bell, bellPolling: polling, sockJS: sockJS, corsOrigins: configuration.corsOrigins)
    }

    /// An order amount for the owner's bell: `900` for a whole amount, `12.5` otherwise. Never
    /// converts an out-of-range double to an integer (that traps: issue 17 §6, found by schemathesis).
    static func amountText(_ amount: Double) -> String {
        if let whole = Int64(exactly: amount) { return String(whole) }
        return String(amount)
    }

    /// SockJS's `GET /ws/live/info` and its HTTP transports (`SockJSHTTPRoutes`, their own CORS),
    /// and the bell's Engine.IO long-polling: `GET` / `POST /socket.io/?EIO=4&transport=polling`
    /// (`EngineIOPolling`; CORS is the router's middleware). The WebSocket endpoints are
    /// `decideUpgrade`'s.
    func addRoutes(router: Router<LiveHubRequestContext>) {
        SockJSHTTPRoutes(transport: self.sockJS, allowedOrigins: self.corsOrigins).add(to: router)
        let polling = self.bellPolling
        router.get("socket.io") { request, context -> Response in
            let address = ConnectionsPerAddress.key(for: context.remoteAddress)
            return Self.response(await polling.get(query: request.uri.queryDictionary, address: address, logger: context.logger))
        }
        router.post("socket.io") { request, context -> Response in
            let query = request.uri.queryDictionary
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: polling.maxPayload)
            } catch {
                return Self.response(polling.payloadTooLarge(query: query))
            }
            return Self.response(await polling.post(query: query, body: body, logger: context.logger))
        }
    }

    static func response(_ answer: EngineIOPolling.Answer) -> Response {
        Response(
            status: .init(code: answer.status),
            headers: [.contentType: answer.contentType, .cacheControl: "no-store"],
            body: .init(byteBuffer: answer.body))
    }

    /// The WebSocket endpoints (the Server's `LiveHubHTTPChannel` asks on every upgrade request):
    /// - `/ws/live` and `/ws/live/websocket`: STOMP over raw WebSocket frames;
    /// - `/ws/live/{server}/{session}/websocket`: STOMP over SockJS's WebSocket transport;
    /// - `/socket.io/?EIO=4&transport=websocket[&sid=X]`: the bell (Engine.IO v4 handshake checked
    ///   first, refused with engine.io's JSON error and status 400 otherwise); with `sid`, the
    ///   upgrade of that long-polling session (`EngineIOPolling`).
    ///
    /// STOMP offers the subprotocol it prefers of those offered (`v12.stomp`, …). A `token` query
    /// parameter is kept for STOMP's CONNECT (a CONNECT header wins). Any other path: 404.
    func decideUpgrade(_ head: HTTPRequestHead) -> WebSocketUpgradeDecision {
        let uri = URI(head.uri)
        let path = uri.path
        let query = uri.queryDictionary
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let (stomp, bellPolling) = (self.stomp, self.bellPolling)
        func stompUpgrade(_ framing: STOMPFraming) -> WebSocketUpgradeDecision {
            var headers = HTTPHeaders()
            if let chosen = STOMPSubprotocol.negotiate(offered: head.headers["Sec-WebSocket-Protocol"]) {
                headers.add(name: "Sec-WebSocket-Protocol", value: chosen)
            }
            let token = query["token"]
            return .upgrade(headers) { channel, logger in
                stomp.attach(to: channel, framing: framing, queryToken: token, logger: logger)
            }
        }
        switch segments.count {
        case 2 where segments == ["ws", "live"], 3 where segments == ["ws", "live", "websocket"]:
            return stompUpgrade(.raw)
        case 5 where segments[0] == "ws" && segments[1] == "live" && segments[4] == "websocket":
            return stompUpgrade(.sockJS)
        case 1 where segments[0] == "socket.io":
            // Without `sid` a WebSocket-only session; with one, the upgrade of a long-polling session.
            switch bellPolling.upgradeVerdict(query: query) {
            case .reject(let rejection):
                return .reject(.init(code: rejection.status), contentType: "application/json", body: rejection.body)
            case .accept(let attach):
                return .upgrade(HTTPHeaders(), attach: attach)
            }
        default:
            return .reject(.notFound, contentType: "text/plain; charset=utf-8", body: "no WebSocket endpoint at \(path)\n")
        }
    }

}

/// The per-address WebSocket count admits long-polling sessions too.
extension ConnectionsPerAddress: HubAddressAdmission {}

/// Closes every hub connection politely on shutdown (before the database closes).
struct HubService: Service {
    let hub: Hub

    func run() async throws {
        try? await gracefulShutdown()
        await hub.shutdown()
    }
}

/// `/topic/live/{roomId}/viewers`.
struct ViewerCountMessage: Codable, Sendable {
    var roomId: String
    var count: Int
    var peak: Int
}

/// `/topic/live/{roomId}/chat`: a line a moderator deleted (issue 22 contract).
/// Written as exactly `{"type":"DELETED","id":"…"}` (that key order).
enum ChatDeletedMessage {
    static func payload(_ chatId: String) -> ByteBuffer {
        let id = (try? RealtimeWiring.encoder.encode(chatId)).flatMap { String(data: $0, encoding: .utf8) } ?? "\"\""
        return ByteBuffer(string: #"{"type":"DELETED","id":"# + id + "}")
    }
}

/// `notification:new` (DESIGN.md).
struct NewNotificationMessage: Codable, Sendable {
    var notificationId: String
    var userId: String
    var type: String
    var title: String
    var body: String?
    var createdAt: String
    var unreadCount: Int

    init(_ notification: NotificationView, unreadCount: Int) {
        notificationId = notification.id
        userId = notification.userId
        type = notification.type
        title = notification.title
        body = notification.body
        createdAt = notification.createdAt
        self.unreadCount = unreadCount
    }
}

/// `notification:updated` (DESIGN.md).
struct NotificationUpdatedMessage: Codable, Sendable {
    var action: String
    var notificationId: String?
    var unreadCount: Int
}
