import Foundation
import HLS
import Logging
import PostgresNIO

/// Who runs a room's stream, as `RoomService` asks it: on one node, this node always (the
/// default, `SingleNodeStreamOwnership`); in a cluster, the node holding the room's lease in
/// `livehub_stream_lease` (`ClusterStreamLeases`).
protocol StreamOwnership: Sendable {
    /// A publisher of the room was accepted here (`session`: the ingest's id of it). Returns whether
    /// the room's stream was running on another node before (a publisher back on another node).
    func publisherStarted(roomId: String, session: Int) async -> Bool
    /// Of the rooms LIVE at start-up, those this node recovers (gives the reconnect grace).
    func recoverable(_ live: [RoomRecord]) async -> [RoomRecord]
    /// Whether this node may end the room now that its reconnect grace expired here.
    func mayEndAfterGrace(roomId: String) async -> Bool
    /// The room ended (whoever ended it): its stream has no owner any more.
    func roomEnded(roomId: String) async
}

/// One node: every room is this node's.
struct SingleNodeStreamOwnership: StreamOwnership {
    func publisherStarted(roomId: String, session: Int) async -> Bool { false }
    func recoverable(_ live: [RoomRecord]) async -> [RoomRecord] { live }
    func mayEndAfterGrace(roomId: String) async -> Bool { true }
    func roomEnded(roomId: String) async {}
}

/// A room's lease as found in `livehub_stream_lease`.
struct StreamLease: Sendable, Equatable {
    var roomId: String
    var nodeId: String
    var publisherSession: Int64
    var mediaSequence: Int64
    var discontinuitySequence: Int64
}

/// The statements on `livehub_stream_lease` (issue 20; `PostgresClusterSchema`). A lease is
/// (node, publisher session): taking it over writes another pair, so the previous holder's
/// conditional renewal matches no row and it learns that it lost the room.
struct PostgresStreamLeases: Sendable {
    let registry: ClusterNodeRegistry
    var client: PostgresClient { registry.client }
    var logger: Logger { registry.logger }

    /// Takes the room's lease for this node's publisher `session`; returns the lease it replaced.
    func acquire(roomId: String, session: Int64) async throws -> StreamLease? {
        let nodeId = registry.nodeId
        let logger = logger
        return try await client.withTransaction(logger: logger) { connection in
            var previous: StreamLease?
            let rows = try await connection.query(
                """
                SELECT node_id, publisher_session, media_sequence, discontinuity_sequence FROM livehub_stream_lease
                WHERE room_id = \(roomId) FOR UPDATE
                """, logger: logger)
            for try await (node, held, media, discontinuity) in rows.decode((String, Int64, Int64, Int64).self) {
                previous = StreamLease(roomId: roomId, nodeId: node, publisherSession: held, mediaSequence: media, discontinuitySequence: discontinuity)
            }
            try await connection.query(
                """
                INSERT INTO livehub_stream_lease (room_id, node_id, publisher_session) VALUES (\(roomId), \(nodeId), \(session))
                ON CONFLICT (room_id) DO UPDATE SET node_id = EXCLUDED.node_id, publisher_session = EXCLUDED.publisher_session,
                    acquired_at = now(), renewed_at = now()
                """, logger: logger)
            return previous
        }
    }

    /// Renews this node's lease on the room for `session`, with where its HLS numbering stands
    /// (`media_sequence`: the next segment's number; `discontinuity_sequence`: the discontinuities
    /// before it); false when it is no longer held so (taken over, or deleted as the room ended).
    func renew(roomId: String, session: Int64, position: HLSPosition? = nil) async throws -> Bool {
        let media = position.map { Int64($0.nextMediaSequence) }
        let discontinuity = position.map { Int64($0.discontinuitySequence) }
        let rows = try await client.query(
            """
            UPDATE livehub_stream_lease SET renewed_at = now(),
                media_sequence = COALESCE(\(media), media_sequence), discontinuity_sequence = COALESCE(\(discontinuity), discontinuity_sequence)
            WHERE room_id = \(roomId) AND node_id = \(registry.nodeId) AND publisher_session = \(session) RETURNING room_id
            """, logger: logger)
        for try await _ in rows.decode(String.self) { return true }
        return false
    }

    /// Deletes the room's lease whoever holds it (the room ended; the holder's renewal fails).
    func delete(roomId: String) async throws {
        try await client.query("DELETE FROM livehub_stream_lease WHERE room_id = \(roomId)", logger: logger)
    }

    /// Deletes the room's lease if this node still holds it (for `session` when given); whether it did.
    func releaseIfMine(roomId: String, session: Int64?) async throws -> Bool {
        let rows = try await client.query(
            """
            DELETE FROM livehub_stream_lease WHERE room_id = \(roomId) AND node_id = \(registry.nodeId)
                AND (\(session)::bigint IS NULL OR publisher_session = \(session)) RETURNING room_id
            """, logger: logger)
        for try await _ in rows.decode(String.self) { return true }
        return false
    }

    /// The leases this node holds by its id (after a restart: those of its previous run).
    func heldByThisNode() async throws -> [StreamLease] {
        try await leases(where: "l.node_id = \(registry.nodeId)")
    }

    func lease(roomId: String) async throws -> StreamLease? {
        try await leases(where: "l.room_id = \(roomId)").first
    }

    /// Leases whose holder is dead, each with whether it was last renewed more than `grace` ago.
    func orphaned(grace: Duration) async throws -> [(lease: StreamLease, graceExpired: Bool)] {
        let rows = try await client.query(
            """
            SELECT l.room_id, l.node_id, l.publisher_session, l.media_sequence, l.discontinuity_sequence,
                   l.renewed_at < now() - make_interval(secs => \(grace.inSeconds))
            FROM livehub_stream_lease l LEFT JOIN livehub_node n ON n.node_id = l.node_id
            WHERE n.node_id IS NULL OR n.heartbeat_at < now() - make_interval(secs => \(registry.timeoutSeconds))
            """, logger: logger)
        var found: [(lease: StreamLease, graceExpired: Bool)] = []
        for try await (room, node, session, media, discontinuity, expired) in rows.decode((String, String, Int64, Int64, Int64, Bool).self) {
            found.append((StreamLease(roomId: room, nodeId: node, publisherSession: session, mediaSequence: media, discontinuitySequence: discontinuity), expired))
        }
        return found
    }

    /// Deletes exactly this lease if it is unchanged: of several nodes sweeping, one wins.
    func claim(_ lease: StreamLease) async throws -> Bool {
        let rows = try await client.query(
            """
            DELETE FROM livehub_stream_lease
            WHERE room_id = \(lease.roomId) AND node_id = \(lease.nodeId) AND publisher_session = \(lease.publisherSession)
            RETURNING room_id
            """, logger: logger)
        for try await _ in rows.decode(String.self) { return true }
        return false
    }

    /// The rooms among `roomIds` that have a lease row.
    func leasedRooms(among roomIds: [String]) async throws -> Set<String> {
        guard !roomIds.isEmpty else { return [] }
        let rows = try await client.query("SELECT room_id FROM livehub_stream_lease WHERE room_id = ANY(\(roomIds))", logger: logger)
        var found = Set<String>()
        for try await room in rows.decode(String.self) { found.insert(room) }
        return found
    }

    private func leases(where condition: PostgresQuery) async throws -> [StreamLease] {
        var query = PostgresQuery(unsafeSQL: "SELECT l.room_id, l.node_id, l.publisher_session, l.media_sequence, l.discontinuity_sequence FROM livehub_stream_lease l WHERE ")
        query.sql += condition.sql
        query.binds = condition.binds
        let rows = try await client.query(query, logger: logger)
        var found: [StreamLease] = []
        for try await (room, node, session, media, discontinuity) in rows.decode((String, String, Int64, Int64, Int64).self) {
            found.append(StreamLease(roomId: room, nodeId: node, publisherSession: session, mediaSequence: media, discontinuitySequence: discontinuity))
        }
        return found
    }
}

/// This node's stream leases (issue 20): taken when a publisher is accepted here, renewed with each
/// heartbeat, released when the room ends. A failed renewal means another node's publisher took
/// the room (or the room ended elsewhere): the local publisher is disconnected as taken over — no
/// reconnect grace, the room is not ended here. The coordinator also sweeps rooms whose lease
/// holder died: they are announced "reconnecting" and ended when the grace passes without a new
/// lease (one node wins the lease row's conditional delete and ends the room).
actor ClusterStreamLeases: StreamOwnership {
    let leases: PostgresStreamLeases
    let reconnectGrace: Duration
    let logger: Logger
    /// room → the publisher session whose lease this node holds and renews.
    private(set) var held: [String: Int64] = [:]
    private var rooms: RoomService?
    private var disconnectPublisher: (@Sendable (String) async -> Void)?
    /// This node's HLS numbering of a room (written with each renewal) and where to continue
    /// another origin's (`HLSService.position` / `continueNumbering`).
    private var hlsPosition: @Sendable (String) -> HLSPosition? = { _ in nil }
    private var continueNumbering: @Sendable (String, HLSPosition) -> Void = { _, _ in }
    /// Set once the schema is migrated and this node registered (`ClusterHeartbeatService`):
    /// start-up recovery waits for it.
    private var ready = false
    private var readyWaiters: [CheckedContinuation<Void, Never>] = []
    /// LIVE rooms the coordinator found without any lease, and since when (in-memory: a new
    /// coordinator starts counting again, which only lengthens the grace).
    private var unleasedSince: [String: ContinuousClock.Instant] = [:]

    init(leases: PostgresStreamLeases, reconnectGrace: Duration, logger: Logger) {
        self.leases = leases
        self.reconnectGrace = reconnectGrace
        self.logger = logger
    }

    /// The cycle closed after construction, as `RoomService.attachIngest`.
    func attach(rooms: RoomService, disconnectPublisher: @escaping @Sendable (String) async -> Void) {
        self.rooms = rooms
        self.disconnectPublisher = disconnectPublisher
    }

    func attachHLS(position: @escaping @Sendable (String) -> HLSPosition?, continueNumbering: @escaping @Sendable (String, HLSPosition) -> Void) {
        self.hlsPosition = position
        self.continueNumbering = continueNumbering
    }

    func publisherStarted(roomId: String, session: Int) async -> Bool {
        let session = Int64(session)
        held[roomId] = session
        do {
            guard let previous = try await leases.acquire(roomId: roomId, session: session),
                previous.nodeId != leases.registry.nodeId
            else { return false }
            if previous.mediaSequence > 0 {
                continueNumbering(roomId, HLSPosition(
                    nextMediaSequence: Int(clamping: previous.mediaSequence), discontinuitySequence: Int(clamping: previous.discontinuitySequence)))
            }
            return true
        } catch {
            logger.error("could not take the stream lease", metadata: ["room": "\(roomId)", "error": "\(String(reflecting: error))"])
            return false
        }
    }

    func markReady() {
        ready = true
        for waiter in readyWaiters { waiter.resume() }
        readyWaiters.removeAll()
    }

    /// Takes back the leases of this node's previous run: those rooms get the grace here.
    func recoverable(_ live: [RoomRecord]) async -> [RoomRecord] {
        if !ready { await withCheckedContinuation { readyWaiters.append($0) } }
        do {
            let mine = try await leases.heldByThisNode()
            for lease in mine { held[lease.roomId] = lease.publisherSession }
            let ids = Set(mine.map(\.roomId))
            return live.filter { ids.contains($0.id) }
        } catch {
            logger.error("could not read this node's stream leases", metadata: ["error": "\(String(reflecting: error))"])
            return []
        }
    }

    func mayEndAfterGrace(roomId: String) async -> Bool {
        let session = held.removeValue(forKey: roomId)
        do {
            return try await leases.releaseIfMine(roomId: roomId, session: session)
        } catch {
            logger.error("could not release the stream lease", metadata: ["room": "\(roomId)", "error": "\(String(reflecting: error))"])
            return false
        }
    }

    func roomEnded(roomId: String) async {
        held.removeValue(forKey: roomId)
        unleasedSince.removeValue(forKey: roomId)
        do { try await leases.delete(roomId: roomId) } catch {
            logger.error("could not delete the stream lease", metadata: ["room": "\(roomId)", "error": "\(String(reflecting: error))"])
        }
    }

    /// Renews every lease held; returns the rooms lost (their publishers are disconnected).
    @discardableResult
    func renewAll() async -> [String] {
        var lost: [String] = []
        for (roomId, session) in held {
            do {
                guard try await !leases.renew(roomId: roomId, session: session, position: hlsPosition(roomId)) else { continue }
            } catch {
                logger.warning("stream lease renewal failed", metadata: ["room": "\(roomId)", "error": "\(String(reflecting: error))"])
                continue
            }
            guard held[roomId] == session else { continue }  // a new publisher here meanwhile
            held.removeValue(forKey: roomId)
            lost.append(roomId)
            logger.notice("stream lease lost: the room is published on another node, or ended", metadata: ["room": "\(roomId)"])
            await rooms?.streamMovedAway(roomId: roomId)
            await disconnectPublisher?(roomId)
        }
        return lost
    }

    /// The coordinator's sweep: rooms of dead holders (and LIVE rooms with no lease) get the
    /// reconnect grace; when it passes, one node ends them. Returns the rooms this call ended.
    @discardableResult
    func sweepOrphans() async throws -> [String] {
        guard let rooms else { return [] }
        var ended: [String] = []
        for (lease, graceExpired) in try await leases.orphaned(grace: reconnectGrace) {
            if !graceExpired {
                await rooms.orphanedByDeadNode(roomId: lease.roomId)
            } else if try await leases.claim(lease) {
                logger.notice("the node holding a room died; its reconnect grace expired", metadata: ["room": "\(lease.roomId)", "node": "\(lease.nodeId)"])
                if await rooms.endOrphan(roomId: lease.roomId) { ended.append(lease.roomId) }
            }
        }
        let live = try await rooms.liveRoomIds()
        let leased = try await leases.leasedRooms(among: live)
        let now = ContinuousClock.now
        unleasedSince = unleasedSince.filter { live.contains($0.key) && !leased.contains($0.key) }
        for roomId in live where !leased.contains(roomId) {
            guard let since = unleasedSince[roomId] else {
                unleasedSince[roomId] = now  // announced from the next sweep on: not a room ending right now
                continue
            }
            if now - since < reconnectGrace {
                await rooms.orphanedByDeadNode(roomId: roomId)
            } else {
                unleasedSince.removeValue(forKey: roomId)
                if await rooms.endOrphan(roomId: roomId) { ended.append(roomId) }
            }
        }
        return ended
    }
}
