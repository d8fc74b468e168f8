import Foundation
import PostgresNIO

/// `NotificationStore` on the cluster's PostgreSQL database (issue 20), with the same indexes as
/// `SQLiteNotificationStore`: (user_id, seq) for listing, a partial index of unread rows for counts.
public struct PostgresNotificationStore: NotificationStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    static let columns = "seq, id, user_id, type, title, body, created_at, read_at"

    static func fetch(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [NotificationRecord] {
        var records: [NotificationRecord] = []
        for try await row in try await connection.query(query, logger: connection.logger) {
            let cells = row.makeRandomAccess()
            records.append(NotificationRecord(
                seq: try cells["seq"].decode(Int64.self),
                id: try cells["id"].decode(String.self),
                userId: try cells["user_id"].decode(String.self),
                type: try cells["type"].decode(String.self),
                title: try cells["title"].decode(String.self),
                body: try cells["body"].decode(String?.self),
                createdAt: try PostgresTime.decode(cells["created_at"].decode(String.self)),
                readAt: try PostgresTime.decode(cells["read_at"].decode(String?.self))))
        }
        return records
    }

    public func insert(_ notification: NotificationRecord) async throws -> NotificationRecord {
        try await database.withStoreConnection { connection in
            var saved = notification
            for try await seq in try await connection.query("""
                INSERT INTO notification (id, user_id, type, title, body, created_at, read_at)
                VALUES (\(notification.id), \(notification.userId), \(notification.type), \(notification.title), \(notification.body),
                  \(ISOTime.string(notification.createdAt)), \(notification.readAt.map(ISOTime.string)))
                RETURNING seq
                """, logger: connection.logger).decode(Int64.self) {
                saved.seq = seq
            }
            return saved
        }
    }

    public func list(userId: String, limit: Int, beforeSeq: Int64?) async throws -> [NotificationRecord] {
        guard PostgresText.isStorable(userId) else { return [] }
        return try await database.withStoreConnection { connection in
            try await Self.fetch(connection, """
                SELECT \(unescaped: Self.columns) FROM notification
                WHERE user_id = \(userId) AND (\(beforeSeq)::bigint IS NULL OR seq < \(beforeSeq))
                ORDER BY seq DESC LIMIT \(limit)
                """)
        }
    }

    public func unreadCount(userId: String) async throws -> Int {
        guard PostgresText.isStorable(userId) else { return 0 }
        return try await database.withStoreConnection { connection in
            var count = 0
            for try await value in try await connection.query(
                "SELECT COUNT(*) FROM notification WHERE user_id = \(userId) AND read_at IS NULL", logger: connection.logger
            ).decode(Int.self) { count = value }
            return count
        }
    }

    public func markRead(id: String, userId: String, at: Date) async throws -> (notification: NotificationRecord, changed: Bool)? {
        guard PostgresText.isStorable(id, userId) else { return nil }
        let result: MarkReadResult? = try await database.inTransaction { connection in
            guard var record = try await Self.fetch(connection, """
                SELECT \(unescaped: Self.columns) FROM notification WHERE id = \(id) AND user_id = \(userId) FOR UPDATE
                """).first else { return nil }
            guard record.readAt == nil else { return MarkReadResult(notification: record, changed: false) }
            record.readAt = at
            try await connection.query(
                "UPDATE notification SET read_at = \(ISOTime.string(at)) WHERE seq = \(record.seq)", logger: connection.logger)
            return MarkReadResult(notification: record, changed: true)
        }
        return result.map { ($0.notification, $0.changed) }
    }

    public func markAllRead(userId: String, at: Date) async throws -> Int {
        guard PostgresText.isStorable(userId) else { return 0 }
        return try await database.withStoreConnection { connection in
            try await connection.query(
                "UPDATE notification SET read_at = \(ISOTime.string(at)) WHERE user_id = \(userId) AND read_at IS NULL RETURNING seq",
                logger: connection.logger
            ).collect().count
        }
    }

    private struct MarkReadResult: Sendable {
        var notification: NotificationRecord
        var changed: Bool
    }
}
