import Foundation
import Hub
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

/// Connects the domain to the hub: every persisted change is broadcast on its STOMP topic or
/// pushed to a user's bell sockets, and the WebSocket routes are mounted.
struct RealtimeWiring: Sendable {
    let hub: Hub
    let stomp: STOMPEndpoint
    let bell: SocketIOEndpoint
    let viewers: ViewerTracker

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json<T: Encodable>(_ value: T) -> ByteBuffer {
        ByteBuffer(bytes: (try? encoder.encode(value)) ?? Data("null".utf8))
    }

    static func make(
        rooms: RoomService, live: LiveRoomService, notifications: NotificationService, jwt: JWTCodec,
        metrics: LiveHubMetrics, configuration: LiveHubConfiguration, logger: Logger
    ) async -> RealtimeWiring {
        let hub = Hub(metricsFactory: metrics.factory)
        let viewers = ViewerTracker { roomId, count in
            let peak = await rooms.setViewerCount(count, roomId: roomId)
            hub.publish(topic: LiveDestination.topic(roomId, .viewers), payload: json(ViewerCountMessage(roomId: roomId, count: count, peak: peak)))
        }
        let authenticator = JWTHubAuthenticator(jwt: jwt)
        let stomp = STOMPEndpoint(
            hub: hub, backend: LiveRoomHubBackend(rooms: rooms, live: live, viewers: viewers, logger: logger),
            authenticator: authenticator)
        let bell = SocketIOEndpoint(
            hub: hub, backend: BellHubBackend(notifications: notifications, hub: hub, logger: logger), authenticator: authenticator,
            configuration: SocketIOConfiguration(
                pingInterval: Int(configuration.socketIOPingInterval / .milliseconds(1)),
                pingTimeout: Int(configuration.socketIOPingTimeout / .milliseconds(1)),
                // Clients that connect first and authenticate after send `AUTH {token}` (DESIGN.md).
                missingToken: .requireAuthEvent(timeout: configuration.socketIOAuthTimeout)))

        await rooms.onStatusChange { status, room, wentLive in
            hub.publish(topic: LiveDestination.topic(room.id, .status), payload: json(status))
            if wentLive {
                _ = try? await notifications.notify(
                    userId: room.shopOwnerId, type: "LIVE_STARTED", title: "You are live", body: "\"\(room.title)\" is live now.")
            }
        }
        var events = LiveRoomEvents()
        events.productsChanged = { roomId, products in
            hub.publish(topic: LiveDestination.topic(roomId, .product), payload: json(products))
        }
        events.chatPosted = { chat in
            hub.publish(topic: LiveDestination.topic(chat.liveRoomId, .chat), payload: json(chat))
        }
        events.orderApplied = { room, order in
            let what = order.productName ?? "a product"
            let amount = order.amount.truncatingRemainder(dividingBy: 1) == 0 ? String(Int64(order.amount)) : String(order.amount)
            _ = try? await notifications.notify(
                userId: room.shopOwnerId, type: "LIVE_ORDER", title: "New order in \"\(room.title)\"",
                body: "\(order.username ?? "A viewer") bought \(what) (\(amount)).")
        }
        await live.setEvents(events)
        await notifications.onEvent { userId, event in
            // Every change goes to every tab of the user as the event itself, then the fresh count.
            let unread: Int
            switch event {
            case .created(let notification, let count):
                unread = count
                hub.sendToUser(userId: userId, event: "notification:new", payload: json(NewNotificationMessage(notification, unreadCount: count)))
            case .read(let id, let count):
                unread = count
                hub.sendToUser(userId: userId, event: "notification:updated", payload: json(NotificationUpdatedMessage(action: "read", notificationId: id, unreadCount: count)))
            case .readAll(let count):
                unread = count
                hub.sendToUser(userId: userId, event: "notification:updated", payload: json(NotificationUpdatedMessage(action: "read-all", notificationId: nil, unreadCount: count)))
            }
            hub.sendToUser(userId: userId, event: "unreadCount:updated", json: #"{"count":\#(unread)}"#)
        }
        return RealtimeWiring(hub: hub, stomp: stomp, bell: bell, viewers: viewers)
    }

    /// `/ws/live` (+ SockJS `info`, raw `websocket` and framed `{server}/{session}/websocket`) and
    /// `/socket.io/`.
    func addRoutes(router: Router<LiveHubRequestContext>, webSocketRouter: Router<LiveHubRequestContext>) {
        router.get("ws/live/info") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=UTF-8", .cacheControl: "no-store, no-cache, must-revalidate, max-age=0"],
                body: .init(byteBuffer: ByteBuffer(string: SockJSFraming.infoJSON())))
        }
        let stomp = self.stomp
        let stompUpgrade: @Sendable (Request, LiveHubRequestContext) async throws -> RouterShouldUpgrade = { request, _ in
            let offered = request.headers[values: .secWebSocketProtocol]
            if let chosen = STOMPSubprotocol.negotiate(offered: offered) {
                return .upgrade([.secWebSocketProtocol: chosen])
            }
            return .upgrade([:])
        }
        for path in ["ws/live", "ws/live/websocket"] {
            webSocketRouter.ws(RouterPath(path), shouldUpgrade: stompUpgrade) { inbound, outbound, context in
                let token = context.request.uri.queryParameters["token"].map(String.init)
                await stomp.serve(
                    inbound: inbound, outbound: outbound, framing: .raw, queryToken: token, channel: context.requestContext.channel,
                    logger: context.logger)
            }
        }
        webSocketRouter.ws("ws/live/:server/:session/websocket", shouldUpgrade: stompUpgrade) { inbound, outbound, context in
            let token = context.request.uri.queryParameters["token"].map(String.init)
            await stomp.serve(
                inbound: inbound, outbound: outbound, framing: .sockJS, queryToken: token, channel: context.requestContext.channel,
                logger: context.logger)
        }
        let bell = self.bell
        webSocketRouter.ws("socket.io", shouldUpgrade: { request, _ in
            var query: [String: String] = [:]
            for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
            if let rejection = EngineIOHandshake.validate(query: query) {
                throw APIError(.init(code: rejection.status), "BAD_HANDSHAKE", rejection.message)
            }
            return .upgrade([:])
        }) { inbound, outbound, context in
            await bell.serve(inbound: inbound, outbound: outbound, channel: context.requestContext.channel, logger: context.logger)
        }
    }
}

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
