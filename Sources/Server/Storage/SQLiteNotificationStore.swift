import Foundation
import GRDB

/// `NotificationStore` on SQLite: indexed by (userId, seq) for listing and a partial index of
/// unread rows for the counts.
public struct SQLiteNotificationStore: NotificationStore {
    let database: AppDatabase

    public init(database: AppDatabase) {
        self.database = database
    }

    public func insert(_ notification: NotificationRecord) async throws -> NotificationRecord {
        try await database.writer.write { db in
            var notification = notification
            try notification.insert(db)
            return notification
        }
    }

    public func list(userId: String, limit: Int, beforeSeq: Int64?) async throws -> [NotificationRecord] {
        try await database.writer.read { db in
            var request = NotificationRecord.filter(Column("userId") == userId)
            if let beforeSeq { request = request.filter(Column("seq") < beforeSeq) }
            return try request.order(Column("seq").desc).limit(limit).fetchAll(db)
        }
    }

    public func unreadCount(userId: String) async throws -> Int {
        try await database.writer.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM notification WHERE userId = ? AND readAt IS NULL", arguments: [userId]) ?? 0
        }
    }

    public func markRead(id: String, userId: String, at: Date) async throws -> (notification: NotificationRecord, changed: Bool)? {
        try await database.writer.write { db in
            guard var record = try NotificationRecord.filter(Column("id") == id && Column("userId") == userId).fetchOne(db) else { return nil }
            guard record.readAt == nil else { return (record, false) }
            record.readAt = at
            try record.update(db)
            return (record, true)
        }
    }

    public func markAllRead(userId: String, at: Date) async throws -> Int {
        try await database.writer.write { db in
            try db.execute(sql: "UPDATE notification SET readAt = ? WHERE userId = ? AND readAt IS NULL", arguments: [ISOTime.string(at), userId])
            return db.changesCount
        }
    }
}
