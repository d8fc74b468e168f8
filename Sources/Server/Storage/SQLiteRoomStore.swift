import Foundation
import GRDB

/// `RoomStore` on the embedded SQLite database; each method is one transaction.
public struct SQLiteRoomStore: RoomStore {
    let database: AppDatabase

    public init(database: AppDatabase) {
        self.database = database
    }

    public func insert(_ room: RoomRecord) async throws {
        try await database.writer.write { db in try room.insert(db) }
    }

    public func room(id: String) async throws -> RoomRecord? {
        try await database.writer.read { db in try RoomRecord.fetchOne(db, key: id) }
    }

    public func room(streamKey: String) async throws -> RoomRecord? {
        try await database.writer.read { db in
            try RoomRecord.filter(RoomRecord.Columns.streamKey == streamKey).fetchOne(db)
        }
    }

    public func rooms(status: RoomStatus?, offset: Int, limit: Int) async throws -> (rooms: [RoomRecord], total: Int) {
        try await database.writer.read { db in
            var request = RoomRecord.all()
            if let status { request = request.filter(RoomRecord.Columns.status == status.rawValue) }
            let total = try request.fetchCount(db)
            let rooms = try request.order(RoomRecord.Columns.createdAt.desc, RoomRecord.Columns.id)
                .limit(limit, offset: offset).fetchAll(db)
            return (rooms, total)
        }
    }

    public func rooms(ownerId: String) async throws -> [RoomRecord] {
        try await database.writer.read { db in
            try RoomRecord.filter(RoomRecord.Columns.shopOwnerId == ownerId)
                .order(RoomRecord.Columns.createdAt.desc).fetchAll(db)
        }
    }

    public func rooms(status: RoomStatus) async throws -> [RoomRecord] {
        try await database.writer.read { db in
            try RoomRecord.filter(RoomRecord.Columns.status == status.rawValue).fetchAll(db)
        }
    }

    public func countByStatus() async throws -> [RoomStatus: Int] {
        try await database.writer.read { db in
            var counts: [RoomStatus: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM room GROUP BY status") {
                if let status = RoomStatus(rawValue: row["status"]) { counts[status] = row["n"] }
            }
            return counts
        }
    }

    public func update(id: String, _ change: @Sendable (inout RoomRecord) throws -> Void) async throws -> RoomRecord? {
        try await database.writer.write { db in
            guard var room = try RoomRecord.fetchOne(db, key: id) else { return nil }
            let before = room
            try change(&room)
            if room != before { try room.update(db) }
            return room
        }
    }
}
