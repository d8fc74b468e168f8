import Foundation
import HLS
import Hub
import Logging
import Synchronization
import Testing

@testable import Server

/// Cluster-wide state in PostgreSQL (issue 20): two "nodes" — two sets of the services on one real
/// database and one shared room store — as two processes would have. A node dies by having its
/// heartbeat moved into the past (what a crashed process leaves), not by waiting out the timeout.
@Suite(.serialized, .enabled(if: TestPostgres.isAvailable)) struct ClusterStateTests {
    final class Recorder<T: Sendable>: Sendable {
        let values = Mutex<[T]>([])
        func append(_ value: T) { values.withLock { $0.append(value) } }
        var all: [T] { values.withLock { $0 } }
    }

    /// One node: its cluster state and the services it changes.
    struct Node {
        let cluster: ClusterState
        let rooms: RoomService
        let viewers: ViewerTracker
        let announcedCounts: Recorder<Int>
        let statusMessages: Recorder<String>
        let disconnected: Recorder<String>
        let clock: ManualClock
    }

    static let owner = AuthUser(userId: "owner-1", username: "Shop", roles: ["SHOP_OWNER"])

    static func node(_ id: String, _ database: PostgresDatabase, store: SQLiteRoomStore, grace: Duration = .seconds(30)) async -> Node {
        var logger = Logger(label: "cluster-\(id)")
        logger.logLevel = .error
        var configuration = LiveHubConfiguration()
        configuration.nodeId = id
        configuration.nodeAdvertiseURL = "http://\(id).test:8080"
        configuration.reconnectGrace = grace
        configuration.clusterNodeTimeout = .seconds(5)
        let cluster = ClusterState(client: database.client, configuration: configuration, logger: logger)
        let announcedCounts = Recorder<Int>(), statusMessages = Recorder<String>(), disconnected = Recorder<String>()
        let viewers = ViewerTracker(store: store, minimumInterval: .zero, logger: logger) { _, count, _ in announcedCounts.append(count) }
        var events = RoomEvents()
        events.statusChanged = { message, _, _ in statusMessages.append(message.message) }
        let clock = ManualClock()
        let rooms = RoomService(store: store, viewers: viewers, events: events, reconnectGrace: grace, clock: clock, logger: logger)
        await cluster.leases.attach(rooms: rooms) { disconnected.append($0) }
        await rooms.attachOwnership(cluster.leases)
        try? await cluster.registry.register()
        await cluster.leases.markReady()
        return Node(
            cluster: cluster, rooms: rooms, viewers: viewers, announcedCounts: announcedCounts, statusMessages: statusMessages,
            disconnected: disconnected, clock: clock)
    }

    /// What a crashed node leaves: its heartbeat stops (here: a minute old at once).
    static func kill(_ id: String, _ database: PostgresDatabase) async throws {
        try await database.client.query("UPDATE livehub_node SET heartbeat_at = now() - interval '1 minute' WHERE node_id = \(id)")
    }

    static func liveRoom(_ store: SQLiteRoomStore, on node: Node, session: Int) async throws -> String {
        let room = try await node.rooms.create(CreateRoomRequest(title: "cluster"), owner: owner)
        await node.rooms.publisherStarted(roomId: room.id, session: session)
        return room.id
    }

    @Test func viewerCountsAreSummedOverLiveNodesAndADeadNodesExpire() async throws {
        try await TestPostgres.withDatabase { database in
            let store = SQLiteRoomStore(database: try AppDatabase.inMemory())
            let a = await Self.node("node-a", database, store: store), b = await Self.node("node-b", database, store: store)
            let room = try await Self.liveRoom(store, on: a, session: 1)
            await a.viewers.join(roomId: room, connection: HubConnectionID(rawValue: 1))
            await a.viewers.join(roomId: room, connection: HubConnectionID(rawValue: 2))
            await b.viewers.join(roomId: room, connection: HubConnectionID(rawValue: 1))
            await b.cluster.beat(viewers: b.viewers)
            await a.cluster.beat(viewers: a.viewers)
            await b.cluster.beat(viewers: b.viewers)
            #expect(await a.rooms.viewerCount(room) == 3)
            #expect(await b.rooms.viewerCount(room) == 3)
            #expect(try await a.cluster.viewerCounts.clusterCount(roomId: room) == 3)
            #expect(a.announcedCounts.all.last == 3, "the coordinator (node-a) announces the total changed on node-b")
            #expect(try await store.room(id: room)?.peakViewers == 3, "the cluster total raises the peak")
            #expect(try await b.rooms.stats(id: room).viewerCount == 3)

            try await Self.kill("node-a", database)
            await b.cluster.beat(viewers: b.viewers)
            #expect(await b.rooms.viewerCount(room) == 1, "a dead node's viewers stop counting")
            #expect(b.announcedCounts.all.last == 1, "node-b, now the coordinator, announces the drop")
            #expect(try await store.room(id: room)?.peakViewers == 3)
        }
    }

    @Test func aLeaseTakenOverByAnotherNodeDisconnectsThePublisherWithoutEndingTheRoom() async throws {
        try await TestPostgres.withDatabase { database in
            let store = SQLiteRoomStore(database: try AppDatabase.inMemory())
            let a = await Self.node("node-a", database, store: store), b = await Self.node("node-b", database, store: store)
            let room = try await Self.liveRoom(store, on: a, session: 1)
            await a.cluster.leases.attachHLS(position: { _ in HLSPosition(nextMediaSequence: 12, discontinuitySequence: 3) }, continueNumbering: { _, _ in })
            let continued = Recorder<HLSPosition>()
            await b.cluster.leases.attachHLS(position: { _ in nil }, continueNumbering: { _, position in continued.append(position) })
            #expect(await a.cluster.leases.renewAll().isEmpty, "the holder renews its own lease, with its HLS numbering")
            await a.rooms.publisherGone(roomId: room)  // the publisher dropped: the grace runs on node-a
            try await a.clock.waitForSleepers()
            await b.rooms.publisherStarted(roomId: room, session: 1)  // …and came back on node-b
            #expect(b.statusMessages.all.last == "The stream is back")
            #expect(try await b.cluster.leases.leases.lease(roomId: room)?.nodeId == "node-b")
            #expect(continued.all == [HLSPosition(nextMediaSequence: 12, discontinuitySequence: 3)], "the new origin goes on from the old one's numbering")

            #expect(await a.cluster.leases.renewAll() == [room], "node-a's renewal finds another node's session")
            #expect(a.disconnected.all == [room])
            #expect(await !a.rooms.isReconnecting(room))
            a.clock.advance(by: .seconds(60))
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await store.room(id: room)?.status == .live, "the old node neither ends the room nor keeps its grace")
            #expect(await b.cluster.leases.renewAll().isEmpty)
        }
    }

    @Test func aDeadHoldersLiveRoomIsEndedAfterTheGraceBySurvivorButNotWhileItsHolderLives() async throws {
        try await TestPostgres.withDatabase { database in
            let store = SQLiteRoomStore(database: try AppDatabase.inMemory())
            let a = await Self.node("node-a", database, store: store), b = await Self.node("node-b", database, store: store)
            let room = try await Self.liveRoom(store, on: b, session: 5)
            #expect(try await a.rooms.recoverAfterRestart().isEmpty, "a (re)starting node leaves rooms another live node ingests")
            #expect(try await a.cluster.leases.sweepOrphans().isEmpty)
            #expect(await !a.rooms.isReconnecting(room))

            try await Self.kill("node-b", database)
            #expect(try await a.cluster.leases.sweepOrphans().isEmpty, "within the grace")
            #expect(await a.rooms.isReconnecting(room))
            #expect(a.statusMessages.all.last == "The streamer is reconnecting")
            #expect(try await store.room(id: room)?.status == .live)

            try await database.client.query("UPDATE livehub_stream_lease SET renewed_at = now() - interval '31 seconds'")
            async let fromA = a.cluster.leases.sweepOrphans()
            async let fromC = (await Self.node("node-c", database, store: store)).cluster.leases.sweepOrphans()
            let ended = try await fromA + fromC
            #expect(ended == [room], "one survivor ends it, once")
            #expect(try await store.room(id: room)?.status == .ended)
            #expect(try await a.cluster.leases.leases.lease(roomId: room) == nil)
        }
    }

    @Test func aRoomWhosePublisherReturnsToAnotherNodeWithinTheDeadHoldersGraceStaysLive() async throws {
        try await TestPostgres.withDatabase { database in
            let store = SQLiteRoomStore(database: try AppDatabase.inMemory())
            let a = await Self.node("node-a", database, store: store), b = await Self.node("node-b", database, store: store)
            let room = try await Self.liveRoom(store, on: b, session: 5)
            try await Self.kill("node-b", database)
            _ = try await a.cluster.leases.sweepOrphans()
            #expect(await a.rooms.isReconnecting(room))
            await a.rooms.publisherStarted(roomId: room, session: 9)
            #expect(a.statusMessages.all.last == "The stream is back")
            try await database.client.query("UPDATE livehub_stream_lease SET renewed_at = now() - interval '31 seconds' WHERE node_id = 'node-b'")
            #expect(try await a.cluster.leases.sweepOrphans().isEmpty)
            #expect(try await store.room(id: room)?.status == .live)
        }
    }

    @Test func theChatRateLimitCountsAUserAcrossNodes() async throws {
        try await TestPostgres.withDatabase { database in
            let nodes = (0..<2).map { _ in ClusterChatRateLimit(client: database.client, perSecond: 6, logger: Logger(label: "rate")) }
            // Twelve tries within one database second (retried if a second boundary falls inside).
            for attempt in 0..<5 {
                let user = "user-\(attempt)"
                let before = try await Self.databaseSecond(database)
                var answers: [Bool] = []
                for index in 0..<12 { answers.append(await nodes[index % 2].allowChat(userId: user)) }
                guard try await Self.databaseSecond(database) == before else { continue }
                #expect(answers == Array(repeating: true, count: 6) + Array(repeating: false, count: 6))
                #expect(await nodes[0].allowChat(userId: "someone-else"), "another user has a budget of their own")
                return
            }
            Issue.record("five attempts each crossed a second boundary")
        }
    }

    static func databaseSecond(_ database: PostgresDatabase) async throws -> Int64 {
        for try await second in try await database.client.query("SELECT floor(extract(epoch FROM clock_timestamp()))::bigint").decode(Int64.self) {
            return second
        }
        return -1
    }

    @Test func anIdempotencyKeyIsAnsweredTheSameOnBothNodes() async throws {
        try await TestPostgres.withDatabase { database in
            let shared = try AppDatabase.inMemory()
            let logger = Logger(label: "idempotency")
            let limits = IdempotencyLimits(perUser: 2, total: 100)
            let services = (0..<2).map { _ in
                NotificationService(store: SQLiteNotificationStore(database: shared), idempotencyLimits: limits, logger: logger, push: { _, _ in })
            }
            for service in services {
                await service.attachSharedIdempotency(PostgresIdempotencyStore(client: database.client, limits: limits, logger: logger))
            }
            let note = try await services[0].notify(userId: "u1", type: "T", title: "hello", body: nil)
            let first = try await services[0].markRead(id: note.id, userId: "u1", idempotencyKey: "k-1")
            #expect(first.changed == 1)
            let retried = try await services[1].markRead(id: note.id, userId: "u1", idempotencyKey: "k-1")
            #expect(retried == first, "the retry on the other node gets the first answer")
            #expect(try await services[1].markRead(id: note.id, userId: "u1").changed == 0, "without the key it is a new request")
            // Bounded per user: a third key forgets the oldest.
            _ = try await services[1].markRead(id: note.id, userId: "u1", idempotencyKey: "k-2")
            _ = try await services[1].markRead(id: note.id, userId: "u1", idempotencyKey: "k-3")
            var kept = 0
            for try await count in try await database.client.query("SELECT count(*) FROM livehub_idempotency WHERE user_id = 'u1'").decode(Int64.self) {
                kept = Int(count)
            }
            #expect(kept == 2)
        }
    }
}

@Suite struct ClusterConfigurationTests {
    @Test func theClusterTimingsAndChatRateAreReadAndRangeChecked() throws {
        let defaults = try LiveHubConfiguration.fromEnvironment([:])
        #expect(defaults.clusterHeartbeat == .seconds(1) && defaults.clusterNodeTimeout == .seconds(5) && defaults.clusterChatRatePerSecond == 10)
        let set = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_CLUSTER_HEARTBEAT": "0.5", "LIVEHUB_CLUSTER_NODE_TIMEOUT": "3", "LIVEHUB_CLUSTER_CHAT_RATE": "20",
        ])
        #expect(set.clusterHeartbeat == .milliseconds(500) && set.clusterNodeTimeout == .seconds(3) && set.clusterChatRatePerSecond == 20)
        for bad in [
            ["LIVEHUB_CLUSTER_HEARTBEAT": "0"], ["LIVEHUB_CLUSTER_HEARTBEAT": "1e300"], ["LIVEHUB_CLUSTER_NODE_TIMEOUT": "nan"],
            ["LIVEHUB_CLUSTER_CHAT_RATE": "0"], ["LIVEHUB_CLUSTER_CHAT_RATE": "99999999999999999999"],
            ["LIVEHUB_CLUSTER_HEARTBEAT": "2", "LIVEHUB_CLUSTER_NODE_TIMEOUT": "3"],  // not more than twice the heartbeat
        ] {
            #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(bad) }
        }
    }
}
