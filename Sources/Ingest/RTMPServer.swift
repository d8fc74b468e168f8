import Logging
import MediaCore
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One listening socket. `tls != nil` makes it RTMPS (RTMP inside TLS, same protocol).
public struct RTMPListener: Sendable {
    public var host: String
    /// 0 picks a free port (see `RTMPServer.boundPorts`).
    public var port: Int
    public var tls: NIOSSLContext?

    public init(host: String = "0.0.0.0", port: Int = 1935, tls: NIOSSLContext? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
    }
}

public struct RTMPServerConfiguration: Sendable {
    public var listeners: [RTMPListener]
    /// The only RTMP application accepted: `rtmp://host/<app>/<streamKey>`.
    public var app: String
    /// Largest Set Chunk Size accepted from a peer (DESIGN.md: 64 KiB).
    public var maxChunkSize: Int
    /// Largest RTMP message accepted (DESIGN.md: 8 MiB).
    public var maxMessageSize: Int
    /// Most chunk streams one peer may use (publishers use fewer than 10).
    public var maxChunkStreams: Int
    /// From accept to an authorised `publish` (handshake, `connect`, `createStream`, `publish`):
    /// a peer that has not published by then is closed, however many bytes it trickles in.
    /// OBS and ffmpeg need a few round trips (milliseconds).
    public var publishDeadline: TimeAmount
    /// No media for this long → the publisher is gone (`.idle`). Bytes that are not media (a
    /// chunk trickled forever, pings) do not count.
    public var idleTimeout: TimeAmount
    /// Chunk size the server announces and uses for what it sends.
    public var outboundChunkSize: Int
    /// Window Acknowledgement Size / Set Peer Bandwidth announced after connect.
    public var windowAckSize: Int
    /// AMF0 limits for commands and metadata.
    public var amf: AMF0Decoder
    /// Bytes received and not yet consumed (an unfinished chunk, and whatever arrives while the
    /// publish is being authorised) before `publish`. Default 256 KiB.
    public var maxBufferedBytesBeforePublish: Int
    /// The same once `publish` was sent (while it is authorised, the encoder's first seconds of
    /// media pile up here). Default 16 MiB.
    public var maxBufferedBytes: Int
    /// Bytes the messages being reassembled may declare together before / after the publish is
    /// authorised (`RTMPIngestConnection.Limits`). Defaults 256 KiB / 16 MiB.
    public var reassemblyBytesBeforePublish: Int
    public var reassemblyBytes: Int
    /// Open RTMP(S) connections in total; more are closed at once. Default 1000.
    public var maxConnections: Int
    /// Open RTMP(S) connections from one peer address; more are closed at once. Default 64 (a
    /// studio behind one NAT address publishes a few streams, not hundreds).
    public var maxConnectionsPerAddress: Int
    /// Queue capacity (packets) suggested for consumers' `LiveStream.makeReader(name:capacity:)`.
    /// The ingest itself never queues: `LiveStream.publish` does not block and each reader drops
    /// and counts on its own (MediaCore `StreamReader.droppedPackets`). Default 512 ≈ 8 s of
    /// 30 fps video + AAC.
    public var consumerQueueCapacity: Int
    /// While publishing, let the kernel buffer about this much of the stream (at its measured
    /// rate) before waking the loop (`SO_RCVLOWAT`, see `ReceiveCoalescing`): about half the
    /// wake-ups per stream. `.zero` wakes on every arrival.
    public var receiveCoalescingWindow: TimeAmount

    public init(
        listeners: [RTMPListener] = [RTMPListener()], app: String = "live", maxChunkSize: Int = 65536,
        maxMessageSize: Int = 8 << 20, maxChunkStreams: Int = 64, publishDeadline: TimeAmount = .seconds(10),
        idleTimeout: TimeAmount = .seconds(10), outboundChunkSize: Int = 4096, windowAckSize: Int = 2_500_000,
        amf: AMF0Decoder = AMF0Decoder(), maxBufferedBytesBeforePublish: Int = 256 << 10, maxBufferedBytes: Int = 16 << 20,
        reassemblyBytesBeforePublish: Int = 256 << 10, reassemblyBytes: Int = 16 << 20,
        maxConnections: Int = 1000, maxConnectionsPerAddress: Int = 64,
        consumerQueueCapacity: Int = 512, receiveCoalescingWindow: TimeAmount = .milliseconds(10)
    ) {
        self.receiveCoalescingWindow = receiveCoalescingWindow
        self.consumerQueueCapacity = consumerQueueCapacity
        self.listeners = listeners
        self.app = app
        self.maxChunkSize = maxChunkSize
        self.maxMessageSize = maxMessageSize
        self.maxChunkStreams = maxChunkStreams
        self.publishDeadline = publishDeadline
        self.idleTimeout = idleTimeout
        self.outboundChunkSize = outboundChunkSize
        self.windowAckSize = windowAckSize
        self.amf = amf
        self.maxBufferedBytesBeforePublish = maxBufferedBytesBeforePublish
        self.maxBufferedBytes = maxBufferedBytes
        self.reassemblyBytesBeforePublish = reassemblyBytesBeforePublish
        self.reassemblyBytes = reassemblyBytes
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
    }
}

/// The RTMP(S) ingest: listeners, connections, publisher bookkeeping (takeover, owner end,
/// shutdown). Codec work happens in `RTMPIngestConnection`; this class owns sockets and lifetimes.
public final class RTMPServer: Sendable {
    let configuration: RTMPServerConfiguration
    let authorizer: any PublishAuthorizer
    let registry: StreamRegistry
    let group: any EventLoopGroup
    let logger: Logger
    let metrics: IngestMetrics

    private struct State {
        var listeners: [any Channel] = []
        var connections: [ObjectIdentifier: (channel: any Channel, address: String)] = [:]
        /// Open connections per peer address (entries removed at zero).
        var connectionsPerAddress: [String: Int] = [:]
        var publishers: [String: PublisherRecord] = [:]
        var nextConnectionId = 0
        var shuttingDown = false
        var refusalLog = RefusalLog()
    }

    private let state = Mutex(State())

    public init(
        configuration: RTMPServerConfiguration, authorizer: any PublishAuthorizer, registry: StreamRegistry,
        group: any EventLoopGroup, logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.authorizer = authorizer
        self.registry = registry
        self.group = group
        self.logger = logger
        self.metrics = IngestMetrics(factory: metricsFactory)
    }

    /// Binds every listener.
    public func start() async throws {
        for listener in configuration.listeners {
            let tls = listener.tls
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        }
                        try channel.pipeline.syncOperations.addHandler(RTMPConnectionHandler(server: self, secure: tls != nil))
                    }
                }
            let channel = try await bootstrap.bind(host: listener.host, port: listener.port).get()
            state.withLock { $0.listeners.append(channel) }
            logger.info(
                "RTMP listening",
                metadata: ["address": "\(listener.host):\(channel.localAddress?.port ?? listener.port)", "tls": "\(tls != nil)"])
        }
    }

    /// The actual ports, in listener order.
    public var boundPorts: [Int] {
        state.withLock { $0.listeners.compactMap { $0.localAddress?.port } }
    }

    /// True while an accepted publisher of the room is connected.
    public func hasPublisher(roomId: String) -> Bool {
        state.withLock { $0.publishers[roomId] != nil }
    }

    /// The owner ended the room: close that publisher's connection (`.endedByOwner`); or, in a
    /// cluster, another node's publisher took the room (`.takenOver`).
    public func disconnectPublisher(roomId: String, reason: PublisherStopReason = .endedByOwner) async {
        let record = state.withLock { $0.publishers[roomId] }
        await record?.stop(reason: reason)
    }

    /// Close the listeners and every connection; publishers stop with `.shutdown`.
    public func shutdown() async throws {
        let (listeners, publishers) = state.withLock { state in
            state.shuttingDown = true
            let listeners = state.listeners
            state.listeners = []
            return (listeners, Array(state.publishers.values))
        }
        for listener in listeners {
            try? await listener.close()
        }
        for record in publishers {
            await record.stop(reason: .shutdown)
        }
        let connections = state.withLock { $0.connections.values.map(\.channel) }
        for connection in connections {
            try? await connection.close()
        }
    }

    /// Open connections (tests, metrics).
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    // MARK: - Connection bookkeeping (called by the handlers)

    enum Admission {
        case accepted(id: Int)
        case shuttingDown
        /// Over `maxConnections` (`perAddress` false) or `maxConnectionsPerAddress`.
        case overLimit(perAddress: Bool)
    }

    /// Counts a new connection against `maxConnections` and `maxConnectionsPerAddress`; a refusal
    /// is counted in metrics and logged (at most one line a second, `RefusalLog`).
    func connectionOpened(_ channel: any Channel) -> Admission {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let (admission, logLine) = state.withLock { state -> (Admission, String?) in
            if state.shuttingDown { return (.shuttingDown, nil) }
            let fromAddress = state.connectionsPerAddress[address, default: 0]
            let reason: String
            let admission: Admission
            if state.connections.count >= configuration.maxConnections {
                admission = .overLimit(perAddress: false)
                reason = "\(state.connections.count) connections open (limit \(configuration.maxConnections), LIVEHUB_RTMP_MAX_CONNECTIONS)"
            } else if fromAddress >= configuration.maxConnectionsPerAddress {
                admission = .overLimit(perAddress: true)
                reason = "\(fromAddress) connections open from \(address) (limit \(configuration.maxConnectionsPerAddress), LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP)"
            } else {
                state.connections[ObjectIdentifier(channel)] = (channel, address)
                state.connectionsPerAddress[address] = fromAddress + 1
                state.nextConnectionId += 1
                return (.accepted(id: state.nextConnectionId), nil)
            }
            return (admission, state.refusalLog.lineToLog(reason, now: .now()))
        }
        if case .overLimit(let perAddress) = admission {
            metrics.connectionRefused(perAddress ? "per_address" : "total")
            if let logLine { logger.warning("refusing RTMP connection: \(logLine)") }
        }
        return admission
    }

    func connectionClosed(_ channel: any Channel) {
        state.withLock { state in
            guard let (_, address) = state.connections.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            let remaining = state.connectionsPerAddress[address, default: 1] - 1
            state.connectionsPerAddress[address] = remaining > 0 ? remaining : nil
        }
    }

    /// Accepted publish: take over any current publisher of the room, start the stream.
    func beginPublish(roomId: String, channel: any Channel, logger: Logger) async -> PublisherRecord {
        let stream = registry.stream(for: roomId)
        let record = PublisherRecord(roomId: roomId, stream: stream, channel: channel, server: self, logger: logger)
        let previous = state.withLock { state -> PublisherRecord? in
            let previous = state.publishers[roomId]
            state.publishers[roomId] = record
            return previous
        }
        if let previous {
            logger.info("publisher takes over the room", metadata: ["room": "\(roomId)"])
            await previous.stop(reason: .takenOver)
        }
        let metrics = self.metrics
        let session = stream.beginPublish { [weak record] reason in
            guard let record else { return }
            metrics.publishersCutOff.increment()
            logger.warning("publisher cut off: \(reason)", metadata: ["room": "\(roomId)"])
            Task { await record.stop(reason: .limitExceeded) }
        }
        record.markStarted()
        metrics.publisherConnected()
        await authorizer.publisherStarted(roomId: roomId, session: session)
        return record
    }

    func publisherRecordStopped(_ record: PublisherRecord) {
        state.withLock { state in
            if state.publishers[record.roomId] === record {
                state.publishers[record.roomId] = nil
            }
        }
    }
}

/// One accepted publish. `stop(reason:)` runs its effects exactly once, whoever calls it first
/// (the connection closing, a takeover, the owner, shutdown).
final class PublisherRecord: Sendable {
    let roomId: String
    let stream: LiveStream
    let channel: any Channel
    private let server: RTMPServer
    private let logger: Logger

    private struct State {
        var started = false
        var stopped = false
    }

    private let state = Mutex(State())

    init(roomId: String, stream: LiveStream, channel: any Channel, server: RTMPServer, logger: Logger) {
        self.roomId = roomId
        self.stream = stream
        self.channel = channel
        self.server = server
        self.logger = logger
    }

    func markStarted() {
        state.withLock { $0.started = true }
    }

    /// Forward an event unless this publisher was stopped (checked under the same lock that
    /// `stop` takes, so nothing reaches the stream after `publishStopped`).
    func publish(_ event: StreamEvent) {
        state.withLock { state in
            guard !state.stopped else { return }
            stream.publish(event)
        }
    }

    func stop(reason: PublisherStopReason) async {
        let claimed = state.withLock { state -> Bool in
            if state.stopped { return false }
            state.stopped = true
            return true
        }
        guard claimed else { return }
        server.publisherRecordStopped(self)
        channel.close(promise: nil)
        stream.endPublish()
        server.metrics.publisherDisconnected()
        logger.info("publisher stopped", metadata: ["room": "\(roomId)", "reason": "\(reason.rawValue)"])
        await server.authorizer.publisherStopped(roomId: roomId, reason: reason)
    }
}

/// At most one log line a second for refused connections, however fast they come: a flood of
/// connection attempts must not become a flood of log lines. The line after a quiet second says
/// how many refusals it stood for.
struct RefusalLog {
    private var lastLogged: NIODeadline?
    private var suppressed = 0

    mutating func lineToLog(_ reason: String, now: NIODeadline) -> String? {
        if let lastLogged, now - lastLogged < .seconds(1) {
            suppressed += 1
            return nil
        }
        defer {
            lastLogged = now
            suppressed = 0
        }
        return suppressed == 0 ? reason : "\(reason) (and \(suppressed) more refused in the last second)"
    }
}
