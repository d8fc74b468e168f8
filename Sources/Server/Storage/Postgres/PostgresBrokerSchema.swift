/// The PostgreSQL tables of the hub broker's outbox; see `PostgresMigrator`.
enum PostgresBrokerSchema {
    static let migrations: [PostgresMigration] = []
}
