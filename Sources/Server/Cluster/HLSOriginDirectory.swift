import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The node that packages a room's stream: its HLS origin (issue 20).
struct HLSOrigin: Sendable, Hashable {
    var nodeId: String
    /// `http(s)://host[:port]`, no trailing slash (the node's `LIVEHUB_NODE_ADVERTISE_URL`).
    var baseURL: String
}

/// Where a room's HLS origin is, if another live node packages it.
protocol HLSOriginDirectory: Sendable {
    /// The origin of `roomId` when it is a live node other than this one; nil otherwise.
    func origin(roomId: String) async -> HLSOrigin?
}

/// `HLSOriginDirectory` over the cluster tables (`PostgresClusterSchema`): the holder of a room's
/// `livehub_stream_lease`, if its `livehub_node` heartbeat is recent and it is not this node.
///
/// It keeps a snapshot of every such room, re-read at most once per `refreshInterval` (one query
/// for all requests of that interval, however many rooms they name: a viewer asking for random
/// room ids costs no query, and the snapshot is bounded by `maxRooms`, i.e. by the live streams).
final class PostgresHLSOriginDirectory: HLSOriginDirectory {
    private struct State {
        var snapshot: [String: HLSOrigin] = [:]
        var readAt: ContinuousClock.Instant?
        var refresh: Task<Void, Never>?
    }

    private let client: PostgresClient
    private let nodeId: String
    private let heartbeatLifetime: Duration
    private let refreshInterval: Duration
    private let maxRooms: Int
    private let logger: Logger
    private let state = Mutex(State())

    /// - Parameters:
    ///   - heartbeatLifetime: a node whose heartbeat is older than this is dead.
    ///   - refreshInterval: how old the snapshot may be.
    init(
        client: PostgresClient, nodeId: String, heartbeatLifetime: Duration = .seconds(10),
        refreshInterval: Duration = .seconds(1), maxRooms: Int = 100_000, logger: Logger
    ) {
        self.client = client
        self.nodeId = nodeId
        self.heartbeatLifetime = heartbeatLifetime
        self.refreshInterval = refreshInterval
        self.maxRooms = maxRooms
        self.logger = logger
    }

    func origin(roomId: String) async -> HLSOrigin? {
        let now = ContinuousClock.now
        let refresh: Task<Void, Never>? = state.withLock { state in
            if let readAt = state.readAt, now - readAt < refreshInterval { return nil }
            if let running = state.refresh { return running }
            let task = Task { [self] in await self.reread() }
            state.refresh = task
            return task
        }
        await refresh?.value
        return state.withLock { $0.snapshot[roomId] }
    }

    private func reread() async {
        var snapshot: [String: HLSOrigin] = [:]
        var failed = false
        do {
            let seconds = Double(heartbeatLifetime.components.seconds) + Double(heartbeatLifetime.components.attoseconds) / 1e18
            let rows = try await client.query(
                """
                SELECT l.room_id, n.node_id, n.advertise_url
                FROM livehub_stream_lease l JOIN livehub_node n USING (node_id)
                WHERE n.node_id <> \(nodeId) AND n.heartbeat_at > now() - make_interval(secs => \(seconds))
                LIMIT \(maxRooms)
                """, logger: logger)
            for try await (roomId, node, url) in rows.decode((String, String, String).self) {
                guard let baseURL = Self.validBaseURL(url) else { continue }
                snapshot[roomId] = HLSOrigin(nodeId: node, baseURL: baseURL)
            }
        } catch {
            failed = true
            logger.warning("HLS origin directory: reading the stream leases failed", metadata: ["error": "\(String(reflecting: error))"])
        }
        let readAt = ContinuousClock.now
        state.withLock { state in
            // On failure the previous snapshot stays (the origins rarely move); the next read is
            // tried after `refreshInterval` all the same.
            if !failed { state.snapshot = snapshot }
            state.readAt = readAt
            state.refresh = nil
        }
    }

    /// `advertise_url` as a base URL: absolute http(s), a host, no query or fragment; no trailing slash.
    static func validBaseURL(_ raw: String) -> String? {
        guard raw.utf8.count <= 2048, let url = URLComponents(string: raw), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil
        else { return nil }
        return raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }
}
