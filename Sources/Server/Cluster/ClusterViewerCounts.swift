import Logging
import PostgresNIO

/// Viewer counts across nodes (issue 20) in `livehub_node_viewers`: with each heartbeat a node
/// writes its per-room counts (`ViewerTracker.localCounts`) and reads the sum of the other live
/// nodes' counts, which it hands back to its `ViewerTracker` (`updateRemoteCounts`). A dead node's
/// rows stop counting as soon as its heartbeat is older than the node timeout (the sum joins
/// `livehub_node`), and are deleted by the coordinator later.
struct ClusterViewerCounts: Sendable {
    let registry: ClusterNodeRegistry
    var client: PostgresClient { registry.client }
    var logger: Logger { registry.logger }

    /// Replaces this node's rows by `counts` (rooms with no viewer here have no row).
    func report(_ counts: [String: Int]) async throws {
        let nodeId = registry.nodeId
        let rooms = counts.filter { $0.value > 0 }
        let roomIds = Array(rooms.keys)
        let viewers = roomIds.map { Int32(clamping: rooms[$0] ?? 0) }
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                "DELETE FROM livehub_node_viewers WHERE node_id = \(nodeId) AND NOT (room_id = ANY(\(roomIds)))", logger: logger)
            guard !roomIds.isEmpty else { return }
            try await connection.query(
                """
                INSERT INTO livehub_node_viewers (node_id, room_id, viewers, reported_at)
                SELECT \(nodeId), room_id, viewers, now() FROM unnest(\(roomIds)::text[], \(viewers)::int[]) AS r(room_id, viewers)
                ON CONFLICT (node_id, room_id) DO UPDATE SET viewers = EXCLUDED.viewers, reported_at = now()
                """, logger: logger)
        }
    }

    /// Each room's viewers on the live nodes other than this one.
    func otherNodesCounts() async throws -> [String: Int] {
        let rows = try await client.query(
            """
            SELECT v.room_id, SUM(v.viewers)::bigint FROM livehub_node_viewers v JOIN livehub_node n ON n.node_id = v.node_id
            WHERE v.node_id <> \(registry.nodeId) AND n.heartbeat_at > now() - make_interval(secs => \(registry.timeoutSeconds))
            GROUP BY v.room_id
            """, logger: logger)
        var counts: [String: Int] = [:]
        for try await (roomId, viewers) in rows.decode((String, Int64).self) { counts[roomId] = Int(clamping: viewers) }
        return counts
    }

    /// The total of one room over every live node (this one included, as last reported).
    func clusterCount(roomId: String) async throws -> Int {
        let rows = try await client.query(
            """
            SELECT COALESCE(SUM(v.viewers), 0)::bigint FROM livehub_node_viewers v JOIN livehub_node n ON n.node_id = v.node_id
            WHERE v.room_id = \(roomId) AND n.heartbeat_at > now() - make_interval(secs => \(registry.timeoutSeconds))
            """, logger: logger)
        for try await total in rows.decode(Int64.self) { return Int(clamping: total) }
        return 0
    }

    /// Deletes the rows of nodes dead for a minute (the coordinator's housekeeping).
    func pruneDeadNodes() async throws {
        try await client.query(
            """
            DELETE FROM livehub_node_viewers v USING livehub_node n
            WHERE n.node_id = v.node_id AND n.heartbeat_at < now() - make_interval(secs => \(registry.timeoutSeconds + 60))
            """, logger: logger)
    }
}
