/// The PostgreSQL tables of the cluster's shared state; see `PostgresMigrator`.
///
/// - `livehub_node`: one row per node that ever started, with the base URL other nodes reach it at
///   and a heartbeat; a node whose heartbeat is older than a few seconds is dead.
/// - `livehub_stream_lease`: the one publisher of a room, cluster-wide. The node holding a room's
///   lease runs its packager: it is the room's HLS origin. The holder renews `renewed_at`; a new
///   publisher on another node takes the row over (a new `publisher_session`), and the previous
///   holder, seeing its renewal fail, disconnects its publisher. `media_sequence` and
///   `discontinuity_sequence` let a new origin continue the room's playlist numbering.
/// - `livehub_node_viewers` (v2): each node's viewer count per room, written with its heartbeat;
///   a room's cluster count is the sum over live nodes (`ClusterViewerCounts`).
/// - `livehub_rate_window` (v2): per-user fixed-window counters shared by all nodes
///   (`ClusterChatRateLimit`); windows older than a minute are pruned.
/// - `livehub_idempotency` (v2): `Idempotency-Key` answers shared by all nodes
///   (`PostgresIdempotencyStore`); pruned by age.
enum PostgresClusterSchema {
    static let migrations: [PostgresMigration] = [
        PostgresMigration("cluster-v1-nodes-and-stream-leases", [
            """
            CREATE TABLE livehub_node (
                node_id TEXT PRIMARY KEY,
                advertise_url TEXT NOT NULL,
                started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE livehub_stream_lease (
                room_id TEXT PRIMARY KEY,
                node_id TEXT NOT NULL,
                publisher_session BIGINT NOT NULL,
                acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                renewed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                media_sequence BIGINT NOT NULL DEFAULT 0,
                discontinuity_sequence BIGINT NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX livehub_stream_lease_on_node ON livehub_stream_lease (node_id)",
        ]),
        PostgresMigration("cluster-v2-viewers-rate-windows-idempotency", [
            """
            CREATE TABLE livehub_node_viewers (
                node_id TEXT NOT NULL,
                room_id TEXT NOT NULL,
                viewers INTEGER NOT NULL CHECK (viewers >= 0),
                reported_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (node_id, room_id)
            )
            """,
            "CREATE INDEX livehub_node_viewers_on_room ON livehub_node_viewers (room_id)",
            """
            CREATE TABLE livehub_rate_window (
                subject TEXT NOT NULL,
                window_start BIGINT NOT NULL,
                count INTEGER NOT NULL,
                PRIMARY KEY (subject, window_start)
            )
            """,
            """
            CREATE TABLE livehub_idempotency (
                user_id TEXT NOT NULL,
                scope TEXT NOT NULL,
                key TEXT NOT NULL,
                answer BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (user_id, scope, key)
            )
            """,
            "CREATE INDEX livehub_idempotency_on_created ON livehub_idempotency (created_at)",
        ]),
    ]
}
