import Foundation
import Logging
import PostgresNIO

/// A node's row in `livehub_node` (issue 20; `PostgresClusterSchema`): written at start-up, its
/// `heartbeat_at` refreshed every `LIVEHUB_CLUSTER_HEARTBEAT` by `ClusterHeartbeatService`. A node
/// whose heartbeat is older than `LIVEHUB_CLUSTER_NODE_TIMEOUT` is dead; the time is always the
/// database's `now()`, so the nodes' clocks need not agree.
struct ClusterNodeRegistry: Sendable {
    let client: PostgresClient
    let nodeId: String
    let advertiseURL: String
    let nodeTimeout: Duration
    let logger: Logger

    /// The node timeout as the seconds PostgreSQL's `make_interval` takes.
    var timeoutSeconds: Double { nodeTimeout.inSeconds }

    /// Upserts this node's row (a restarted node keeps its id and gets a new `started_at`).
    func register() async throws {
        try await client.query(
            """
            INSERT INTO livehub_node (node_id, advertise_url, started_at, heartbeat_at) VALUES (\(nodeId), \(advertiseURL), now(), now())
            ON CONFLICT (node_id) DO UPDATE SET advertise_url = EXCLUDED.advertise_url, started_at = now(), heartbeat_at = now()
            """, logger: logger)
    }

    func heartbeat() async throws {
        try await client.query(
            """
            INSERT INTO livehub_node (node_id, advertise_url) VALUES (\(nodeId), \(advertiseURL))
            ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()
            """, logger: logger)
    }

    /// The nodes alive now, by id.
    func liveNodes() async throws -> [String] {
        var ids: [String] = []
        let rows = try await client.query(
            "SELECT node_id FROM livehub_node WHERE heartbeat_at > now() - make_interval(secs => \(timeoutSeconds)) ORDER BY node_id",
            logger: logger)
        for try await id in rows.decode(String.self) { ids.append(id) }
        return ids
    }

    /// Whether this node is the cluster's coordinator: the live node with the smallest id. The
    /// coordinator sweeps rooms of dead nodes and announces viewer totals changed elsewhere. Two
    /// nodes may briefly both believe it (the sweep's writes are conditional, so that is harmless).
    func isCoordinator() async throws -> Bool {
        try await liveNodes().first.map { $0 >= nodeId } ?? true
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
