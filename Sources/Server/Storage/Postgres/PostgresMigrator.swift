import Logging
import PostgresNIO

/// One step of the PostgreSQL schema, applied once per database and never edited after it ships
/// (add a new one instead), as GRDB's `DatabaseMigrator` does for SQLite.
public struct PostgresMigration: Sendable {
    public var name: String
    /// Statements run in order, in the migration's transaction.
    public var statements: [String]

    public init(_ name: String, _ statements: [String]) {
        self.name = name
        self.statements = statements
    }
}

/// Applies the migrations that a database has not seen. Several nodes may start at once: each
/// takes the same transaction-scoped advisory lock first (postgresql.org/docs/15/explicit-locking.html
/// §13.3.5), so one applies the steps and the others, once they hold the lock, find them recorded
/// in `livehub_schema_migration` and apply nothing.
public enum PostgresMigrator {
    /// Every migration, in the order a new database gets them: the stores' tables, then the hub
    /// broker's outbox, then the cluster's shared state.
    public static var all: [PostgresMigration] {
        PostgresStoreSchema.migrations + PostgresBrokerSchema.migrations + PostgresClusterSchema.migrations
    }

    /// The advisory lock key all nodes migrate under (any fixed 64-bit number; "LIVEHUB1" in ASCII).
    static let lockKey: Int64 = 0x4C49_5645_4855_4231

    /// Applies what is missing; returns the names applied by this call.
    @discardableResult
    public static func migrate(_ client: PostgresClient, migrations: [PostgresMigration] = all, logger: Logger) async throws -> [String] {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS livehub_schema_migration (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                logger: logger)
            var applied = Set<String>()
            for try await name in try await connection.query("SELECT name FROM livehub_schema_migration", logger: logger).decode(String.self) {
                applied.insert(name)
            }
            var newlyApplied: [String] = []
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO livehub_schema_migration (name) VALUES (\(migration.name))", logger: logger)
                newlyApplied.append(migration.name)
            }
            return newlyApplied
        }
    }
}
