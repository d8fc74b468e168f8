/// The PostgreSQL tables of the cluster's shared state; see `PostgresMigrator`.
///
/// - `livehub_node`: one row per node that ever started, with the base URL other nodes reach it at
///   and a heartbeat; a node whose heartbeat is older than a few seconds is dead.
/// - `livehub_stream_lease`: the one publisher of a room, cluster-wide. The node holding a room's
///   lease runs its packager: it is the room's HLS origin. The holder renews `renewed_at`; a new
///   publisher on another node takes the row over (a new `publisher_session`), and the previous
///   holder, seeing its renewal fail, disconnects its publisher. `media_sequence` and
///   `discontinuity_sequence` let a new origin continue the room's playlist numbering.
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
    ]
}
