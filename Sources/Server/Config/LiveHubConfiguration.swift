import Foundation

/// Everything a LiveHub process is configured with. Every field has a default (DESIGN.md
/// "Defaults") and a `LIVEHUB_*` environment variable; the `livehub` command line may override.
public struct LiveHubConfiguration: Sendable {
    public enum HLSVariantName: String, Sendable, CaseIterable {
        case fmp4LowLatency = "fmp4-ll"
        case fmp4
        case mpegts
    }

    /// Address the HTTP/WebSocket listener binds to.
    public var httpHost = "0.0.0.0"
    /// `LIVEHUB_HTTP_PORT` (8080). 0 picks a free port (tests).
    public var httpPort = 8080
    public var rtmpHost = "0.0.0.0"
    /// `LIVEHUB_RTMP_PORT` (1935). 0 picks a free port (tests).
    public var rtmpPort = 1935
    /// `LIVEHUB_RTMPS_PORT` (1936), used only when a certificate and key are given.
    public var rtmpsPort = 1936
    /// `LIVEHUB_TLS_CERT` / `LIVEHUB_TLS_KEY`: PEM files enabling RTMPS.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// `LIVEHUB_DATA_DIR` (`./data`): the SQLite file and dev-mode secrets live here.
    public var dataDirectory = "./data"
    /// `LIVEHUB_SQLITE_SYNCHRONOUS` (`FULL`): `FULL` syncs every commit to the disk before the
    /// answer or broadcast (survives a power cut); `NORMAL` only at checkpoints (faster, the last
    /// commits can be lost on a power cut; `make bench` compares the two).
    public var sqliteSynchronous: SQLiteSynchronous = .full
    /// `LIVEHUB_DEV=1` or `livehub --dev`: dev mode. Without a secret, one is generated and kept in
    /// the data directory, as is the internal token; sample tokens are printed, `POST /v1/dev/tokens`
    /// hands out tokens to loopback callers and loopback callers may call `/callback/*`.
    /// Off by default: start-up then needs a key source and `LIVEHUB_INTERNAL_TOKEN`.
    public var isDevMode = false
    /// `LIVEHUB_JWT_SECRET`: shared secret for HS256/HS384/HS512 tokens.
    public var jwtSecret: String?
    /// `LIVEHUB_JWT_PUBLIC_KEY`: path of a PEM public key or certificate, RSA (RS256/384/512,
    /// PS256/384/512) or EC (ES256 for P-256; ES384, ES512).
    public var jwtPublicKeyPath: String?
    /// `LIVEHUB_JWT_JWKS_FILE`: path of a JWKS file (RFC 7517 §5), keys chosen by `kid`; re-read on SIGHUP.
    public var jwtJWKSPath: String?
    /// `LIVEHUB_JWT_LEEWAY` seconds (30, at most 3600): clock skew allowed on `exp` and `nbf`; a
    /// WebSocket is closed this long after its token's `exp`.
    public var jwtLeeway: Double = 30
    /// `LIVEHUB_JWT_ISSUER`: when set, a token's `iss` must equal it.
    public var jwtIssuer: String?
    /// `LIVEHUB_JWT_AUDIENCE`: comma-separated; when set, a token's `aud` must name one of them.
    public var jwtAudiences: [String] = []
    /// `LIVEHUB_INTERNAL_TOKEN`: bearer token for internal calls (orders, notifications, nginx-rtmp
    /// callbacks). Required outside dev mode; in dev mode a random one is kept in the data directory.
    public var internalToken: String?
    /// `LIVEHUB_CALLBACK_TRUST_LOOPBACK=1`: loopback callers may call `/callback/*` without the
    /// internal token outside dev mode too (nginx-rtmp on the same host). Off by default: behind a
    /// reverse proxy on the same host every request comes from loopback.
    public var callbackTrustsLoopback = false
    /// `LIVEHUB_CORS_ORIGINS`: comma-separated origins; `*` (the dev default) allows any.
    public var corsOrigins: [String] = ["*"]
    /// `LIVEHUB_PUBLIC_HOST`: host name put into `rtmpUrl`/`hlsUrl`; default: the request's Host.
    public var publicHost: String?
    /// `LIVEHUB_RECONNECT_GRACE` seconds (30): how long a room stays LIVE ("reconnecting") after
    /// its publisher went away.
    public var reconnectGrace: Duration = .seconds(30)
    /// `LIVEHUB_PUBLISHER_IDLE_TIMEOUT` seconds (10): no media for this long = publisher gone.
    public var publisherIdleTimeout: Duration = .seconds(10)
    /// `LIVEHUB_RTMP_RECEIVE_COALESCING` (seconds, 0.01): while a publisher streams, the kernel
    /// buffers about this much of its media before waking the server (`SO_RCVLOWAT`, see Ingest's
    /// `ReceiveCoalescing`); 0 wakes on every arrival.
    public var rtmpReceiveCoalescing: Duration = .milliseconds(10)
    /// `LIVEHUB_HLS_VARIANT` (`fmp4-ll`, `fmp4`, `mpegts`).
    public var hlsVariant: HLSVariantName = .fmp4LowLatency
    /// `LIVEHUB_HLS_SEGMENT_SECONDS` (2): target segment duration, cut on keyframes.
    public var hlsSegmentSeconds = 2.0
    /// `LIVEHUB_HLS_PART_SECONDS` (0.5): LL-HLS part target.
    public var hlsPartSeconds = 0.5
    /// `LIVEHUB_HLS_WINDOW` (6): segments kept in the live playlist (and in RAM).
    public var hlsWindowSegments = 6
    /// `LIVEHUB_HLS_RETAIN_AFTER_END` seconds (300): the final window stays downloadable this long.
    public var hlsRetainAfterEnd: Duration = .seconds(300)
    /// `LIVEHUB_MAX_BODY_BYTES` (1 MiB): request bodies above this are refused with 413.
    public var maxRequestBodyBytes = 1 << 20
    /// `LIVEHUB_SOCKETIO_PING_INTERVAL` / `LIVEHUB_SOCKETIO_PING_TIMEOUT` seconds (25 / 20, Engine.IO v4
    /// defaults): the bell pings every interval and drops a socket silent for interval + timeout.
    public var socketIOPingInterval: Duration = .seconds(25)
    public var socketIOPingTimeout: Duration = .seconds(20)
    /// `LIVEHUB_SOCKETIO_AUTH_TIMEOUT` seconds (10): a bell socket that connected without
    /// `auth.token` must send an `AUTH {token}` event within this time.
    public var socketIOAuthTimeout: Duration = .seconds(10)
    /// `LIVEHUB_SOCKETIO_CONNECT_TIMEOUT` seconds (45, socket.io's `connectTimeout`; 0.1…600): an
    /// Engine.IO session (WebSocket or long-polling) that has not joined the namespace (`40`) by
    /// then is closed, so a handshake alone holds nothing longer.
    public var socketIOConnectTimeout: Duration = .seconds(45)
    /// `LIVEHUB_SOCKETIO_MAX_PAYLOAD` bytes (1000000, engine.io's default; 1024…1048576): the largest
    /// Engine.IO packet (WebSocket) or long-polling POST body; larger closes the session (a POST is
    /// answered 413).
    public var socketIOMaxPayload = 1_000_000
    /// `LIVEHUB_SOCKETIO_MAX_POLLING_SESSIONS` (10000; 0 = long-polling off): bell sessions on
    /// Engine.IO's HTTP long-polling transport open at once, all clients together; one more
    /// handshake is answered 503. Each also counts against `LIVEHUB_WS_MAX_CONNECTIONS_PER_IP`.
    public var socketIOMaxPollingSessions = 10_000
    /// `LIVEHUB_RTMP_PUBLISH_DEADLINE` seconds (10): from accept to an authorised `publish`
    /// (handshake, `connect`, `publish`), however many bytes the peer trickles in.
    public var rtmpPublishDeadline: Duration = .seconds(10)
    /// `LIVEHUB_RTMP_MAX_CONNECTIONS` (1000) and `LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP` (64): open
    /// RTMP(S) connections in total and from one peer address.
    public var rtmpMaxConnections = 1000
    public var rtmpMaxConnectionsPerAddress = 64
    /// `LIVEHUB_RTMP_MAX_CHUNK_STREAMS` (64): chunk streams one connection may use.
    public var rtmpMaxChunkStreams = 64
    /// `LIVEHUB_RTMP_MAX_MESSAGE_BYTES` (8 MiB): largest RTMP message (a keyframe).
    public var rtmpMaxMessageBytes = 8 << 20
    /// `LIVEHUB_RTMP_BUFFER_BYTES_BEFORE_PUBLISH` (256 KiB) / `LIVEHUB_RTMP_BUFFER_BYTES` (16 MiB):
    /// bytes a connection may make the server hold (partly reassembled messages; bytes received
    /// and not yet processed) before it has published, and once it has.
    public var rtmpBufferBytesBeforePublish = 256 << 10
    public var rtmpBufferBytes = 16 << 20
    /// `LIVEHUB_HLS_MAX_SEGMENT_BYTES` (48 MiB): a segment larger than this refuses the publisher.
    public var hlsMaxSegmentBytes = 48 << 20
    /// `LIVEHUB_HLS_MAX_SEGMENTS_PER_10S` (50): more segments ending within ten seconds (timestamps
    /// running far ahead of real time) refuse the publisher.
    public var hlsMaxSegmentsPerTenSeconds = 50
    /// `LIVEHUB_HLS_DISCOVERY_BUFFER_BYTES` (32 MiB): media held while waiting for sequence headers.
    public var hlsDiscoveryBufferBytes = 32 << 20
    /// `LIVEHUB_HLS_PROXY_CACHE_BYTES` (256 MiB; 0 = keep nothing, still one fetch per concurrent
    /// request group): parts, segments and init sections fetched from other nodes and kept (cluster mode).
    public var hlsProxyCacheBytes = 256 << 20
    /// `LIVEHUB_HLS_PROXY_TIMEOUT` seconds (5): an HLS request to another node, connect included; a
    /// request the origin may hold (blocking reload, hinted part) gets the origin's hold time on top.
    public var hlsProxyTimeout: Duration = .seconds(5)
    /// `LIVEHUB_SHOP_PRODUCT_URL` (unset): the shop's product page, an absolute http(s) URL with
    /// `{productId}` (and optionally `{roomId}`) in it; the watch and replay pages' Buy button on
    /// the featured product links there. Unset: no Buy button.
    public var shopProductURLTemplate: String?
    /// `LIVEHUB_RECORDING` (`on`): record every live (issue 21); `off` records nothing.
    public var recordingEnabled = true
    /// `LIVEHUB_RECORDINGS_DIR` (`./data/recordings`, i.e. `recordings` under `LIVEHUB_DATA_DIR`).
    public var recordingsDirectoryOverride: String?
    public var recordingsDirectory: String { recordingsDirectoryOverride ?? (dataDirectory as NSString).appendingPathComponent("recordings") }
    /// `LIVEHUB_RECORDING_RETENTION_DAYS` (30; 0 = keep forever): recordings ended longer ago go.
    public var recordingRetentionDays = 30
    /// `LIVEHUB_RECORDINGS_MAX_BYTES` (50 GiB; 0 = no quota): above it the oldest recordings go first.
    public var recordingsMaxBytes: Int64 = 50 << 30
    /// `LIVEHUB_RECORDINGS_MIN_FREE_BYTES` (1 GiB): below this free disk space a recording is
    /// refused (or stops), the live goes on.
    public var recordingsMinFreeBytes: Int64 = 1 << 30
    /// `LIVEHUB_RECORDING_SWEEP_SECONDS` (300): how often retention and quota are enforced.
    public var recordingSweep: Duration = .seconds(300)
    /// `LIVEHUB_DEAL_RESERVATION_SECONDS` (600, 1...86400): how long a flash-deal claim holds its
    /// units before they return to the deal (issue 22).
    public var dealReservation: Duration = .seconds(600)
    /// `LIVEHUB_DEAL_SWEEP_SECONDS` (1, 0.05...60): how often expired reservations are returned and
    /// deal starts and ends are announced.
    public var dealSweep: Duration = .seconds(1)
    /// `LIVEHUB_DEALS_MAX_PER_ROOM` (20, 1...1000): scheduled or live deals a room may hold at once.
    public var dealsMaxPerRoom = 20
    /// `LIVEHUB_RECORDING_MAX_BACKLOG_BYTES` (64 MiB): bytes queued for the disk per recording;
    /// more stops that recording (a disk slower than the stream).
    public var recordingMaxBacklogBytes = 64 << 20
    /// `LIVEHUB_HTTP_IDLE_TIMEOUT` seconds (60; 0 = none): an HTTP connection with no bytes read
    /// or written for this long is closed (between keep-alive requests, or a stalled request).
    public var httpIdleTimeout: Duration? = .seconds(60)
    /// `LIVEHUB_HTTP_MAX_HEADER_BYTES` (16 KiB): request line plus header fields of one request;
    /// more is answered 431 and the connection closed.
    public var httpMaxHeaderBytes = 16 * 1024
    /// `LIVEHUB_HTTP_MAX_CONNECTIONS_PER_IP` (1000; 0 = no limit): open plain HTTP connections per
    /// client address (the TCP peer: behind a reverse proxy, the proxy).
    public var httpMaxConnectionsPerIP = 1000
    /// `LIVEHUB_WS_MAX_CONNECTIONS_PER_IP` (1000; 0 = no limit): open WebSockets (STOMP and
    /// Socket.IO) per client address; one more upgrade is answered 429.
    public var wsMaxConnectionsPerIP = 1000
    /// `LIVEHUB_WS_MAX_CONNECTIONS_PER_USER` (20; 0 = no limit): a signed-in user's connections per
    /// protocol (STOMP, Socket.IO), i.e. tabs.
    public var wsMaxConnectionsPerUser = 20
    /// `LIVEHUB_WS_MAX_SUBSCRIPTIONS` (64): STOMP subscriptions per connection.
    public var wsMaxSubscriptions = 64
    /// `LIVEHUB_WS_MAX_INBOUND_BYTES` (256 KiB): received frames waiting to be processed per
    /// connection before its socket stops being read.
    public var wsMaxInboundBytes = 256 * 1024
    /// `LIVEHUB_STOMP_CONNECT_TIMEOUT` seconds (10): a STOMP connection must send CONNECT this soon.
    public var stompConnectTimeout: Duration = .seconds(10)
    /// `LIVEHUB_HUB_HISTORY_SIZE` (100; 0 = none): messages kept per room topic for recovery.
    public var hubHistorySize = 100
    /// `LIVEHUB_HUB_HISTORY_TTL_SECONDS` (300): how long a room topic message is kept for recovery.
    public var hubHistoryTTL: Duration = .seconds(300)
    /// `LIVEHUB_HUB_HISTORY_MAX_TOPICS` (10000): topics with a history at once.
    public var hubHistoryMaxTopics = 10_000
    /// `LIVEHUB_HUB_HISTORY_MAX_BYTES` (64 MiB): payload bytes of every topic's history together.
    public var hubHistoryMaxBytes = 64 << 20
    /// `LIVEHUB_RECOVERY_MAX_MESSAGES` (1000): missed messages one recovering SUBSCRIBE is handed;
    /// a longer gap answers `recovered:false`.
    public var recoveryMaxMessages = 1000
    /// `LIVEHUB_BELL_REPLAY_MAX` (100): missed notifications replayed to a reconnecting bell; more
    /// → `notification:resync`.
    public var bellReplayMax = 100
    /// `LIVEHUB_REACTIONS_PER_SECOND` (10): reactions per signed-in user (guests: per connection).
    public var reactionsPerSecond = 10
    /// `LIVEHUB_REACTION_WINDOW_MS` (250): reactions are summed per room over this window.
    public var reactionWindow: Duration = .milliseconds(250)
    /// `LIVEHUB_REACTION_MAX_ROOMS` (10000): rooms with a window being summed at once.
    public var reactionMaxRooms = 10_000
    /// `LIVEHUB_SOCKJS_MAX_SESSIONS` (10000): SockJS HTTP sessions (`xhr`, `xhr_streaming`) held
    /// at once; each also counts against `LIVEHUB_WS_MAX_CONNECTIONS_PER_IP` as a WebSocket would.
    public var sockJSMaxSessions = 10_000
    /// `LIVEHUB_SOCKJS_DISCONNECT_DELAY` seconds (5, sockjs-protocol's and Spring's): a SockJS HTTP
    /// session with no receiving request for this long is closed (its STOMP session ends).
    public var sockJSDisconnectDelay: Duration = .seconds(5)
    /// `LIVEHUB_SOCKJS_STREAM_BYTES` (131072, Spring's): an `xhr_streaming` response ends after
    /// sending this many bytes; the client opens the next one.
    public var sockJSStreamBytes = 128 * 1024
    /// `LIVEHUB_SOCKJS_MAX_MESSAGE_BYTES` (409600): largest SockJS client message, a WebSocket
    /// message or an `xhr_send` body (six 64 KiB STOMP frames' worth of JSON escaping).
    public var sockJSMaxMessageBytes = 6 * 64 * 1024 + 16 * 1024
    /// `LIVEHUB_CHAT_MAX_BYTES` (2000): a chat line's UTF-8 bytes, besides its 500 characters.
    public var chatMaxBytes = 2000
    /// `LIVEHUB_IDEMPOTENCY_KEYS_PER_USER` (100) / `LIVEHUB_IDEMPOTENCY_KEYS_TOTAL` (10000):
    /// remembered `Idempotency-Key` answers per user (oldest forgotten first) and in all (least
    /// recently active user forgotten first).
    public var idempotencyKeysPerUser = 100
    public var idempotencyKeysTotal = 10_000
    /// Issue 22 §3 (README "Moderation"): `LIVEHUB_MODERATION_MAX_MODERATORS` (50),
    /// `LIVEHUB_MODERATION_MAX_MUTES` (1000), `LIVEHUB_MODERATION_MAX_BANS` (1000),
    /// `LIVEHUB_MODERATION_MAX_HELD` (200) per room; `LIVEHUB_MODERATION_CACHE_ROOMS` (1000) rooms
    /// in the chat path's cache, re-read after `LIVEHUB_MODERATION_CACHE_TTL_MS` (1000).
    public var moderation = ModerationLimits()
    /// `LIVEHUB_STOCK_SERVICE_URL`: base URL of the site's stock service; when set, a product added
    /// without `productName`, `originalPrice`, `productImageUrl` or `stockAvailable` gets them from
    /// `GET {url}/v1/products/{productId}` (README "Lookups in other services"). Unset: no lookup.
    public var stockServiceURL: String?
    /// `LIVEHUB_USER_SERVICE_URL`: base URL of the user service; chat lines of tokens without
    /// `username`/`avatarUrl` get them from `GET {url}/v1/users/{userId}` (cached, never waited for).
    public var userServiceURL: String?
    /// `LIVEHUB_SERVICE_TOKEN`: the bearer token sent to those services; default: the internal token.
    public var serviceToken: String?
    /// `LIVEHUB_LOOKUP_CONNECT_TIMEOUT` (1 s) and `LIVEHUB_LOOKUP_TIMEOUT` (3 s, connect included):
    /// how long a lookup may take to connect, and in all.
    public var lookupConnectTimeout: Duration = .seconds(1)
    public var lookupTimeout: Duration = .seconds(3)
    /// `LIVEHUB_LOOKUP_MAX_BODY_BYTES` (64 KiB): a lookup answer larger than this is refused.
    public var lookupMaxBodyBytes = 64 * 1024
    /// `LIVEHUB_USER_CACHE_ENTRIES` (10000) / `LIVEHUB_USER_CACHE_TTL` (300 s): users whose looked-up
    /// name and avatar are kept, and for how long.
    public var userCacheEntries = 10_000
    public var userCacheTTL: Duration = .seconds(300)
    /// `LIVEHUB_USER_LOOKUP_CONCURRENCY` (16): user lookups running at once.
    public var userLookupConcurrency = 16
    /// `LIVEHUB_ORDER_EVENT_TIMEZONE` (`UTC`): the IANA zone an order event's zone-less `timestamp`
    /// (a Java `LocalDateTime`) is read in.
    public var orderEventTimeZone = TimeZone(identifier: "UTC") ?? .gmt
    /// `LIVEHUB_LOG_LEVEL` (info).
    public var logLevel = "info"
    /// `LIVEHUB_DATABASE_URL` (`postgres://user:pass@host:port/db`): storage on PostgreSQL and
    /// cluster mode (issue 20). Unset: the embedded SQLite file, one node.
    public var databaseURL: PostgresURL?
    /// `LIVEHUB_DATABASE_POOL_SIZE` (10): PostgreSQL connections this node keeps at most (the
    /// broker's listener has its own, on top).
    public var databasePoolSize = 10
    /// `LIVEHUB_NODE_ID`: this node's unique name in the cluster (default: the host name and the
    /// HTTP port). Letters, digits, `.`, `_`, `-`; at most 64 characters.
    public var nodeId: String?
    /// `LIVEHUB_NODE_ADVERTISE_URL`: the base HTTP URL other nodes reach this one at (default
    /// `http://127.0.0.1:{LIVEHUB_HTTP_PORT}`).
    public var nodeAdvertiseURL: String?
    /// `LIVEHUB_BROKER_SHARDS` (16): hub broker outbox shards (cluster mode); the same on every node.
    public var brokerShards = 16
    /// `LIVEHUB_BROKER_RETENTION` (60 s): how long the broker's outbox keeps a broadcast.
    public var brokerRetention: Duration = .seconds(60)
    /// `LIVEHUB_BROKER_POLL_INTERVAL` (0.25 s): the broker reads the outbox this often without a NOTIFY.
    public var brokerPollInterval: Duration = .milliseconds(250)
    /// `LIVEHUB_BROKER_PUBLISH_TIMEOUT` (5 s): a broadcast not committed by then is dropped (counted).
    public var brokerPublishTimeout: Duration = .seconds(5)
    /// `LIVEHUB_BROKER_MAX_PENDING` (10000): broadcasts waiting for their batch at most.
    public var brokerMaxPending = 10_000
    /// `LIVEHUB_BROKER_MAX_BATCH` (500): broadcasts per outbox transaction at most.
    public var brokerMaxBatch = 500
    /// `LIVEHUB_CLUSTER_HEARTBEAT` (1 s): how often a node writes its heartbeat, its viewer counts
    /// and renews its stream leases (cluster mode).
    public var clusterHeartbeat: Duration = .seconds(1)
    /// `LIVEHUB_CLUSTER_NODE_TIMEOUT` (5 s): a node whose heartbeat is older is dead: its viewer
    /// counts stop counting and its LIVE rooms get the reconnect grace from the survivors.
    public var clusterNodeTimeout: Duration = .seconds(5)
    /// `LIVEHUB_CLUSTER_CHAT_RATE` (10): chat lines per user per second across all nodes
    /// (a fixed one-second window in PostgreSQL), on top of each node's token bucket.
    public var clusterChatRatePerSecond = 10

    public init() {}

    /// Whether several nodes may share this node's database (PostgreSQL).
    public var isClusterMode: Bool { databaseURL != nil }

    /// This node's name: `LIVEHUB_NODE_ID`, or the host name and HTTP port.
    public var effectiveNodeId: String {
        if let nodeId { return nodeId }
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }
        return String("\(host.isEmpty ? "node" : host)-\(httpPort)".prefix(64))
    }

    /// The base URL other nodes reach this one at, without a trailing slash.
    public var effectiveAdvertiseURL: String { nodeAdvertiseURL ?? "http://127.0.0.1:\(httpPort)" }

    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("livehub.sqlite") }

    /// The keys tokens are verified with (the dev secret is added in dev mode).
    public var jwtKeySources: JWTKeySources {
        JWTKeySources(secret: jwtSecret, publicKeyPath: jwtPublicKeyPath, jwksPath: jwtJWKSPath)
    }

    public var jwtPolicy: JWTPolicy {
        JWTPolicy(leeway: jwtLeeway, issuer: jwtIssuer, audiences: jwtAudiences)
    }

    /// Why this configuration cannot start outside dev mode (one line naming the variable), or nil.
    public var startupProblem: String? {
        guard !isDevMode else { return nil }
        if jwtKeySources.isEmpty {
            return "LIVEHUB_JWT_SECRET is not set: set it (HS256/HS384/HS512 secret), LIVEHUB_JWT_PUBLIC_KEY (PEM file) "
                + "or LIVEHUB_JWT_JWKS_FILE (JWKS file) so that tokens can be verified, or start with --dev (LIVEHUB_DEV=1) to try LiveHub locally"
        }
        if internalToken == nil {
            return "LIVEHUB_INTERNAL_TOKEN is not set: set it to the bearer token internal services use "
                + "(orders, notifications, nginx-rtmp callbacks), or start with --dev (LIVEHUB_DEV=1) to try LiveHub locally"
        }
        return nil
    }

    /// Reads every `LIVEHUB_*` variable; unknown or malformed values are reported, not ignored.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> LiveHubConfiguration {
        var configuration = LiveHubConfiguration()
        try configuration.apply(environment: environment)
        return configuration
    }

    public mutating func apply(environment: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func port(_ name: String) throws -> Int? {
            guard let raw = value(name) else { return nil }
            guard let port = Int(raw), (0...65535).contains(port) else {
                throw ConfigurationError(variable: name, value: raw, expected: "a port number 0-65535")
            }
            return port
        }
        /// At most a million seconds (11.6 days): enough for any time-out, and far from overflowing
        /// the milliseconds it is turned into.
        func seconds(_ name: String) throws -> Double? {
            guard let raw = value(name) else { return nil }
            guard let seconds = Double(raw), seconds >= 0, seconds <= 1_000_000 else {
                throw ConfigurationError(variable: name, value: raw, expected: "a number of seconds from 0 to 1000000")
            }
            return seconds
        }
        /// Seconds within `range` (by default what `seconds` accepts), as a `Duration`.
        func duration(_ name: String, _ range: ClosedRange<Double> = 0...1_000_000) throws -> Duration? {
            guard let raw = value(name) else { return nil }
            guard let seconds = Double(raw), range.contains(seconds) else {
                throw ConfigurationError(variable: name, value: raw, expected: "seconds in \(range.lowerBound)...\(range.upperBound)")
            }
            return .milliseconds(Int64((seconds * 1000).rounded()))
        }
        func integer(_ name: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let raw = value(name) else { return nil }
            guard let number = Int(raw), range.contains(number) else {
                throw ConfigurationError(variable: name, value: raw, expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        func flag(_ name: String) throws -> Bool? {
            guard let raw = value(name) else { return nil }
            switch raw.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw ConfigurationError(variable: name, value: raw, expected: "1 or 0")
            }
        }
        if let dev = try flag("LIVEHUB_DEV") { isDevMode = dev }
        if let host = value("LIVEHUB_HTTP_HOST") { httpHost = host }
        if let port = try port("LIVEHUB_HTTP_PORT") { httpPort = port }
        if let host = value("LIVEHUB_RTMP_HOST") { rtmpHost = host }
        if let port = try port("LIVEHUB_RTMP_PORT") { rtmpPort = port }
        if let port = try port("LIVEHUB_RTMPS_PORT") { rtmpsPort = port }
        if let path = value("LIVEHUB_TLS_CERT") { tlsCertificatePath = path }
        if let path = value("LIVEHUB_TLS_KEY") { tlsKeyPath = path }
        if let dir = value("LIVEHUB_DATA_DIR") { dataDirectory = dir }
        if let raw = value("LIVEHUB_SQLITE_SYNCHRONOUS") {
            guard let mode = SQLiteSynchronous(rawValue: raw.uppercased()) else {
                throw ConfigurationError(variable: "LIVEHUB_SQLITE_SYNCHRONOUS", value: raw, expected: "FULL or NORMAL")
            }
            sqliteSynchronous = mode
        }
        if let secret = value("LIVEHUB_JWT_SECRET") { jwtSecret = secret }
        if let path = value("LIVEHUB_JWT_PUBLIC_KEY") { jwtPublicKeyPath = path }
        if let path = value("LIVEHUB_JWT_JWKS_FILE") { jwtJWKSPath = path }
        if let leeway = try seconds("LIVEHUB_JWT_LEEWAY") {
            guard leeway <= 3600 else {
                throw ConfigurationError(variable: "LIVEHUB_JWT_LEEWAY", value: "\(leeway)", expected: "at most 3600 seconds")
            }
            jwtLeeway = leeway
        }
        if let issuer = value("LIVEHUB_JWT_ISSUER") { jwtIssuer = issuer }
        if let audiences = value("LIVEHUB_JWT_AUDIENCE") {
            jwtAudiences = audiences.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let token = value("LIVEHUB_INTERNAL_TOKEN") { internalToken = token }
        if let trust = try flag("LIVEHUB_CALLBACK_TRUST_LOOPBACK") { callbackTrustsLoopback = trust }
        if let origins = value("LIVEHUB_CORS_ORIGINS") {
            corsOrigins = origins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let host = value("LIVEHUB_PUBLIC_HOST") { publicHost = host }
        if let grace = try duration("LIVEHUB_RECONNECT_GRACE") { reconnectGrace = grace }
        if let idle = try duration("LIVEHUB_PUBLISHER_IDLE_TIMEOUT") { publisherIdleTimeout = idle }
        if let window = try seconds("LIVEHUB_RTMP_RECEIVE_COALESCING") {
            guard window <= 0.1 else {
                throw ConfigurationError(variable: "LIVEHUB_RTMP_RECEIVE_COALESCING", value: "\(window)", expected: "at most 0.1 seconds")
            }
            rtmpReceiveCoalescing = .microseconds(Int64(window * 1_000_000))
        }
        if let raw = value("LIVEHUB_HLS_VARIANT") {
            guard let variant = HLSVariantName(rawValue: raw) else {
                throw ConfigurationError(variable: "LIVEHUB_HLS_VARIANT", value: raw, expected: "one of fmp4-ll, fmp4, mpegts")
            }
            hlsVariant = variant
        }
        if let segment = try seconds("LIVEHUB_HLS_SEGMENT_SECONDS") {
            guard segment >= 0.5 else { throw ConfigurationError(variable: "LIVEHUB_HLS_SEGMENT_SECONDS", value: "\(segment)", expected: "at least 0.5") }
            hlsSegmentSeconds = segment
        }
        if let part = try seconds("LIVEHUB_HLS_PART_SECONDS") {
            guard part >= 0.1 else { throw ConfigurationError(variable: "LIVEHUB_HLS_PART_SECONDS", value: "\(part)", expected: "at least 0.1") }
            hlsPartSeconds = part
        }
        if let raw = value("LIVEHUB_HLS_WINDOW") {
            guard let window = Int(raw), (3...1000).contains(window) else {
                throw ConfigurationError(variable: "LIVEHUB_HLS_WINDOW", value: raw, expected: "an integer from 3 to 1000")
            }
            hlsWindowSegments = window
        }
        if let retain = try duration("LIVEHUB_HLS_RETAIN_AFTER_END") { hlsRetainAfterEnd = retain }
        if let raw = value("LIVEHUB_MAX_BODY_BYTES") {
            guard let bytes = Int(raw), bytes >= 1024 else {
                throw ConfigurationError(variable: "LIVEHUB_MAX_BODY_BYTES", value: raw, expected: "an integer ≥ 1024")
            }
            maxRequestBodyBytes = bytes
        }
        if let interval = try duration("LIVEHUB_SOCKETIO_PING_INTERVAL") { socketIOPingInterval = interval }
        if let timeout = try duration("LIVEHUB_SOCKETIO_PING_TIMEOUT") { socketIOPingTimeout = timeout }
        if let timeout = try duration("LIVEHUB_SOCKETIO_AUTH_TIMEOUT") { socketIOAuthTimeout = timeout }
        if let timeout = try duration("LIVEHUB_SOCKETIO_CONNECT_TIMEOUT", 0.1...600) { socketIOConnectTimeout = timeout }
        if let bytes = try integer("LIVEHUB_SOCKETIO_MAX_PAYLOAD", 1024...(1 << 20)) { socketIOMaxPayload = bytes }
        if let count = try integer("LIVEHUB_SOCKETIO_MAX_POLLING_SESSIONS", 0...1_000_000) { socketIOMaxPollingSessions = count }
        if let deadline = try duration("LIVEHUB_RTMP_PUBLISH_DEADLINE") { rtmpPublishDeadline = deadline }
        if let count = try integer("LIVEHUB_RTMP_MAX_CONNECTIONS", 1...1_000_000) { rtmpMaxConnections = count }
        if let count = try integer("LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP", 1...1_000_000) { rtmpMaxConnectionsPerAddress = count }
        if let count = try integer("LIVEHUB_RTMP_MAX_CHUNK_STREAMS", 2...65_599) { rtmpMaxChunkStreams = count }
        if let bytes = try integer("LIVEHUB_RTMP_MAX_MESSAGE_BYTES", 65_536...(1 << 30)) { rtmpMaxMessageBytes = bytes }
        if let bytes = try integer("LIVEHUB_RTMP_BUFFER_BYTES_BEFORE_PUBLISH", 16_384...(1 << 30)) { rtmpBufferBytesBeforePublish = bytes }
        if let bytes = try integer("LIVEHUB_RTMP_BUFFER_BYTES", 65_536...(1 << 32)) { rtmpBufferBytes = bytes }
        if let bytes = try integer("LIVEHUB_HLS_MAX_SEGMENT_BYTES", 65_536...(1 << 32)) { hlsMaxSegmentBytes = bytes }
        if let count = try integer("LIVEHUB_HLS_MAX_SEGMENTS_PER_10S", 5...100_000) { hlsMaxSegmentsPerTenSeconds = count }
        if let bytes = try integer("LIVEHUB_HLS_PROXY_CACHE_BYTES", 0...(1 << 40)) { hlsProxyCacheBytes = bytes }
        if let timeout = try duration("LIVEHUB_HLS_PROXY_TIMEOUT", 0.1...120) { hlsProxyTimeout = timeout }
        if let bytes = try integer("LIVEHUB_HLS_DISCOVERY_BUFFER_BYTES", 65_536...(1 << 32)) { hlsDiscoveryBufferBytes = bytes }
        if let template = value("LIVEHUB_SHOP_PRODUCT_URL"), !template.isEmpty {
            let sample = template.replacingOccurrences(of: "{productId}", with: "p1").replacingOccurrences(of: "{roomId}", with: "r1")
            guard template.contains("{productId}"), template.utf8.count <= 2048,
                let url = URL(string: sample), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil
            else {
                throw ConfigurationError(
                    variable: "LIVEHUB_SHOP_PRODUCT_URL", value: template, expected: "an absolute http(s) URL containing {productId}")
            }
            shopProductURLTemplate = template
        }
        if let on = try flag("LIVEHUB_RECORDING") { recordingEnabled = on }
        if let dir = value("LIVEHUB_RECORDINGS_DIR") { recordingsDirectoryOverride = dir }
        if let days = try integer("LIVEHUB_RECORDING_RETENTION_DAYS", 0...100_000) { recordingRetentionDays = days }
        if let bytes = try integer("LIVEHUB_RECORDINGS_MAX_BYTES", 0...(1 << 56)) { recordingsMaxBytes = Int64(bytes) }
        if let bytes = try integer("LIVEHUB_RECORDINGS_MIN_FREE_BYTES", 0...(1 << 56)) { recordingsMinFreeBytes = Int64(bytes) }
        if let sweep = try duration("LIVEHUB_RECORDING_SWEEP_SECONDS", 1...86_400) { recordingSweep = sweep }
        if let bytes = try integer("LIVEHUB_RECORDING_MAX_BACKLOG_BYTES", (1 << 20)...(1 << 34)) { recordingMaxBacklogBytes = bytes }
        if let idle = try duration("LIVEHUB_HTTP_IDLE_TIMEOUT", 0...86_400) { httpIdleTimeout = idle == .zero ? nil : idle }
        if let bytes = try integer("LIVEHUB_HTTP_MAX_HEADER_BYTES", 1024...(1 << 20)) { httpMaxHeaderBytes = bytes }
        if let count = try integer("LIVEHUB_HTTP_MAX_CONNECTIONS_PER_IP", 0...10_000_000) { httpMaxConnectionsPerIP = count }
        if let count = try integer("LIVEHUB_WS_MAX_CONNECTIONS_PER_IP", 0...10_000_000) { wsMaxConnectionsPerIP = count }
        if let count = try integer("LIVEHUB_WS_MAX_CONNECTIONS_PER_USER", 0...1_000_000) { wsMaxConnectionsPerUser = count }
        if let count = try integer("LIVEHUB_WS_MAX_SUBSCRIPTIONS", 1...100_000) { wsMaxSubscriptions = count }
        if let bytes = try integer("LIVEHUB_WS_MAX_INBOUND_BYTES", 1024...(1 << 30)) { wsMaxInboundBytes = bytes }
        if let timeout = try duration("LIVEHUB_STOMP_CONNECT_TIMEOUT", 0.1...3600) { stompConnectTimeout = timeout }
        if let count = try integer("LIVEHUB_HUB_HISTORY_SIZE", 0...100_000) { hubHistorySize = count }
        if let ttl = try duration("LIVEHUB_HUB_HISTORY_TTL_SECONDS", 1...86_400) { hubHistoryTTL = ttl }
        if let count = try integer("LIVEHUB_HUB_HISTORY_MAX_TOPICS", 1...10_000_000) { hubHistoryMaxTopics = count }
        if let bytes = try integer("LIVEHUB_HUB_HISTORY_MAX_BYTES", 0...(1 << 34)) { hubHistoryMaxBytes = bytes }
        if let count = try integer("LIVEHUB_RECOVERY_MAX_MESSAGES", 0...100_000) { recoveryMaxMessages = count }
        if let count = try integer("LIVEHUB_BELL_REPLAY_MAX", 0...10_000) { bellReplayMax = count }
        if let count = try integer("LIVEHUB_REACTIONS_PER_SECOND", 1...10_000) { reactionsPerSecond = count }
        if let ms = try integer("LIVEHUB_REACTION_WINDOW_MS", 50...10_000) { reactionWindow = .milliseconds(ms) }
        if let count = try integer("LIVEHUB_REACTION_MAX_ROOMS", 1...10_000_000) { reactionMaxRooms = count }
        if let count = try integer("LIVEHUB_SOCKJS_MAX_SESSIONS", 1...10_000_000) { sockJSMaxSessions = count }
        if let delay = try duration("LIVEHUB_SOCKJS_DISCONNECT_DELAY", 0.1...60) { sockJSDisconnectDelay = delay }
        if let bytes = try integer("LIVEHUB_SOCKJS_STREAM_BYTES", 4096...(1 << 30)) { sockJSStreamBytes = bytes }
        if let bytes = try integer("LIVEHUB_SOCKJS_MAX_MESSAGE_BYTES", 1024...(64 << 20)) { sockJSMaxMessageBytes = bytes }
        if let bytes = try integer("LIVEHUB_CHAT_MAX_BYTES", 1...65_536) { chatMaxBytes = bytes }
        if let hold = try duration("LIVEHUB_DEAL_RESERVATION_SECONDS", 1...86_400) { dealReservation = hold }
        if let sweep = try duration("LIVEHUB_DEAL_SWEEP_SECONDS", 0.05...60) { dealSweep = sweep }
        if let count = try integer("LIVEHUB_DEALS_MAX_PER_ROOM", 1...1000) { dealsMaxPerRoom = count }
        if let count = try integer("LIVEHUB_IDEMPOTENCY_KEYS_PER_USER", 1...100_000) { idempotencyKeysPerUser = count }
        if let count = try integer("LIVEHUB_IDEMPOTENCY_KEYS_TOTAL", 1...10_000_000) { idempotencyKeysTotal = count }
        if let count = try integer("LIVEHUB_MODERATION_MAX_MODERATORS", 1...10_000) { moderation.moderatorsPerRoom = count }
        if let count = try integer("LIVEHUB_MODERATION_MAX_MUTES", 1...1_000_000) { moderation.mutesPerRoom = count }
        if let count = try integer("LIVEHUB_MODERATION_MAX_BANS", 1...1_000_000) { moderation.bansPerRoom = count }
        if let count = try integer("LIVEHUB_MODERATION_MAX_HELD", 1...100_000) { moderation.heldPerRoom = count }
        if let count = try integer("LIVEHUB_MODERATION_CACHE_ROOMS", 1...1_000_000) { moderation.cachedRooms = count }
        if let ms = try integer("LIVEHUB_MODERATION_CACHE_TTL_MS", 0...60_000) { moderation.cacheTTL = .milliseconds(ms) }
        let serviceURLs: [(String, WritableKeyPath<LiveHubConfiguration, String?>)] = [
            ("LIVEHUB_STOCK_SERVICE_URL", \.stockServiceURL), ("LIVEHUB_USER_SERVICE_URL", \.userServiceURL),
        ]
        for (name, keyPath) in serviceURLs {
            guard let raw = value(name) else { continue }
            guard let url = URLComponents(string: raw), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
                let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil
            else {
                throw ConfigurationError(variable: name, value: raw, expected: "an absolute http(s) URL without query, e.g. http://stock-service:8080")
            }
            self[keyPath: keyPath] = raw.hasSuffix("/") ? String(raw.dropLast()) : raw
        }
        if let token = value("LIVEHUB_SERVICE_TOKEN") { serviceToken = token }
        if let timeout = try duration("LIVEHUB_LOOKUP_CONNECT_TIMEOUT", 0.01...60) { lookupConnectTimeout = timeout }
        if let timeout = try duration("LIVEHUB_LOOKUP_TIMEOUT", 0.01...60) { lookupTimeout = timeout }
        if let bytes = try integer("LIVEHUB_LOOKUP_MAX_BODY_BYTES", 1024...(16 << 20)) { lookupMaxBodyBytes = bytes }
        if let count = try integer("LIVEHUB_USER_CACHE_ENTRIES", 1...10_000_000) { userCacheEntries = count }
        if let ttl = try duration("LIVEHUB_USER_CACHE_TTL", 1...86_400) { userCacheTTL = ttl }
        if let count = try integer("LIVEHUB_USER_LOOKUP_CONCURRENCY", 1...10_000) { userLookupConcurrency = count }
        if let raw = value("LIVEHUB_ORDER_EVENT_TIMEZONE") {
            guard let zone = TimeZone(identifier: raw) else {
                throw ConfigurationError(variable: "LIVEHUB_ORDER_EVENT_TIMEZONE", value: raw, expected: "an IANA time zone such as UTC or Asia/Seoul")
            }
            orderEventTimeZone = zone
        }
        if let level = value("LIVEHUB_LOG_LEVEL") { logLevel = level }
        if let raw = value("LIVEHUB_DATABASE_URL") {
            do {
                databaseURL = try PostgresURL(parsing: raw)
            } catch {
                throw ConfigurationError(variable: "LIVEHUB_DATABASE_URL", value: PostgresURL.redacted(raw), expected: "\(error)")
            }
        }
        if let size = try integer("LIVEHUB_DATABASE_POOL_SIZE", 1...1000) { databasePoolSize = size }
        if let count = try integer("LIVEHUB_BROKER_SHARDS", 1...1024) { brokerShards = count }
        if let retention = try duration("LIVEHUB_BROKER_RETENTION", 1...86_400) { brokerRetention = retention }
        if let interval = try duration("LIVEHUB_BROKER_POLL_INTERVAL", 0.01...60) { brokerPollInterval = interval }
        if let timeout = try duration("LIVEHUB_BROKER_PUBLISH_TIMEOUT", 0.1...600) { brokerPublishTimeout = timeout }
        if let count = try integer("LIVEHUB_BROKER_MAX_PENDING", 1...10_000_000) { brokerMaxPending = count }
        if let count = try integer("LIVEHUB_BROKER_MAX_BATCH", 1...10_000) { brokerMaxBatch = count }
        if let raw = value("LIVEHUB_NODE_ID") {
            guard raw.utf8.count <= 64, raw.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) })
            else {
                throw ConfigurationError(variable: "LIVEHUB_NODE_ID", value: raw, expected: "at most 64 letters, digits, '.', '_' or '-'")
            }
            nodeId = raw
        }
        if let raw = value("LIVEHUB_NODE_ADVERTISE_URL") {
            guard let url = URLComponents(string: raw), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
                let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil
            else {
                throw ConfigurationError(variable: "LIVEHUB_NODE_ADVERTISE_URL", value: raw, expected: "an absolute http(s) URL such as http://10.0.0.5:8080")
            }
            nodeAdvertiseURL = raw.hasSuffix("/") ? String(raw.dropLast()) : raw
        }
        if let beat = try duration("LIVEHUB_CLUSTER_HEARTBEAT", 0.05...60) { clusterHeartbeat = beat }
        if let timeout = try duration("LIVEHUB_CLUSTER_NODE_TIMEOUT", 0.2...600) { clusterNodeTimeout = timeout }
        if let rate = try integer("LIVEHUB_CLUSTER_CHAT_RATE", 1...10_000) { clusterChatRatePerSecond = rate }
        if clusterNodeTimeout <= clusterHeartbeat * 2 {
            throw ConfigurationError(
                variable: "LIVEHUB_CLUSTER_NODE_TIMEOUT", value: "\(clusterNodeTimeout)", expected: "more than twice LIVEHUB_CLUSTER_HEARTBEAT")
        }
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public var variable: String
    public var value: String
    public var expected: String
    public var description: String { "\(variable)=\(value) is invalid: expected \(expected)" }
}
