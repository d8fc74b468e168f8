/// Hub-wide settings. Every limit has a default with its reason.
public struct HubConfiguration: Sendable {
    /// Per-connection outbound queue (default 256 frames / 1 MiB; overflow = slow client dropped).
    public var outboundQueue: OutboundQueueLimits
    /// How long `shutdown()` waits for connections to say goodbye before returning.
    public var shutdownGracePeriod: Duration
    /// Connections one signed-in user may hold per protocol (STOMP, Socket.IO): a user's tabs.
    /// `setIdentity` refuses one more (`IdentityChange.refusedAtUserLimit`); nil = no limit.
    /// Default 20: a browser with 20 tabs of the live page, each one STOMP and one Socket.IO socket.
    public var maxConnectionsPerUser: Int?
    /// Bytes of received frames a connection may have waiting to be processed before its socket
    /// stops being read (TCP then pushes back on the client); reading resumes at half. Each frame
    /// counts its payload plus 64 bytes (a flood of empty frames
    /// is bounded too). Default 256 KiB: a chat frame is
    /// ~100 B, STOMP's largest 64 KiB; a client has that much in flight only when it floods.
    public var maxInboundBytes: Int
    /// Per-topic history and offsets (`HubHistory`, recovery after a reconnect).
    public var history: HubHistoryConfiguration
    /// Topics whose messages get offsets and a history: those starting with this prefix.
    public var historyTopicPrefix: String

    public init(
        outboundQueue: OutboundQueueLimits = .init(),
        shutdownGracePeriod: Duration = .seconds(5),
        maxConnectionsPerUser: Int? = 20,
        maxInboundBytes: Int = 256 * 1024,
        history: HubHistoryConfiguration = .init(),
        historyTopicPrefix: String = "/topic/"
    ) {
        self.history = history
        self.historyTopicPrefix = historyTopicPrefix
        self.outboundQueue = outboundQueue
        self.shutdownGracePeriod = shutdownGracePeriod
        self.maxConnectionsPerUser = maxConnectionsPerUser
        self.maxInboundBytes = maxInboundBytes
    }
}

/// Counts for a debug page / metric (`Hub.snapshot()`).
public struct HubSnapshot: Sendable, Hashable {
    /// Open connections by wire format name.
    public var connectionsByFormat: [String: Int]
    /// Distinct signed-in users with ≥ 1 connection.
    public var users: Int
    /// Distinct users with ≥ 1 connection, by protocol name (bell users online = `["socketio"]`).
    public var usersByProtocol: [String: Int]
    /// Topics with ≥ 1 subscriber.
    public var topics: Int
    /// (connection, topic, variant) subscriptions.
    public var subscriptions: Int
    /// Connections dropped as slow consumers since start.
    public var slowClientDrops: Int
    /// Encodes performed by `publish`/`sendToUser` since start (encode-once check).
    public var encodes: Int

    public var connections: Int { self.connectionsByFormat.values.reduce(0, +) }
}
