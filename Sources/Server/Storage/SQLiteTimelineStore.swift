import Foundation
import GRDB

/// `TimelineStore` on the embedded SQLite database (`live_timeline_event`, migration v3; chat
/// lines from `live_chat` by their `createdAt` text).
public struct SQLiteTimelineStore: TimelineStore {
    let database: AppDatabase

    public init(database: AppDatabase) {
        self.database = database
    }

    static func event(_ row: Row) -> TimelineEventRecord {
        TimelineEventRecord(seq: row["seq"], liveRoomId: row["liveRoomId"], atMs: row["atMs"], kind: row["kind"], payload: row["payload"])
    }

    public func insert(_ event: TimelineEventRecord) async throws -> TimelineEventRecord {
        try await database.writer.write { db in
            try db.execute(
                sql: "INSERT INTO live_timeline_event (liveRoomId, atMs, kind, payload) VALUES (?, ?, ?, ?)",
                arguments: [event.liveRoomId, event.atMs, event.kind, event.payload])
            var saved = event
            saved.seq = db.lastInsertedRowID
            return saved
        }
    }

    public func events(
        roomId: String, fromMs: Int64, toMs: Int64, after: TimelinePosition?, kinds: [String]?, limit: Int
    ) async throws -> [TimelineEventRecord] {
        try await database.writer.read { db in
            var sql = "SELECT seq, liveRoomId, atMs, kind, payload FROM live_timeline_event WHERE liveRoomId = ? AND atMs >= ? AND atMs <= ?"
            var arguments: StatementArguments = [roomId, fromMs, toMs]
            if let after {
                sql += " AND (atMs > ? OR (atMs = ? AND seq > ?))"
                arguments += [after.atMs, after.atMs, after.seq]
            }
            if let kinds {
                sql += " AND kind IN (\(kinds.map { _ in "?" }.joined(separator: ",")))"
                arguments += StatementArguments(kinds)
            }
            sql += " ORDER BY atMs, seq LIMIT ?"
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.event)
        }
    }

    public func lastEvent(roomId: String, kinds: [String]) async throws -> TimelineEventRecord? {
        guard !kinds.isEmpty else { return nil }
        return try await database.writer.read { db in
            let sql = """
                SELECT seq, liveRoomId, atMs, kind, payload FROM live_timeline_event
                WHERE liveRoomId = ? AND kind IN (\(kinds.map { _ in "?" }.joined(separator: ","))) ORDER BY seq DESC LIMIT 1
                """
            return try Row.fetchOne(db, sql: sql, arguments: [roomId] + StatementArguments(kinds)).map(Self.event)
        }
    }

    public func chats(roomId: String, fromMs: Int64, toMs: Int64, after: TimelinePosition?, limit: Int) async throws -> [LiveChatRecord] {
        try await database.writer.read { db in
            var request = LiveChatRecord.filter(
                Column("liveRoomId") == roomId && LiveChatRecord.lineTypes.contains(Column("type"))
                    && Column("createdAt") >= WallClock.isoText(fromMs) && Column("createdAt") <= WallClock.isoText(toMs))
            if let after {
                let text = WallClock.isoText(after.atMs)
                request = request.filter(Column("createdAt") > text || (Column("createdAt") == text && Column("seq") > after.seq))
            }
            return try request.order(Column("createdAt"), Column("seq")).limit(limit).fetchAll(db)
        }
    }
}
