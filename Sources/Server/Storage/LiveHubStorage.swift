import Foundation
import Logging

/// The stores of one node, on one of two backends: the embedded SQLite file (`AppDatabase`, one
/// node), or, when `LIVEHUB_DATABASE_URL` is set, the cluster's shared PostgreSQL (issue 20). The
/// domain sees only the store protocols.
struct LiveHubStorage: Sendable {
    /// The SQLite database; nil on PostgreSQL.
    let sqlite: AppDatabase?
    /// The PostgreSQL database (its pool is running); nil on SQLite.
    let postgres: PostgresDatabase?
    /// Runs the PostgreSQL pool until `close`.
    private let postgresPool: Task<Void, Never>?
    let rooms: any RoomStore
    let live: any LiveRoomStore
    let notifications: any NotificationStore
    /// The replay timeline's events (issue 21).
    let timeline: any TimelineStore
    /// Flash deals and their reservations (issue 22).
    let deals: any DealStore
    /// Moderation (issue 22 §3).
    let moderation: any ModerationStore
    let health: any StorageHealth

    /// Opens and migrates the configured backend. On PostgreSQL the pool starts here, before the
    /// migrations (every part's: stores, broker, cluster), and runs until `close`.
    static func open(configuration: LiveHubConfiguration, logger: Logger) async throws -> LiveHubStorage {
        guard let url = configuration.databaseURL else {
            let database = try AppDatabase.open(path: configuration.databasePath, synchronous: configuration.sqliteSynchronous)
            return LiveHubStorage(
                sqlite: database, postgres: nil, postgresPool: nil,
                rooms: SQLiteRoomStore(database: database), live: SQLiteLiveRoomStore(database: database),
                notifications: SQLiteNotificationStore(database: database), timeline: SQLiteTimelineStore(database: database),
                deals: SQLiteDealStore(database: database),
                moderation: SQLiteModerationStore(database: database), health: database)
        }
        let database = PostgresDatabase(url: url, poolSize: configuration.databasePoolSize, logger: logger)
        let pool = Task { await database.client.run() }
        do {
            let applied = try await PostgresMigrator.migrate(database.client, logger: logger)
            logger.info("PostgreSQL storage", metadata: ["url": "\(url)", "migrations applied": "\(applied.count)"])
        } catch {
            pool.cancel()
            throw LiveHubStartupError(message: "PostgreSQL at \(url) could not be migrated: \(String(reflecting: error))")
        }
        return LiveHubStorage(
            sqlite: nil, postgres: database, postgresPool: pool,
            rooms: PostgresRoomStore(database: database), live: PostgresLiveRoomStore(database: database),
            notifications: PostgresNotificationStore(database: database), timeline: PostgresTimelineStore(database: database),
            deals: PostgresDealStore(database: database),
            moderation: PostgresModerationStore(database: database), health: database)
    }

    /// Graceful shutdown: SQLite checkpoints its WAL and closes; the PostgreSQL pool stops.
    func close(logger: Logger) {
        if let sqlite {
            do {
                try sqlite.close()
                logger.info("database closed")
            } catch {
                logger.error("database close failed", metadata: ["error": "\(error)"])
            }
        }
        if let postgresPool {
            postgresPool.cancel()
            logger.info("database closed", metadata: ["backend": "postgresql"])
        }
    }
}
