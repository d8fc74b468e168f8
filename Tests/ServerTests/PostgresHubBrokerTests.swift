import Foundation
import Hub
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import Testing

@testable import Server

/// Encodes `destination|payload` (for a user event, the destination is the event name).
private struct RecordingEncoder: HubMessageEncoder {
    func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame {
        .text(ByteBuffer(string: "\(message.destination)|\(message.payloadString)"))
    }
}

/// One LiveHub node of a test cluster: its own pool, its own `Hub` with one recording connection
/// (signed in as `alice`), and a `PostgresHubBroker` running as it does in `LiveHub.build`.
final class BrokerTestNode: Sendable {
    let hub: Hub
    let connection: HubConnection
    let database: Server.PostgresDatabase
    let broker: PostgresHubBroker
    let metrics: LiveHubMetrics
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let received = Mutex<[String]>([])

    init(url: PostgresURL, name: String, topics: [String], startsBroker: Bool = true, configure: (inout PostgresHubBroker.Configuration) -> Void = { _ in }) throws {
        var logger = Logger(label: "broker-\(name)")
        logger.logLevel = .critical
        hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: 1_000_000, maxBytes: 1 << 30)))
        connection = try hub.register(
            format: HubWireFormat(name: "recording", encoder: RecordingEncoder(), acceptsUserMessages: true),
            identity: HubIdentity(userId: "alice", username: "Alice"))
        for topic in topics { hub.subscribe(connection, topic: topic) }
        database = PostgresDatabase(url: url, poolSize: 4, logger: logger)
        var configuration = PostgresHubBroker.Configuration(nodeId: name)
        configuration.pollInterval = .milliseconds(100)
        configure(&configuration)
        let metrics = LiveHubMetrics()
        self.metrics = metrics
        broker = PostgresHubBroker(hub: hub, database: database, configuration: configuration, metricsFactory: metrics.factory, logger: logger)
        let database = database, broker = broker
        tasks.withLock { $0 = [Task { await database.client.run() }] }
        if startsBroker { startBroker() }
    }

    /// Everything delivered to the connection so far, in order.
    var messages: [String] {
        let new = connection.takePendingOutbound().compactMap { item -> String? in
            if case .frame(let frame) = item { return frame.string }
            return nil
        }
        return received.withLock { all in
            all += new
            return all
        }
    }

    /// Waits until the broker has read its starting cursors (its `run()` is reading the outbox).
    func waitUntilStarted() async throws {
        try await waitFor("broker started") { self.broker.isReading }
    }

    /// Starts the broker's service (`LiveHub.build` runs it among the application's services).
    func startBroker() {
        let broker = broker
        tasks.withLock { $0.append(Task { try? await broker.run() }) }
    }

    func stop() {
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }
}

extension LiveHubMetrics {
    var renderedText: String { String(decoding: render(), as: UTF8.self) }
}

/// Polls `condition` every 20 ms for up to `seconds`.
func waitFor(_ what: String, seconds: Double = 10, _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestPostgresError(message: "timed out waiting for \(what)")
}

@Suite("PostgreSQL hub broker", .serialized)
struct PostgresHubBrokerTests {
    @Test func roomTopicsShareAShardAndTheHashIsFNV1a() {
        // FNV-1a 64 test vectors (draft-eastlake-fnv, appendix): "" and "a".
        #expect(BrokerSharding.fnv1a64("".utf8) == 0xcbf2_9ce4_8422_2325)
        #expect(BrokerSharding.fnv1a64("a".utf8) == 0xaf63_dc4c_8601_ec8c)
        #expect(BrokerSharding.shardKey(ofTopic: "/topic/live/42/chat") == "42")
        #expect(BrokerSharding.shardKey(ofTopic: "/topic/live/42") == "42")
        #expect(BrokerSharding.shardKey(ofTopic: "/topic/other") == "/topic/other")
        for room in ["1", "42", "room-x", "한"] {
            let shards = Set(["chat", "product", "status", "viewers"].map { BrokerSharding.shard(ofTopic: "/topic/live/\(room)/\($0)", shards: 16) })
            #expect(shards.count == 1 && (0..<16).contains(shards.first!))
        }
        let spread = Set((0..<200).map { BrokerSharding.shard(ofTopic: "/topic/live/\($0)/chat", shards: 16) })
        #expect(spread.count == 16)
    }

    @Test func brokerSettingsAreReadAndBadOnesRefused() throws {
        let configuration = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_BROKER_SHARDS": "8", "LIVEHUB_BROKER_RETENTION": "30", "LIVEHUB_BROKER_POLL_INTERVAL": "0.5",
            "LIVEHUB_BROKER_PUBLISH_TIMEOUT": "2", "LIVEHUB_BROKER_MAX_PENDING": "100", "LIVEHUB_BROKER_MAX_BATCH": "50",
        ])
        let broker = PostgresHubBroker.Configuration(configuration)
        #expect(broker.shards == 8 && broker.retention == .seconds(30) && broker.pollInterval == .milliseconds(500))
        #expect(broker.publishTimeout == .seconds(2) && broker.maxPending == 100 && broker.maxBatch == 50)
        for (name, bad) in [
            ("LIVEHUB_BROKER_SHARDS", "0"), ("LIVEHUB_BROKER_SHARDS", "99999999999999999999"), ("LIVEHUB_BROKER_RETENTION", "0"),
            ("LIVEHUB_BROKER_POLL_INTERVAL", "1e300"), ("LIVEHUB_BROKER_PUBLISH_TIMEOUT", "-1"), ("LIVEHUB_BROKER_MAX_PENDING", "x"),
            ("LIVEHUB_BROKER_MAX_BATCH", "0"),
        ] {
            #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment([name: bad]) }
        }
    }

    @Test(.enabled(if: TestPostgres.isAvailable))
    func aBroadcastOnOneNodeReachesEveryNodeOnce() async throws {
        try await TestPostgres.withDatabase { database in
            let topic = "/topic/live/r1/chat"
            let nodes = try ["a", "b", "c"].map { try BrokerTestNode(url: database.url, name: $0, topics: [topic]) }
            defer { nodes.forEach { $0.stop() } }
            for node in nodes { try await node.waitUntilStarted() }
            #expect(await nodes[0].broker.publishReportingOutcome(topic: topic, payload: ByteBuffer(string: #"{"m":"hi"}"#), contentType: "application/json"))
            #expect(await nodes[1].broker.sendToUserReportingOutcome(userId: "alice", event: "notification:new", payload: ByteBuffer(string: "{}")))
            await nodes[2].broker.publish(topic: "/topic/live/r2/chat", payload: ByteBuffer(string: "not subscribed"))
            let expected = [#"/topic/live/r1/chat|{"m":"hi"}"#, "notification:new|{}"]
            for node in nodes {
                try await waitFor("delivery") { node.messages.count >= 2 }
            }
            try await Task.sleep(for: .milliseconds(300))  // a duplicate would have arrived by now
            // Two shards (the room's and alice's): order holds within a shard only.
            for node in nodes { #expect(node.messages.sorted() == expected.sorted()) }
            let origins = try await database.client.query("SELECT origin_node FROM livehub_broker_outbox ORDER BY origin_node").decode(String.self)
            var names: [String] = []
            for try await name in origins { names.append(name) }
            #expect(names == ["a", "b", "c"])
        }
    }

    @Test(.enabled(if: TestPostgres.isAvailable))
    func aThousandChatsFromConcurrentPublishersArriveEverywhereInOneOrder() async throws {
        try await TestPostgres.withDatabase { database in
            let room = "/topic/live/busy"
            let topics = ["\(room)/chat", "\(room)/product"]
            let nodes = try ["a", "b", "c"].map { try BrokerTestNode(url: database.url, name: $0, topics: topics) }
            defer { nodes.forEach { $0.stop() } }
            for node in nodes { try await node.waitUntilStarted() }
            let publishers = 8, perPublisher = 125
            await withTaskGroup(of: Void.self) { group in
                for publisher in 0..<publishers {
                    let node = nodes[publisher % nodes.count]
                    group.addTask {
                        for i in 0..<perPublisher {
                            let topic = topics[i % 10 == 0 ? 1 : 0]
                            await node.broker.publish(topic: topic, payload: ByteBuffer(string: "p\(publisher)-\(i)"))
                        }
                    }
                }
            }
            let total = publishers * perPublisher
            for node in nodes { try await waitFor("\(total) chats", seconds: 30) { node.messages.count >= total } }
            try await Task.sleep(for: .milliseconds(300))
            let reference = nodes[0].messages
            #expect(reference.count == total)
            #expect(Set(reference).count == total)  // nothing twice
            for node in nodes.dropFirst() { #expect(node.messages == reference) }  // the same order everywhere
            for publisher in 0..<publishers {  // and each publisher's own order kept
                let own = reference.compactMap { line -> Int? in
                    guard let payload = line.split(separator: "|").last, payload.hasPrefix("p\(publisher)-") else { return nil }
                    return Int(payload.dropFirst("p\(publisher)-".count))
                }
                #expect(own == Array(0..<perPublisher))
            }
            let batches = nodes.map { $0.metrics.renderedText }.joined()
            #expect(batches.contains("livehub_broker_batches_total"))
        }
    }

    @Test(.enabled(if: TestPostgres.isAvailable))
    func deliveryGoesOnAfterTheListenerConnectionIsKilled() async throws {
        try await TestPostgres.withDatabase { database in
            let topic = "/topic/live/r9/status"
            let a = try BrokerTestNode(url: database.url, name: "a", topics: [topic]) { $0.pollInterval = .milliseconds(200) }
            let b = try BrokerTestNode(url: database.url, name: "b", topics: [topic]) { $0.pollInterval = .milliseconds(200) }
            defer { a.stop(); b.stop() }
            try await a.waitUntilStarted()
            try await b.waitUntilStarted()
            @Sendable func listeners() async throws -> [Int32] {
                var pids: [Int32] = []
                let rows = try await database.client.query(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
                for try await pid in rows.decode(Int32.self) { pids.append(pid) }
                return pids
            }
            try await waitFor("two listeners") { try await listeners().count == 2 }
            let before = try await listeners()
            try await database.client.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
            await a.broker.publish(topic: topic, payload: ByteBuffer(string: "after the kill"))
            for node in [a, b] {
                try await waitFor("delivery without a listener", seconds: 5) { node.messages == ["\(topic)|after the kill"] }
            }
            try await waitFor("listeners reconnected") {
                let now = try await listeners()
                return now.count == 2 && Set(now).isDisjoint(with: before)
            }
            #expect(a.metrics.renderedText.contains("livehub_broker_listener_reconnects_total 1"))
            await b.broker.publish(topic: topic, payload: ByteBuffer(string: "again"))
            for node in [a, b] { try await waitFor("delivery") { node.messages.count == 2 } }
        }
    }

    @Test(.enabled(if: TestPostgres.isAvailable))
    func whatANodePublishesWhileItsBrokerStartsReachesItsOwnHub() async throws {
        try await TestPostgres.withDatabase { database in
            let topic = "/topic/live/early/chat"
            let other = try BrokerTestNode(url: database.url, name: "other", topics: [topic])
            defer { other.stop() }
            try await other.waitUntilStarted()
            await other.broker.publish(topic: topic, payload: ByteBuffer(string: "before"))
            let node = try BrokerTestNode(url: database.url, name: "new", topics: [topic], startsBroker: false)
            defer { node.stop() }
            #expect(await node.broker.publishReportingOutcome(topic: topic, payload: ByteBuffer(string: "while starting"), contentType: nil))
            node.startBroker()
            try await node.waitUntilStarted()
            await other.broker.publish(topic: topic, payload: ByteBuffer(string: "after"))
            try await waitFor("delivery") { node.messages.count >= 2 }
            try await Task.sleep(for: .milliseconds(300))
            #expect(node.messages == ["\(topic)|while starting", "\(topic)|after"])
            #expect(other.messages == ["\(topic)|before", "\(topic)|while starting", "\(topic)|after"])
        }
    }

    @Test(.enabled(if: TestPostgres.isAvailable))
    func pruningDeletesRowsOlderThanTheRetention() async throws {
        try await TestPostgres.withDatabase { database in
            let node = try BrokerTestNode(url: database.url, name: "a", topics: []) { $0.retention = .seconds(60) }
            defer { node.stop() }
            try await node.waitUntilStarted()
            for i in 0..<5 { await node.broker.publish(topic: "/topic/live/x/chat", payload: ByteBuffer(string: "\(i)")) }
            try await database.client.query(
                "UPDATE livehub_broker_outbox SET created_at = now() - interval '61 seconds' WHERE id <= 3")
            #expect(try await node.broker.prune() == 3)
            #expect(try await node.broker.prune() == 0)
            var left: [Int64] = []
            for try await id in try await database.client.query("SELECT id FROM livehub_broker_outbox ORDER BY id").decode(Int64.self) {
                left.append(id)
            }
            #expect(left == [4, 5])
            #expect(node.metrics.renderedText.contains("livehub_broker_pruned_total 3"))
        }
    }

    @Test func anUnreachableDatabaseDropsBroadcastsAfterTheTimeoutAndBoundsTheQueue() async throws {
        // A port nothing listens on: connects are refused, so every batch fails or times out.
        let url = try PostgresURL(parsing: "postgres://nobody@127.0.0.1:9/none")
        let node = try BrokerTestNode(url: url, name: "a", topics: []) {
            $0.publishTimeout = .milliseconds(500)
            $0.maxPending = 2
            $0.maxBatch = 1
        }
        defer { node.stop() }
        let started = ContinuousClock.now
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<6 {
                group.addTask { await node.broker.publishReportingOutcome(topic: "/topic/live/x/chat", payload: ByteBuffer(string: "\(i)"), contentType: nil) }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes == Array(repeating: false, count: 6))
        #expect(ContinuousClock.now - started < .seconds(5))
        let text = node.metrics.renderedText
        #expect(text.contains(#"livehub_broker_dropped_total{reason="queue_full"}"#))
        #expect(text.contains("livehub_broker_published_total 0"))
    }
}
