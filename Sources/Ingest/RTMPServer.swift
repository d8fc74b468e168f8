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
    /// Time allowed from accept to the end of the handshake.
    public var handshakeTimeout: TimeAmount
    /// No media for this long → the publisher is gone (`.idle`); also closes connections that
    /// never publish.
    public var idleTimeout: TimeAmount
    /// Chunk size the server announces and uses for what it sends.
    public var outboundChunkSize: Int
    /// Window Acknowledgement Size / Set Peer Bandwidth announced after connect.
    public var windowAckSize: Int
    /// AMF0 limits for commands and metadata.
    public var amf: AMF0Decoder
    /// Bytes a connection may buffer while its publish is being authorised.
    public var maxBufferedBytes: Int
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
        maxMessageSize: Int = 8 << 20, maxChunkStreams: Int = 64, handshakeTimeout: TimeAmount = .seconds(10),
        idleTimeout: TimeAmount = .seconds(10), outboundChunkSize: Int = 4096, windowAckSize: Int = 2_500_000,
        amf: AMF0Decoder = AMF0Decoder(), maxBufferedBytes: Int = 16 << 20, consumerQueueCapacity: Int = 512,
        receiveCoalescingWindow: TimeAmount = .milliseconds(10)
    ) {
        self.receiveCoalescingWindow = receiveCoalescingWindow
        self.consumerQueueCapacity = consumerQueueCapacity
        self.listeners = listeners
        self.app = app
        self.maxChunkSize = maxChunkSize
        self.maxMessageSize = maxMessageSize
        self.maxChunkStreams = maxChunkStreams
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.outboundChunkSize = outboundChunkSize
        self.windowAckSize = windowAckSize
        self.amf = amf
        self.maxBufferedBytes = maxBufferedBytes
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
        var connections: [ObjectIdentifier: any Channel] = [:]
        var publishers: [String: PublisherRecord] = [:]
        var nextConnectionId = 0
        var shuttingDown = false
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

    /// The owner ended the room: close that publisher's connection (`.endedByOwner`).
    public func disconnectPublisher(roomId: String) async {
        let record = state.withLock { $0.publishers[roomId] }
        await record?.stop(reason: .endedByOwner)
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
        let connections = state.withLock { Array($0.connections.values) }
        for connection in connections {
            try? await connection.close()
        }
    }

    // MARK: - Connection bookkeeping (called by the handlers)

    func connectionOpened(_ channel: any Channel) -> Int? {
        state.withLock { state in
            if state.shuttingDown { return nil }
            state.connections[ObjectIdentifier(channel)] = channel
            state.nextConnectionId += 1
            return state.nextConnectionId
        }
    }

    func connectionClosed(_ channel: any Channel) {
        _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
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
        let session = stream.beginPublish()
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

/// A short, non-reversible tag of a stream key for log lines (the key itself is a secret).
func streamKeyTag(_ key: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in key.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x100_0000_01b3
    }
    let hex = String(hash & 0xFFFF_FFFF, radix: 16)
    return "key#" + String(repeating: "0", count: 8 - hex.count) + hex
}
