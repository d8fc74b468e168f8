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
import UnixSignals

/// The whole LiveHub process, assembled once (hummingbird's `buildApplication` pattern): used by
/// the `livehub` executable and by the tests.
public struct LiveHub: Sendable {
    public let configuration: LiveHubConfiguration
    /// The SQLite database; nil when the node stores on PostgreSQL (`LIVEHUB_DATABASE_URL`).
    public let database: AppDatabase?
    /// The cluster's PostgreSQL database (its pool running); nil on SQLite.
    public let postgres: PostgresDatabase?
    public let rooms: RoomService
    public let live: LiveRoomService
    public let notifications: NotificationService
    /// Moderation of the chat (issue 22 §3).
    public let moderation: ModerationService
    /// Writes the replay timeline's events (issue 21).
    public let timeline: TimelineRecorder
    /// One `LiveStream` per live room: the ingest publishes into it, HLS reads from it.
    public let streams: StreamRegistry
    public let rtmp: RTMPServer
    public let hls: HLSService
    public let hub: Hub
    /// Verifies every token (REST and WebSocket); its keys are re-read on SIGHUP.
    public let verifier: JWTVerifier
    /// Signs the dev tokens; nil outside dev mode.
    public let devTokenIssuer: DevTokenIssuer?
    public let internalToken: String
    public let metrics: LiveHubMetrics
    public let logger: Logger
    public let application: Application<RouterResponder<LiveHubRequestContext>>
    /// Every route the router answers, as `GET /v1/notifications/live/rooms/{id}` (read from the
    /// router itself), for the test that keeps `/openapi.json` in sync with it.
    public let routes: [String]

    /// Opens the database (creating and migrating it), reads the JWT keys (or, in dev mode, reads or
    /// creates the dev secrets), builds routes. Outside dev mode, a configuration without a key
    /// source or internal token is refused (`LiveHubConfiguration.startupProblem`), as is a key
    /// file that cannot be used. `onHTTPReady` receives the bound HTTP port once the listener is up.
    /// `clock` times the room lifecycle (the reconnect grace); tests pass a manual one.
    /// `replayRecordings` gives the replay timeline its media clock and chapters (issue 21).
    public static func build(
        configuration: LiveHubConfiguration,
        logger: Logger = Logger(label: "livehub"),
        clock: any Clock<Duration> = ContinuousClock(),
        replayRecordings: (any ReplayRecordings)? = nil,
        onHTTPReady: @escaping @Sendable (Int) async -> Void = { _ in },
        onRTMPReady: @escaping @Sendable ([(scheme: String, port: Int)]) async -> Void = { _ in }
    ) async throws -> LiveHub {
        if let problem = configuration.startupProblem { throw LiveHubStartupError(message: problem) }
        var keySources = configuration.jwtKeySources
        var devTokenIssuer: DevTokenIssuer?
        let internalToken: String
        if configuration.isDevMode {
            let secret = try configuration.jwtSecret ?? DevSecrets.loadOrCreate(named: "jwt-secret", in: configuration.dataDirectory)
            keySources.secret = secret
            devTokenIssuer = await DevTokenIssuer(secret: secret)
            internalToken = try configuration.internalToken ?? DevSecrets.loadOrCreate(named: "internal-token", in: configuration.dataDirectory)
        } else {
            internalToken = configuration.internalToken ?? ""  // startupProblem made sure it is set
        }
        if let secret = keySources.secret, secret.utf8.count < 64 {
            logger.notice(
                "the JWT secret is shorter than 64 bytes: HS512 (and below 48 bytes HS384) tokens are not accepted (RFC 7518 §3.2)",
                metadata: ["bytes": "\(secret.utf8.count)"])
        }
        let verifier: JWTVerifier
        do {
            verifier = JWTVerifier(keys: try await keySources.load(logger: logger), policy: configuration.jwtPolicy)
        } catch {
            throw LiveHubStartupError(message: error.description)
        }
        let storage = try await LiveHubStorage.open(configuration: configuration, logger: logger)
        let auth = Authenticator(
            verifier: verifier, internalToken: internalToken,
            trustsLoopbackCallbacks: configuration.isDevMode || configuration.callbackTrustsLoopback)
        let metrics = LiveHubMetrics()
        // Issue 21: every live is recorded (LIVEHUB_RECORDING), beside the in-memory window.
        let recordings = configuration.recordingEnabled
            ? RecordingLibrary(configuration: RecordingConfiguration(configuration), logger: logger, metricsFactory: metrics.factory) : nil
        let hls = HLSService(
            configuration: HLSConfiguration(configuration), recordings: recordings, metricsFactory: metrics.factory, logger: logger)
        // The domain, each service made with its event sinks: the hub and its broker first, then
        // every service before the ones whose events reach it.
        let roomStore = storage.rooms
        let streams = StreamRegistry(metricsFactory: metrics.factory)
        let hub = RealtimeWiring.makeHub(configuration: configuration, metrics: metrics)
        // Issue 20: in cluster mode the hub's broadcasts go through PostgreSQL (Sources/Server/Cluster),
        // on the stores' pool.
        var clusterServices: [any Service] = []
        let broker: any HubBroker
        if let postgres = storage.postgres {
            let postgresBroker = PostgresHubBroker(
                hub: hub, database: postgres, configuration: .init(configuration), metricsFactory: metrics.factory, logger: logger)
            clusterServices = [postgresBroker]
            broker = postgresBroker
        } else {
            broker = InProcessHubBroker(hub: hub)
        }
        let viewers = ViewerTracker(store: roomStore, logger: logger, announce: RealtimeWiring.announceViewers(through: broker))
        let notifications = NotificationService(
            store: storage.notifications,
            idempotencyLimits: .init(perUser: configuration.idempotencyKeysPerUser, total: configuration.idempotencyKeysTotal),
            logger: logger, push: RealtimeWiring.bellPush(broker: broker))
        let lookups = ServiceLookups(configuration: configuration, internalToken: internalToken, logger: logger)
        // Issue 21: the replay timeline; its media clock and chapters come from the HLS recordings
        // (`HLSReplayRecordings`); without one, `t` counts from `startedAt`.
        let replayRecordings: (any ReplayRecordings)? = replayRecordings ?? (recordings != nil ? HLSReplayRecordings(hls: hls) : nil)
        let timeline = TimelineRecorder(
            store: storage.timeline, recordings: replayRecordings, logger: logger, keepsFeaturedInMemory: storage.postgres == nil)
        let live = LiveRoomService(
            rooms: roomStore, store: storage.live,
            events: RealtimeWiring.liveRoomEvents(broker: broker, notifications: notifications, timeline: timeline),
            maxChatBytes: configuration.chatMaxBytes, stockCatalog: lookups.stock, userProfiles: lookups.userProfiles,
            orderEventTimeZone: configuration.orderEventTimeZone, logger: logger)
        // Issue 22: flash deals; an order's reservationId is confirmed through them.
        let deals = DealService(
            rooms: roomStore, products: storage.live, store: storage.deals, events: RealtimeWiring.dealEvents(broker: broker),
            reservationLifetime: configuration.dealReservation, maxPerRoom: configuration.dealsMaxPerRoom, logger: logger)
        await live.attachReservations(deals)
        // Issue 22 §3: moderation, checked on every chat line.
        let moderation = ModerationService(rooms: roomStore, store: storage.moderation, limits: configuration.moderation, logger: logger)
        await live.attachModeration(moderation)
        // Several nodes: a line posted or deleted on another node is not in this node's history ring.
        if storage.postgres != nil { await live.readHistoryFromStore() }
        let rooms = RoomService(
            store: roomStore, viewers: viewers,
            events: RealtimeWiring.roomEvents(broker: broker, live: live, notifications: notifications, streams: streams, timeline: timeline),
            reconnectGrace: configuration.reconnectGrace, clock: clock, logger: logger)

        let router = Router(context: LiveHubRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
        let cors = CORSPolicyMiddleware(allowedOrigins: configuration.corsOrigins)
        router.add(middleware: cors)
        router.add(middleware: JSONErrorMiddleware())
        SystemController(metrics: metrics, storage: storage.health, rooms: roomStore).addRoutes(to: router)
        OpenAPIController(document: OpenAPIController.loadDocument(logger: logger)).addRoutes(to: router)
        let urls = PublicURLs(publicHost: configuration.publicHost, rtmpPort: configuration.rtmpPort)
        let liveAPI = router.group("v1/notifications/live")
        LiveRoomController(live: live, auth: auth, maxBodyBytes: configuration.maxRequestBodyBytes)
            .addRoutes(to: liveAPI)
        DealController(deals: deals, auth: auth, maxBodyBytes: configuration.maxRequestBodyBytes).addRoutes(to: liveAPI)
        ModerationController(live: live, moderation: moderation, auth: auth, maxBodyBytes: configuration.maxRequestBodyBytes)
            .addRoutes(to: liveAPI)
        TimelineController(reader: TimelineReader(rooms: roomStore, store: storage.timeline, recordings: replayRecordings))
            .addRoutes(to: liveAPI)
        NotificationController(notifications: notifications, auth: auth, maxBodyBytes: configuration.maxRequestBodyBytes)
            .addRoutes(to: router)

        var listeners = [RTMPListener(host: configuration.rtmpHost, port: configuration.rtmpPort)]
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            listeners.append(RTMPListener(
                host: configuration.rtmpHost, port: configuration.rtmpsPort,
                tls: try IngestService.tlsContext(certificatePath: certificate, keyPath: key)))
        }
        let rtmp = RTMPServer(
            configuration: RTMPServerConfiguration(
                listeners: listeners, maxMessageSize: configuration.rtmpMaxMessageBytes,
                maxChunkStreams: configuration.rtmpMaxChunkStreams, publishDeadline: TimeAmount(configuration.rtmpPublishDeadline),
                idleTimeout: TimeAmount(configuration.publisherIdleTimeout),
                maxBufferedBytesBeforePublish: configuration.rtmpBufferBytesBeforePublish, maxBufferedBytes: configuration.rtmpBufferBytes,
                reassemblyBytesBeforePublish: configuration.rtmpBufferBytesBeforePublish, reassemblyBytes: configuration.rtmpBufferBytes,
                maxConnections: configuration.rtmpMaxConnections, maxConnectionsPerAddress: configuration.rtmpMaxConnectionsPerAddress,
                receiveCoalescingWindow: TimeAmount(configuration.rtmpReceiveCoalescing)),
            authorizer: RoomPublishAuthorizer(rooms: rooms, logger: logger),
            registry: streams, group: MultiThreadedEventLoopGroup.singleton, logger: logger,
            metricsFactory: metrics.factory)
        RoomController(
            rooms: rooms, auth: auth, urls: urls, maxBodyBytes: configuration.maxRequestBodyBytes,
            hasLiveThumbnail: { hls.hasStream(roomId: $0) }, hasPublisher: { rtmp.hasPublisher(roomId: $0) },
            hasReplay: { roomId in recordings?.hasReplay(roomId: roomId) ?? false })
            .addRoutes(to: liveAPI)
        RecordingController(rooms: rooms, auth: auth, library: recordings).addRoutes(to: liveAPI)
        await rooms.attachIngest(disconnectPublisher: { roomId in await rtmp.disconnectPublisher(roomId: roomId) })
        let schemes = listeners.map { $0.tls == nil ? "rtmp" : "rtmps" }
        let ingest = IngestService(server: rtmp) { ports in
            await onRTMPReady(Array(zip(schemes, ports)).map { (scheme: $0.0, port: $0.1) })
        }

        // MARK: Cluster — HLS from any node (issue 20; docs/cluster-hls.md). A room packaged by
        // another node is fetched from it (HLSOriginProxy); the fast path answers local rooms only.
        var hlsProxy: HLSOriginProxy?
        if let postgres = storage.postgres {
            let hlsConfiguration = HLSConfiguration(configuration)
            let holdSeconds = hlsConfiguration.blockingReloadTimeoutMultiplier * (hlsConfiguration.targetSegmentDuration.rounded(.up) + 1)
            hlsProxy = HLSOriginProxy(
                directory: PostgresHLSOriginDirectory(
                    client: postgres.client, nodeId: configuration.effectiveNodeId, heartbeatLifetime: configuration.clusterNodeTimeout, logger: logger),
                settings: .init(
                    timeout: configuration.hlsProxyTimeout, originHold: .milliseconds(Int64(min(holdSeconds, 3600) * 1000)),
                    maxBodyBytes: configuration.hlsMaxSegmentBytes, cacheBytes: configuration.hlsProxyCacheBytes),
                metrics: metrics, logger: logger)
        }
        HLSController(hls: hls, proxy: hlsProxy).addRoutes(to: router)
        let hlsLocalRoomsOnly = hlsProxy != nil
        var devTokens: (@Sendable (String, String, [String]) async throws -> String)?
        if let devTokenIssuer {
            devTokens = { userId, username, roles in
                try await devTokenIssuer.sign(AuthUser(userId: userId, username: username, roles: roles), lifetime: 7 * 24 * 3600)
            }
        }
        WebController(
            assets: WebController.configure(WebController.loadAssets(logger: logger), shopProductURL: configuration.shopProductURLTemplate),
            devTokens: devTokens).addRoutes(to: router)
        let packaging = PackagingService(streams: streams, hls: hls, logger: logger)

        let connectionLimits = HTTPConnectionLimits(
            idleTimeout: configuration.httpIdleTimeout.map { TimeAmount($0) },
            plainConnectionsPerAddress: configuration.httpMaxConnectionsPerIP > 0
                ? ConnectionsPerAddress(limit: configuration.httpMaxConnectionsPerIP, what: "HTTP connections", logger: logger) : nil,
            webSocketsPerAddress: configuration.wsMaxConnectionsPerIP > 0
                ? ConnectionsPerAddress(limit: configuration.wsMaxConnectionsPerIP, what: "WebSockets", logger: logger) : nil)
        let realtime = RealtimeWiring.make(
            hub: hub, broker: broker, viewers: viewers,
            rooms: rooms, live: live, notifications: notifications, verifier: verifier, configuration: configuration,
            webSocketsPerAddress: connectionLimits.webSocketsPerAddress, logger: logger)
        realtime.addRoutes(router: router)
        let routes = router.routes.map { "\($0.method.rawValue) \($0.path)" }
        // Cluster-wide state in PostgreSQL (issue 20): node heartbeat, viewer totals, stream leases,
        // cross-node chat limit, shared Idempotency-Key answers. Cluster mode only.
        if let postgres = storage.postgres {
            let cluster = ClusterState(client: postgres.client, configuration: configuration, logger: logger)
            await cluster.attach(rooms: rooms, live: live, notifications: notifications, hls: hls) { roomId in
                await rtmp.disconnectPublisher(roomId: roomId, reason: .takenOver)
            }
            clusterServices.append(ClusterHeartbeatService(state: cluster, viewers: viewers, interval: configuration.clusterHeartbeat))
        }
        let lifecycle = LifecycleService(rooms: rooms, storage: storage, logger: logger)
        // Services stop in reverse order: the cluster's stop before the lifecycle closes the pool.
        var services: [any Service] = [lifecycle] + clusterServices + [packaging, ingest, HubService(hub: hub)]
        services.append(DealSweepService(deals: deals, interval: configuration.dealSweep))
        if let recordings {
            services.append(RecordingSweepService(library: recordings, interval: configuration.recordingSweep))
        }
        if keySources.hasFiles {
            services.append(JWTKeyReloadService(sources: keySources, verifier: verifier, logger: logger))
        }
        let application = Application(
            router: router,
            // HTTP/1 through the router, with HLS requests that need no waiting answered on the event
            // loop (HLSFastPathHandler); WebSocket upgrades go to the hub (LiveHubHTTPChannel).
            // Frames up to 1 MiB reach the hub, which enforces STOMP's 64 KiB and Socket.IO's
            // maxPayload itself with protocol-level errors. The hub checks liveness itself
            // (ChannelDrain: Ping after 30 s of silence, from its one ticker). Plain HTTP has an idle
            // timeout, a request-head limit and a per-address connection limit (HTTPConnectionLimits).
            server: HTTPServerBuilder { responder in
                LiveHubHTTPChannel(
                    responder: responder,
                    http1: .init(
                        additionalChannelHandlers: [
                            HLSFastPathHandler(
                                hls: hls, cors: cors, metrics: metrics, serverName: "LiveHub", localRoomsOnly: hlsLocalRoomsOnly, logger: logger),
                            SockJSHeldRequestWatch(),
                        ],
                        httpDecoderConfiguration: .init(
                            maxHeaderFieldSize: configuration.httpMaxHeaderBytes, maxHeaderListSize: configuration.httpMaxHeaderBytes)),
                    maxFrameSize: 1 << 20,
                    limits: connectionLimits,
                    decideUpgrade: realtime.decideUpgrade)
            },
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "LiveHub"),
            services: services,
            onServerRunning: { channel in await onHTTPReady(channel.localAddress?.port ?? configuration.httpPort) },
            logger: logger)
        return LiveHub(
            configuration: configuration, database: storage.sqlite, postgres: storage.postgres, rooms: rooms, live: live, notifications: notifications, moderation: moderation, timeline: timeline, streams: streams, rtmp: rtmp, hls: hls, hub: hub, verifier: verifier, devTokenIssuer: devTokenIssuer, internalToken: internalToken,
            metrics: metrics, logger: logger, application: application, routes: routes)
    }

    /// Runs until SIGINT/SIGTERM: listeners close, in-flight requests finish, the database closes.
    public func run() async throws {
        try await application.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// Sample tokens printed in dev mode (valid 30 days); nil outside dev mode.
    public func devTokens() async throws -> (owner: String, viewer: String)? {
        guard let devTokenIssuer else { return nil }
        let owner = AuthUser(userId: "dev-owner", username: "Dev Shop", roles: ["SHOP_OWNER"])
        let viewer = AuthUser(userId: "dev-viewer", username: "Dev Viewer", roles: ["USER"])
        let lifetime: TimeInterval = 30 * 24 * 3600
        return (try await devTokenIssuer.sign(owner, lifetime: lifetime), try await devTokenIssuer.sign(viewer, lifetime: lifetime))
    }
}

/// A configuration or key file LiveHub cannot start with; `description` is the one line to print.
public struct LiveHubStartupError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Re-reads the JWT key files (`LIVEHUB_JWT_PUBLIC_KEY`, `LIVEHUB_JWT_JWKS_FILE`) on SIGHUP, as
/// nginx reloads on it: an identity provider's key rotation needs no restart. A file that cannot
/// be used keeps the previous keys (`JWTVerifier.reload`). Runs only when a key file is configured,
/// so that otherwise SIGHUP keeps its default meaning.
struct JWTKeyReloadService: Service {
    let sources: JWTKeySources
    let verifier: JWTVerifier
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            logger.info("SIGHUP: re-reading the JWT key files")
            await verifier.reload(from: sources, logger: logger)
        }
    }
}

/// Start-up recovery before traffic, and an orderly close after the HTTP server has drained:
/// grace timers stop, the WAL is checkpointed and the database closed (or the PostgreSQL pool stopped). It runs before the HTTP
/// server in the service group, so it is shut down after it.
struct LifecycleService: Service {
    let rooms: RoomService
    let storage: LiveHubStorage
    let logger: Logger

    func run() async throws {
        let recovered = try await rooms.recoverAfterRestart()
        if !recovered.isEmpty {
            logger.notice("recovered rooms left LIVE by the previous run", metadata: ["count": "\(recovered.count)"])
        }
        try? await gracefulShutdown()
        await rooms.shutdown()
        storage.close(logger: logger)
    }
}
