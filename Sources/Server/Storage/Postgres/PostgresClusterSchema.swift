/// The PostgreSQL tables of the cluster's shared state (nodes, viewer counts, stream leases, rate limits, idempotency keys); see `PostgresMigrator`.
enum PostgresClusterSchema {
    static let migrations: [PostgresMigration] = []
}
