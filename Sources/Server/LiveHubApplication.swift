import Foundation
import Hummingbird
import HLS
import HummingbirdCore
import Hub
import Ingest
import Logging
import MediaCore
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The whole LiveHub process, assembled once (hummingbird's `buildApplication` pattern): used by
/// the `livehub` executable and by the tests.
public struct LiveHub: Sendable {
    public let configuration: LiveHubConfiguration
    public let database: AppDatabase
    public let rooms: RoomService
    public let live: LiveRoomService
    public let notifications: NotificationService
    /// One `LiveStream` per live room: the ingest publishes into it, HLS reads from it.
    public let streams: StreamRegistry
    public let rtmp: RTMPServer
    public let hls: HLSService
    public let hub: Hub
    public let jwt: JWTCodec
    public let internalToken: String
    public let metrics: LiveHubMetrics
    public let logger: Logger
    public let application: Application<RouterResponder<LiveHubRequestContext>>
    /// Every route the router answers, as `GET /v1/notifications/live/rooms/{id}` (read from the
    /// router itself), for the test that keeps `/openapi.json` in sync with it.
    public let routes: [String]

    /// Opens the database (creating and migrating it), reads or creates dev secrets, builds routes.
    /// `onHTTPReady` receives the bound HTTP port once the listener is up.
    public static func build(
        configuration: LiveHubConfiguration,
        logger: Logger = Logger(label: "livehub"),
        onHTTPReady: @escaping @Sendable (Int) async -> Void = { _ in },
        onRTMPReady: @escaping @Sendable ([(scheme: String, port: Int)]) async -> Void = { _ in }
    ) async throws -> LiveHub {
        let database = try AppDatabase.open(path: configuration.databasePath, synchronous: configuration.sqliteSynchronous)
        let jwtSecret = try configuration.jwtSecret ?? DevSecrets.loadOrCreate(named: "jwt-secret", in: configuration.dataDirectory)
        let internalToken = try configuration.internalToken ?? DevSecrets.loadOrCreate(named: "internal-token", in: configuration.dataDirectory)
        let jwt = JWTCodec(secret: jwtSecret)
        let auth = Authenticator(jwt: jwt, internalToken: internalToken)
        let metrics = LiveHubMetrics()
        let hls = HLSService(configuration: HLSConfiguration(configuration), metricsFactory: metrics.factory, logger: logger)
        let roomStore = SQLiteRoomStore(database: database)
        let rooms = RoomService(store: roomStore, reconnectGrace: configuration.reconnectGrace, logger: logger)
        let live = LiveRoomService(rooms: rooms, store: SQLiteLiveRoomStore(database: database), logger: logger)
        let notifications = NotificationService(store: SQLiteNotificationStore(database: database), logger: logger)

        let router = Router(context: LiveHubRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
        let cors = CORSPolicyMiddleware(allowedOrigins: configuration.corsOrigins)
        router.add(middleware: cors)
        router.add(middleware: JSONErrorMiddleware())
        SystemController(metrics: metrics, database: database, rooms: roomStore).addRoutes(to: router)
        OpenAPIController(document: OpenAPIController.loadDocument(logger: logger)).addRoutes(to: router)
        let urls = PublicURLs(publicHost: configuration.publicHost, rtmpPort: configuration.rtmpPort)
        let liveAPI = router.group("v1/notifications/live")
        LiveRoomController(live: live, auth: auth, maxBodyBytes: configuration.maxRequestBodyBytes)
            .addRoutes(to: liveAPI)
        NotificationController(notifications: notifications, auth: auth, maxBodyBytes: configuration.maxRequestBodyBytes)
            .addRoutes(to: router)

        let streams = StreamRegistry(metricsFactory: metrics.factory)
        var listeners = [RTMPListener(host: configuration.rtmpHost, port: configuration.rtmpPort)]
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            listeners.append(RTMPListener(
                host: configuration.rtmpHost, port: configuration.rtmpsPort,
                tls: try IngestService.tlsContext(certificatePath: certificate, keyPath: key)))
        }
        let rtmp = RTMPServer(
            configuration: RTMPServerConfiguration(
                listeners: listeners,
                idleTimeout: TimeAmount(configuration.publisherIdleTimeout),
                receiveCoalescingWindow: TimeAmount(configuration.rtmpReceiveCoalescing)),
            authorizer: RoomPublishAuthorizer(rooms: rooms, logger: logger),
            registry: streams, group: MultiThreadedEventLoopGroup.singleton, logger: logger,
            metricsFactory: metrics.factory)
        RoomController(
            rooms: rooms, auth: auth, urls: urls, maxBodyBytes: configuration.maxRequestBodyBytes,
            hasLiveThumbnail: { hls.hasStream(roomId: $0) }, hasPublisher: { rtmp.hasPublisher(roomId: $0) })
            .addRoutes(to: liveAPI)
        await rooms.setHooks(
            disconnectPublisher: { roomId in await rtmp.disconnectPublisher(roomId: roomId) },
            roomEnded: { roomId in streams.end(roomId: roomId) })
        let schemes = listeners.map { $0.tls == nil ? "rtmp" : "rtmps" }
        let ingest = IngestService(server: rtmp) { ports in
            await onRTMPReady(Array(zip(schemes, ports)).map { (scheme: $0.0, port: $0.1) })
        }

        HLSController(hls: hls).addRoutes(to: router)
        var devTokens: (@Sendable (String, String, [String]) -> String)?
        if configuration.isDevMode {
            devTokens = { userId, username, roles in
                jwt.sign(AuthUser(userId: userId, username: username, roles: roles), lifetime: 7 * 24 * 3600)
            }
        }
        WebController(assets: WebController.loadAssets(logger: logger), devTokens: devTokens).addRoutes(to: router)
        let packaging = PackagingService(streams: streams, hls: hls, logger: logger)

        let realtime = await RealtimeWiring.make(
            rooms: rooms, live: live, notifications: notifications, jwt: jwt, metrics: metrics, configuration: configuration, logger: logger)
        realtime.addRoutes(router: router)
        let routes = router.routes.map { "\($0.method.rawValue) \($0.path)" }
        let lifecycle = LifecycleService(rooms: rooms, database: database, logger: logger)
        let application = Application(
            router: router,
            // HTTP/1 through the router, with HLS requests that need no waiting answered on the event
            // loop (HLSFastPathHandler); WebSocket upgrades go to the hub (LiveHubHTTPChannel).
            // Frames up to 1 MiB reach the hub, which enforces STOMP's 64 KiB and Socket.IO's
            // maxPayload itself with protocol-level errors. The hub checks liveness itself
            // (ChannelDrain: Ping after 30 s of silence, from its one ticker).
            server: HTTPServerBuilder { responder in
                LiveHubHTTPChannel(
                    responder: responder,
                    http1: .init(additionalChannelHandlers: [
                        HLSFastPathHandler(hls: hls, cors: cors, metrics: metrics, serverName: "LiveHub", logger: logger)
                    ]),
                    maxFrameSize: 1 << 20,
                    decideUpgrade: realtime.decideUpgrade)
            },
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "LiveHub"),
            services: [lifecycle, packaging, ingest, HubService(hub: realtime.hub)],
            onServerRunning: { channel in await onHTTPReady(channel.localAddress?.port ?? configuration.httpPort) },
            logger: logger)
        return LiveHub(
            configuration: configuration, database: database, rooms: rooms, live: live, notifications: notifications, streams: streams, rtmp: rtmp, hls: hls, hub: realtime.hub, jwt: jwt, internalToken: internalToken,
            metrics: metrics, logger: logger, application: application, routes: routes)
    }

    /// Runs until SIGINT/SIGTERM: listeners close, in-flight requests finish, the database closes.
    public func run() async throws {
        try await application.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// Sample tokens printed in dev mode (valid 30 days).
    public func devTokens() -> (owner: String, viewer: String) {
        let owner = AuthUser(userId: "dev-owner", username: "Dev Shop", roles: ["SHOP_OWNER"])
        let viewer = AuthUser(userId: "dev-viewer", username: "Dev Viewer", roles: ["USER"])
        let lifetime: TimeInterval = 30 * 24 * 3600
        return (jwt.sign(owner, lifetime: lifetime), jwt.sign(viewer, lifetime: lifetime))
    }
}

/// Start-up recovery before traffic, and an orderly close after the HTTP server has drained:
/// grace timers stop, the WAL is checkpointed and the database closed. It runs before the HTTP
/// server in the service group, so it is shut down after it.
struct LifecycleService: Service {
    let rooms: RoomService
    let database: AppDatabase
    let logger: Logger

    func run() async throws {
        let recovered = try await rooms.recoverAfterRestart()
        if !recovered.isEmpty {
            logger.notice("recovered rooms left LIVE by the previous run", metadata: ["count": "\(recovered.count)"])
        }
        try? await gracefulShutdown()
        await rooms.shutdown()
        do {
            try database.close()
            logger.info("database closed")
        } catch {
            logger.error("database close failed", metadata: ["error": "\(error)"])
        }
    }
}
