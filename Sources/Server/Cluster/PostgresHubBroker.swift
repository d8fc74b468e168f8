import CoreMetrics
import Hub
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The multi-node `HubBroker` (issue 20), after Centrifugo's PostgreSQL broker (v6.8): every
/// broadcast goes into the append-only `livehub_broker_outbox` (`BrokerOutboxWriter`, group
/// commit), and every node — the publishing one too — reads the outbox in id order per shard and
/// hands each event to its own `Hub`. So each node delivers the same events in the same order per
/// room, once each. A `LISTEN livehub_broker` connection wakes the reader at once; a poll every
/// `LIVEHUB_BROKER_POLL_INTERVAL` covers a lost notification or a dropped listener; old rows are
/// pruned after `LIVEHUB_BROKER_RETENTION`. See Sources/Server/Cluster/README.md.
///
/// `run()` (a `Service`) must be running for this node's hub to receive anything, including its
/// own broadcasts.
public final class PostgresHubBroker: HubBroker, Service {
    public struct Configuration: Sendable {
        /// `LIVEHUB_NODE_ID`: recorded as each row's origin.
        public var nodeId: String
        /// `LIVEHUB_BROKER_SHARDS` (16): outbox shards; the same on every node.
        public var shards = 16
        /// `LIVEHUB_BROKER_RETENTION` (60 s): how long a row stays for nodes that are behind.
        public var retention: Duration = .seconds(60)
        /// `LIVEHUB_BROKER_POLL_INTERVAL` (0.25 s): the reader's wake-up without a notification.
        public var pollInterval: Duration = .milliseconds(250)
        /// `LIVEHUB_BROKER_PUBLISH_TIMEOUT` (5 s): how long a batch may take to commit before its
        /// broadcasts are given up (logged, `livehub_broker_dropped_total{reason="timeout"}`).
        public var publishTimeout: Duration = .seconds(5)
        /// `LIVEHUB_BROKER_MAX_PENDING` (10000): broadcasts waiting for their batch; one more is dropped.
        public var maxPending = 10_000
        /// `LIVEHUB_BROKER_MAX_BATCH` (500): broadcasts per transaction at most.
        public var maxBatch = 500
        /// Rows the reader takes per shard and query.
        public var readLimit = 1000

        public init(nodeId: String) {
            self.nodeId = nodeId
        }

        public init(_ configuration: LiveHubConfiguration) {
            nodeId = configuration.effectiveNodeId
            shards = configuration.brokerShards
            retention = configuration.brokerRetention
            pollInterval = configuration.brokerPollInterval
            publishTimeout = configuration.brokerPublishTimeout
            maxPending = configuration.brokerMaxPending
            maxBatch = configuration.brokerMaxBatch
        }
    }

    public let hub: Hub
    let database: PostgresDatabase
    let configuration: Configuration
    let metrics: BrokerMetrics
    let logger: Logger
    private let writer: BrokerOutboxWriter
    private let reading = Mutex(false)
    private let earlyIds = BrokerEarlyIds()
    /// Per shard, the id above which this node has delivered every row (its starting cursor, raised
    /// past rows pruned before it read them): the floor of the hub's history for that shard's
    /// topics (`HubPublishOffset.completeAfter`).
    private let completeAfter = Mutex<[Int32: Int64]>([:])

    /// Whether `run()` has its starting cursors and reads the outbox (this node now receives).
    public var isReading: Bool { reading.withLock { $0 } }

    public init(hub: Hub, database: PostgresDatabase, configuration: Configuration, metricsFactory: any MetricsFactory, logger: Logger) {
        self.hub = hub
        self.database = database
        self.configuration = configuration
        self.metrics = BrokerMetrics(factory: metricsFactory)
        var logger = logger
        logger[metadataKey: "component"] = "broker"
        self.logger = logger
        self.writer = BrokerOutboxWriter(
            client: database.client, configuration: configuration, earlyIds: earlyIds, metrics: metrics, logger: logger)
    }

    // MARK: HubBroker

    public func publish(topic: String, payload: ByteBuffer, contentType: String?, offset: UInt64?) async {
        _ = await publishReportingOutcome(topic: topic, payload: payload, contentType: contentType, offset: offset)
    }

    public func sendToUser(userId: String, event: String, payload: ByteBuffer) async {
        _ = await sendToUserReportingOutcome(userId: userId, event: event, payload: payload)
    }

    /// `publish`, telling whether the broadcast was committed (`false`: dropped and counted).
    /// A topic event's `event` column holds the publisher's offset in decimal (the chat topic's
    /// `seq`), empty when the outbox id is the offset.
    func publishReportingOutcome(topic: String, payload: ByteBuffer, contentType: String?, offset: UInt64? = nil) async -> Bool {
        await writer.submit(BrokerEvent(
            kind: .topic, target: topic, event: offset.map { String($0) } ?? "", contentType: contentType ?? "", payload: payload,
            shard: BrokerSharding.shard(ofTopic: topic, shards: configuration.shards)))
    }

    func sendToUserReportingOutcome(userId: String, event: String, payload: ByteBuffer) async -> Bool {
        await writer.submit(BrokerEvent(
            kind: .user, target: userId, event: event, contentType: "", payload: payload,
            shard: BrokerSharding.shard(ofUser: userId, shards: configuration.shards)))
    }

    // MARK: Service

    private enum Wake: Sendable { case notify, poll }

    /// Creates the shard rows, starts every shard's cursor at its current last id (a new node
    /// delivers what is published from now on, and what it published itself while starting: see
    /// `BrokerEarlyIds`), then listens, polls, reads and prunes until the
    /// application shuts down. Retries the start while the database is unreachable.
    public func run() async throws {
        var cursors: [Int32: Int64]?
        while cursors == nil {
            do {
                cursors = try await startingCursors()
            } catch {
                logger.error("broker cannot read the outbox shards; retrying in 1 s", metadata: ["error": "\(String(reflecting: error))"])
                try await Task.sleep(for: .seconds(1))
            }
        }
        let start = cursors ?? [:]
        completeAfter.withLock { $0 = start }
        reading.withLock { $0 = true }
        defer { reading.withLock { $0 = false } }
        logger.info("broker started", metadata: ["shards": "\(start.count)", "node": "\(configuration.nodeId)"])
        let (wakes, wake) = AsyncStream.makeStream(of: Wake.self, bufferingPolicy: .bufferingNewest(1))
        try await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.listen(wake: wake) }
                group.addTask { await self.poll(wake: wake) }
                group.addTask { await self.pruneLoop() }
                group.addTask { await self.read(wakes: wakes, from: start) }
                _ = await group.next()
                group.cancelAll()
            }
        }
    }

    func startingCursors() async throws -> [Int32: Int64] {
        // The broker's tables exist: `LiveHubStorage.open` (and the tests' `TestPostgres.withDatabase`)
        // migrated before any service runs.
        try await BrokerOutboxWriter.ensureShardRows(configuration.shards, client: database.client, logger: logger)
        // Every node numbers a topic with the same outbox ids, under the cluster's one epoch
        // (`store-v6-recovery`), so a client recovers on any node.
        for try await epoch in try await database.client.query("SELECT epoch FROM livehub_hub_epoch WHERE id = 1", logger: logger)
            .decode(String.self)
        {
            hub.adoptEpoch(epoch)
        }
        var cursors: [Int32: Int64] = [:]
        for try await (shard, lastId) in try await database.client.query("SELECT shard, last_id FROM livehub_broker_shard", logger: logger)
            .decode((Int32, Int64).self)
        {
            cursors[shard] = lastId
        }
        for (shard, firstId) in earlyIds.stopAndTake() {
            cursors[shard] = min(cursors[shard] ?? firstId - 1, firstId - 1)
        }
        if cursors.count != configuration.shards {
            logger.warning(
                "livehub_broker_shard has rows another LIVEHUB_BROKER_SHARDS made: set the same value on every node (a room's order holds only within one shard)",
                metadata: ["rows": "\(cursors.count)", "configured": "\(configuration.shards)"])
        }
        return cursors
    }

    /// `LISTEN livehub_broker` on a connection of its own, reopened 1 s after it drops. Each
    /// (re)connection also wakes the reader: notifications sent while it was down are lost.
    private func listen(wake: AsyncStream<Wake>.Continuation) async {
        var attempts = 0
        while !Task.isCancelled {
            if attempts > 0 { metrics.listenerReconnects.increment() }
            attempts += 1
            do {
                let connection = try await database.connectDedicated(logger: logger)
                let outcome: Result<Void, any Error>
                do {
                    try await withTaskCancellationHandler {
                        try await connection.listen(on: "livehub_broker") { notifications in
                            wake.yield(.notify)
                            for try await _ in notifications { wake.yield(.notify) }
                        }
                    } onCancel: {
                        let closing: EventLoopFuture<Void> = connection.close()
                        closing.whenComplete { _ in }
                    }
                    outcome = .success(())
                } catch {
                    outcome = .failure(error)
                }
                // Closed on every path: postgres-nio asserts that a connection is closed before it goes.
                try? await connection.close()
                try outcome.get()
            } catch {
                if Task.isCancelled { return }
                logger.warning("broker listener lost its connection; reconnecting in 1 s", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func poll(wake: AsyncStream<Wake>.Continuation) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.pollInterval)
            wake.yield(.poll)
        }
    }

    /// The only reader of this node: one wake-up at a time, so each row is delivered once.
    private func read(wakes: AsyncStream<Wake>, from start: [Int32: Int64]) async {
        var cursors = start
        for await reason in wakes {
            switch reason {
            case .notify: metrics.wakeupsNotify.increment()
            case .poll: metrics.wakeupsPoll.increment()
            }
            do {
                try await drain(&cursors)
            } catch {
                if Task.isCancelled { return }
                logger.warning("broker read failed; retrying at the next wake-up", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Reads every shard past its cursor (one query for all shards, `readLimit` rows each) and
    /// delivers the rows to the local hub in id order per shard, until no shard has more.
    func drain(_ cursors: inout [Int32: Int64]) async throws {
        while true {
            let shards = cursors.keys.sorted()
            let after = shards.map { cursors[$0] ?? 0 }
            let limit = configuration.readLimit
            let rows = try await database.client.query(
                """
                SELECT o.shard, o.id, o.kind, o.target, o.event, o.content_type, o.payload
                FROM unnest(\(shards)::integer[], \(after)::bigint[]) AS c(shard, after_id)
                CROSS JOIN LATERAL (
                    SELECT * FROM livehub_broker_outbox AS b WHERE b.shard = c.shard AND b.id > c.after_id ORDER BY b.id LIMIT \(limit)
                ) AS o
                ORDER BY o.shard, o.id
                """, logger: logger)
            var rowsPerShard: [Int32: Int] = [:]
            for try await (shard, id, kind, target, event, contentType, payload) in rows.decode(
                (Int32, Int64, Int16, String, String?, String?, ByteBuffer).self)
            {
                let cursor = cursors[shard] ?? 0
                if id > cursor + 1 {
                    completeAfter.withLock { $0[shard] = max($0[shard] ?? 0, id - 1) }
                    metrics.skippedIds.increment(by: id - cursor - 1)
                    logger.warning("broker skipped outbox rows pruned before this node read them", metadata: ["shard": "\(shard)", "from": "\(cursor + 1)", "to": "\(id - 1)"])
                }
                guard id > cursor else { continue }
                cursors[shard] = id
                rowsPerShard[shard, default: 0] += 1
                switch BrokerEvent.Kind(rawValue: kind) {
                case .topic:
                    // The offset: the publisher's (the chat's `seq`, in `event`), else the outbox id —
                    // increasing per topic, since a room's topics share one shard read in id order.
                    let offset: HubPublishOffset
                    if let event, !event.isEmpty, let explicit = UInt64(event) {
                        offset = HubPublishOffset(explicit)
                    } else {
                        let floor = completeAfter.withLock { $0[shard] } ?? cursor
                        offset = HubPublishOffset(UInt64(max(id, 0)), completeAfter: UInt64(max(floor, 0)))
                    }
                    hub.publish(topic: target, payload: payload, contentType: contentType, offset: offset)
                case .user: hub.sendToUser(userId: target, event: event ?? "", payload: payload)
                case nil: logger.warning("broker row of an unknown kind skipped", metadata: ["kind": "\(kind)"])
                }
                metrics.delivered.increment()
            }
            if !rowsPerShard.values.contains(where: { $0 >= limit }) { return }
        }
    }

    private func pruneLoop() async {
        let period = min(max(configuration.retention / 4, .seconds(1)), .seconds(30))
        while !Task.isCancelled {
            try? await Task.sleep(for: period)
            if Task.isCancelled { return }
            do {
                _ = try await prune()
            } catch {
                logger.warning("broker prune failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Deletes the rows older than the retention; returns how many.
    @discardableResult
    func prune() async throws -> Int {
        let components = configuration.retention.components
        let seconds = Double(components.seconds) + Double(components.attoseconds) / 1e18
        var deleted = 0
        for try await count in try await database.client.query(
            """
            WITH gone AS (DELETE FROM livehub_broker_outbox WHERE created_at < now() - make_interval(secs => \(seconds)) RETURNING 1)
            SELECT count(*) FROM gone
            """, logger: logger
        ).decode(Int64.self) {
            deleted = Int(count)
        }
        metrics.pruned.increment(by: Int64(deleted))
        return deleted
    }
}
