/// The PostgreSQL tables of the hub broker's outbox (issue 20; see `PostgresHubBroker` and
/// Sources/Server/Cluster/README.md); applied by `PostgresMigrator`.
///
/// - `livehub_broker_shard`: one row per shard with the last id handed out on it. A publishing
///   transaction takes its ids with `UPDATE … SET last_id = last_id + n … RETURNING last_id`, so the
///   row lock orders the writers of a shard (the broker adds the rows for `LIVEHUB_BROKER_SHARDS`).
/// - `livehub_broker_outbox`: append-only, one row per broadcast (`kind` 1: a topic publish, 2: a
///   user event), keyed by `(shard, id)`; readers scan `id > cursor` per shard; rows older than
///   `LIVEHUB_BROKER_RETENTION` are deleted by `created_at`.
enum PostgresBrokerSchema {
    static let migrations: [PostgresMigration] = [
        PostgresMigration("broker-v1-outbox", [
            """
            CREATE TABLE livehub_broker_shard (
                shard INTEGER PRIMARY KEY,
                last_id BIGINT NOT NULL DEFAULT 0
            )
            """,
            """
            CREATE TABLE livehub_broker_outbox (
                shard INTEGER NOT NULL,
                id BIGINT NOT NULL,
                kind SMALLINT NOT NULL,
                target TEXT NOT NULL,
                event TEXT,
                content_type TEXT,
                payload BYTEA NOT NULL,
                origin_node TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (shard, id)
            )
            """,
            "CREATE INDEX livehub_broker_outbox_on_created_at ON livehub_broker_outbox (created_at)",
        ]),
    ]
}
