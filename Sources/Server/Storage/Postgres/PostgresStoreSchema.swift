/// The PostgreSQL tables of the stores; see `PostgresMigrator`.
enum PostgresStoreSchema {
    static let migrations: [PostgresMigration] = []
}
