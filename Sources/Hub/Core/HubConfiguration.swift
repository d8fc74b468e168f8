/// Hub-wide settings. Every limit has a default with its reason.
public struct HubConfiguration: Sendable {
    /// Per-connection outbound queue (default 256 frames / 1 MiB; overflow = slow client dropped).
    public var outboundQueue: OutboundQueueLimits
    /// Messages kept per topic for `Hub.history` (DESIGN.md: last 100 chat messages per room).
    public var historyCapacity: Int
    /// How long `shutdown()` waits for connections to say goodbye before returning.
    public var shutdownGracePeriod: Duration

    public init(
        outboundQueue: OutboundQueueLimits = .init(),
        historyCapacity: Int = 100,
        shutdownGracePeriod: Duration = .seconds(5)
    ) {
        self.outboundQueue = outboundQueue
        self.historyCapacity = historyCapacity
        self.shutdownGracePeriod = shutdownGracePeriod
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
    /// Topics holding history.
    public var historyTopics: Int
    /// Connections dropped as slow consumers since start.
    public var slowClientDrops: Int
    /// Encodes performed by `publish`/`sendToUser` since start (encode-once check).
    public var encodes: Int

    public var connections: Int { self.connectionsByFormat.values.reduce(0, +) }
}
