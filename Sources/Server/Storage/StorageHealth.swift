import GRDB

/// What `GET /healthz` asks of the storage, whichever backend holds it.
public protocol StorageHealth: Sendable {
    /// Whether the database answers a trivial query now.
    func isHealthy() async -> Bool
}

extension AppDatabase: StorageHealth {
    public func isHealthy() async -> Bool {
        (try? await writer.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }
}
