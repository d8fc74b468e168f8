import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// One broadcast on its way into the outbox.
struct BrokerEvent: Sendable {
    enum Kind: Int16, Sendable {
        /// `Hub.publish(topic:payload:contentType:)`; `target` is the topic.
        case topic = 1
        /// `Hub.sendToUser(userId:event:payload:)`; `target` is the user id.
        case user = 2
    }

    var kind: Kind
    var target: String
    /// The user event's name (empty for a topic publish).
    var event: String
    /// The topic publish's content type (empty: none).
    var contentType: String
    var payload: ByteBuffer
    var shard: Int32
}

/// Group commit (the writing half of `PostgresHubBroker`): publishes that arrive while a batch is
/// being written wait in `pending` and go together in the next transaction, so a burst of chats
/// costs one commit, not one each. A caller resumes once its batch committed (`true`) or failed
/// or timed out (`false`).
///
/// One batch is one transaction:
/// 1. `SELECT … FROM livehub_broker_shard WHERE shard = ANY(…) ORDER BY shard FOR UPDATE` locks
///    the batch's shard rows in ascending order (two nodes never wait on each other in a cycle);
/// 2. `UPDATE … SET last_id = last_id + n RETURNING last_id` takes `n` ids per shard;
/// 3. one `INSERT … SELECT FROM unnest(…)` writes the rows.
/// Then, after `COMMIT` and outside the transaction, one `NOTIFY livehub_broker` wakes the readers.
///
/// No gaps: a shard's ids are taken under its row lock in the same transaction that inserts the
/// rows. Another writer of that shard waits for the lock, so it takes its ids only after this one
/// committed (and its rows are visible); a rollback undoes the counter with the rows, so the next
/// writer takes the same ids again. A reader that sees id `k` therefore already sees every id below.
actor BrokerOutboxWriter {
    private struct Waiting {
        var event: BrokerEvent
        var done: CheckedContinuation<Bool, Never>
    }

    private let client: PostgresClient
    private let nodeId: String
    private let shards: Int
    private let maxBatch: Int
    private let maxPending: Int
    private let publishTimeout: Duration
    private let metrics: BrokerMetrics
    private let logger: Logger
    private var pending: [Waiting] = []
    private var isFlushing = false
    private var shardRowsExist = false
    private let earlyIds: BrokerEarlyIds

    init(client: PostgresClient, configuration: PostgresHubBroker.Configuration, earlyIds: BrokerEarlyIds, metrics: BrokerMetrics, logger: Logger) {
        self.client = client
        self.earlyIds = earlyIds
        self.nodeId = configuration.nodeId
        self.shards = configuration.shards
        self.maxBatch = configuration.maxBatch
        self.maxPending = configuration.maxPending
        self.publishTimeout = configuration.publishTimeout
        self.metrics = metrics
        self.logger = logger
    }

    /// Records `event` for every node; `false` when it could not be (then it is counted as dropped).
    func submit(_ event: BrokerEvent) async -> Bool {
        guard pending.count < maxPending else {
            metrics.droppedQueueFull.increment()
            logger.warning("broker queue full: broadcast dropped", metadata: ["pending": "\(pending.count)"])
            return false
        }
        return await withCheckedContinuation { done in
            pending.append(Waiting(event: event, done: done))
            if !isFlushing {
                isFlushing = true
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while !pending.isEmpty {
            let count = min(pending.count, maxBatch)
            let batch = Array(pending.prefix(count))
            pending.removeFirst(count)
            let events = batch.map(\.event)
            let outcome = await Self.firstOf(timeout: publishTimeout) { [self] in
                do {
                    try await self.write(events)
                    return .committed
                } catch {
                    self.logger.error("broker write failed: broadcasts dropped", metadata: ["events": "\(events.count)", "error": "\(String(reflecting: error))"])
                    return .failed
                }
            }
            switch outcome {
            case .committed:
                metrics.published.increment(by: Int64(events.count))
                metrics.batches.increment()
            case .failed:
                metrics.droppedError.increment(by: Int64(events.count))
            case .timedOut:
                metrics.droppedTimeout.increment(by: Int64(events.count))
                logger.error("broker write timed out: broadcasts dropped", metadata: ["events": "\(events.count)", "timeout": "\(publishTimeout)"])
            }
            for waiting in batch { waiting.done.resume(returning: outcome == .committed) }
            if outcome == .committed {
                do {
                    try await client.query("NOTIFY livehub_broker", logger: logger)
                } catch {
                    logger.warning("broker NOTIFY failed; readers catch up at their next poll", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
        }
        isFlushing = false
    }

    private enum Outcome: Sendable { case committed, failed, timedOut }

    /// Who resumes `firstOf`'s caller: the first of the work and the timer takes `waiter`.
    private final class RaceState: Sendable {
        let lock = Mutex<(waiter: CheckedContinuation<Outcome, Never>?, work: Task<Void, Never>?, timer: Task<Void, Never>?)>((nil, nil, nil))
    }

    /// `operation`'s outcome, or `.timedOut` after `timeout` (the operation is then cancelled and
    /// left to end on its own: a write that still commits is delivered, though counted as dropped).
    private static func firstOf(timeout: Duration, _ operation: @escaping @Sendable () async -> Outcome) async -> Outcome {
        let state = RaceState()
        return await withCheckedContinuation { waiter in
            state.lock.withLock { $0.waiter = waiter }
            let work = Task {
                let outcome = await operation()
                let (waiter, timer) = state.lock.withLock { s in
                    defer { s.waiter = nil }
                    return (s.waiter, s.timer)
                }
                timer?.cancel()
                waiter?.resume(returning: outcome)
            }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                let (waiter, work) = state.lock.withLock { s in
                    defer { s.waiter = nil }
                    return (s.waiter, s.work)
                }
                guard let waiter else { return }
                work?.cancel()
                waiter.resume(returning: .timedOut)
            }
            state.lock.withLock { s in
                s.work = work
                s.timer = timer
            }
        }
    }

    /// Adds the shard rows `0..<shards` that are missing (idempotent; every node does it once).
    static func ensureShardRows(_ shards: Int, client: PostgresClient, logger: Logger) async throws {
        let last = shards - 1
        try await client.query(
            "INSERT INTO livehub_broker_shard (shard) SELECT generate_series(0, \(last)) ON CONFLICT (shard) DO NOTHING", logger: logger)
    }

    private func write(_ events: [BrokerEvent]) async throws {
        if !shardRowsExist {
            try await Self.ensureShardRows(shards, client: client, logger: logger)
            shardRowsExist = true
        }
        var indexesByShard: [Int32: [Int]] = [:]
        for (index, event) in events.enumerated() { indexesByShard[event.shard, default: []].append(index) }
        let shardList = indexesByShard.keys.sorted()
        let counts = shardList.map { Int64(indexesByShard[$0]?.count ?? 0) }
        let nodeId = self.nodeId
        let logger = self.logger
        let earlyIds = self.earlyIds
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                "SELECT shard FROM livehub_broker_shard WHERE shard = ANY(\(shardList)::integer[]) ORDER BY shard FOR UPDATE", logger: logger)
            let taken = try await connection.query(
                """
                UPDATE livehub_broker_shard AS s SET last_id = s.last_id + c.n
                FROM unnest(\(shardList)::integer[], \(counts)::bigint[]) AS c(shard, n)
                WHERE s.shard = c.shard RETURNING s.shard, s.last_id
                """, logger: logger)
            var ids = [Int64](repeating: 0, count: events.count)
            var assigned = 0
            for try await (shard, lastId) in taken.decode((Int32, Int64).self) {
                guard let indexes = indexesByShard[shard] else { continue }
                var id = lastId - Int64(indexes.count)
                earlyIds.record(shard: shard, firstId: id + 1)
                for index in indexes {
                    id += 1
                    ids[index] = id
                }
                assigned += indexes.count
            }
            guard assigned == events.count else { throw BrokerError("a shard row is missing from livehub_broker_shard") }
            try await connection.query(
                """
                INSERT INTO livehub_broker_outbox (shard, id, kind, target, event, content_type, payload, origin_node)
                SELECT s, i, k, t, NULLIF(e, ''), NULLIF(c, ''), p, \(nodeId)
                FROM unnest(\(events.map(\.shard))::integer[], \(ids)::bigint[], \(events.map(\.kind.rawValue))::smallint[],
                    \(events.map(\.target))::text[], \(events.map(\.event))::text[], \(events.map(\.contentType))::text[],
                    \(events.map(\.payload))::bytea[]) AS x(s, i, k, t, e, c, p)
                """, logger: logger)
        }
    }
}

/// The first id per shard this node took before its reader had its starting cursors. The reader
/// starts each shard at `min(last_id, first early id - 1)`, so a broadcast published while the node
/// was starting (HTTP may serve before the broker's service has read the shards) still reaches
/// this node's hub. Ids are recorded inside the transaction, before its commit; the reader reads
/// `last_id` first and only then stops the recording: a write that records after that commits
/// after the reader's read, so its ids lie above the `last_id` the reader saw.
final class BrokerEarlyIds: Sendable {
    private let firstIds = Mutex<[Int32: Int64]?>([:])

    func record(shard: Int32, firstId: Int64) {
        firstIds.withLock { map in
            guard var recorded = map else { return }
            recorded[shard] = min(recorded[shard] ?? firstId, firstId)
            map = recorded
        }
    }

    /// Ends the recording; returns what was recorded.
    func stopAndTake() -> [Int32: Int64] {
        firstIds.withLock { map in
            defer { map = nil }
            return map ?? [:]
        }
    }
}

struct BrokerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
