import Foundation
import PostgresNIO

/// `RoomStore` on the cluster's PostgreSQL database (issue 20); the same rows and answers as
/// `SQLiteRoomStore`. `update` locks the row (`SELECT … FOR UPDATE`) so that two nodes changing the
/// same room serialise, as SQLite's single writer does.
public struct PostgresRoomStore: RoomStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    static let columns = """
        id, shop_owner_id, shop_owner_name, title, description, thumbnail_url, stream_key, status, peak_viewers, \
        total_orders, total_revenue, created_at, updated_at, started_at, ended_at
        """

    static func decode(_ row: PostgresRow) throws -> RoomRecord {
        let cells = row.makeRandomAccess()
        let statusText = try cells["status"].decode(String.self)
        guard let status = RoomStatus(rawValue: statusText) else { throw PostgresTimeError(text: "room status \(statusText)") }
        return RoomRecord(
            id: try cells["id"].decode(String.self),
            shopOwnerId: try cells["shop_owner_id"].decode(String.self),
            shopOwnerName: try cells["shop_owner_name"].decode(String?.self),
            title: try cells["title"].decode(String.self),
            description: try cells["description"].decode(String?.self),
            thumbnailUrl: try cells["thumbnail_url"].decode(String?.self),
            streamKey: try cells["stream_key"].decode(String.self),
            status: status,
            peakViewers: try cells["peak_viewers"].decode(Int.self),
            totalOrders: try cells["total_orders"].decode(Int.self),
            totalRevenue: try cells["total_revenue"].decode(Double.self),
            createdAt: try PostgresTime.decode(cells["created_at"].decode(String.self)),
            updatedAt: try PostgresTime.decode(cells["updated_at"].decode(String.self)),
            startedAt: try PostgresTime.decode(cells["started_at"].decode(String?.self)),
            endedAt: try PostgresTime.decode(cells["ended_at"].decode(String?.self)))
    }

    static func fetch(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [RoomRecord] {
        var rooms: [RoomRecord] = []
        for try await row in try await connection.query(query, logger: connection.logger) { rooms.append(try decode(row)) }
        return rooms
    }

    static func room(_ connection: PostgresConnection, id: String, forUpdate: Bool = false) async throws -> RoomRecord? {
        try await fetch(connection, "SELECT \(unescaped: columns) FROM room WHERE id = \(id) \(unescaped: forUpdate ? "FOR UPDATE" : "")").first
    }

    /// Writes every column but the key (the room's read-modify-write and the order totals).
    static func write(_ connection: PostgresConnection, _ room: RoomRecord) async throws {
        try await connection.query("""
            UPDATE room SET shop_owner_id = \(room.shopOwnerId), shop_owner_name = \(room.shopOwnerName), title = \(room.title),
              description = \(room.description), thumbnail_url = \(room.thumbnailUrl), stream_key = \(room.streamKey),
              status = \(room.status.rawValue), peak_viewers = \(room.peakViewers), total_orders = \(room.totalOrders),
              total_revenue = \(room.totalRevenue), created_at = \(ISOTime.string(room.createdAt)),
              updated_at = \(ISOTime.string(room.updatedAt)), started_at = \(room.startedAt.map(ISOTime.string)),
              ended_at = \(room.endedAt.map(ISOTime.string))
            WHERE id = \(room.id)
            """, logger: connection.logger)
    }

    public func insert(_ room: RoomRecord) async throws {
        try await database.withStoreConnection { connection in
            try await connection.query("""
                INSERT INTO room (\(unescaped: Self.columns)) VALUES (
                  \(room.id), \(room.shopOwnerId), \(room.shopOwnerName), \(room.title), \(room.description), \(room.thumbnailUrl),
                  \(room.streamKey), \(room.status.rawValue), \(room.peakViewers), \(room.totalOrders), \(room.totalRevenue),
                  \(ISOTime.string(room.createdAt)), \(ISOTime.string(room.updatedAt)), \(room.startedAt.map(ISOTime.string)),
                  \(room.endedAt.map(ISOTime.string)))
                """, logger: connection.logger)
        }
    }

    public func room(id: String) async throws -> RoomRecord? {
        guard PostgresText.isStorable(id) else { return nil }
        return try await database.withStoreConnection { connection in try await Self.room(connection, id: id) }
    }

    public func room(streamKey: String) async throws -> RoomRecord? {
        guard PostgresText.isStorable(streamKey) else { return nil }
        return try await database.withStoreConnection { connection in
            try await Self.fetch(connection, "SELECT \(unescaped: Self.columns) FROM room WHERE stream_key = \(streamKey)").first
        }
    }

    public func rooms(status: RoomStatus?, offset: Int, limit: Int) async throws -> (rooms: [RoomRecord], total: Int) {
        try await database.inTransaction { connection in
            let filter = status?.rawValue
            var total = 0
            for try await count in try await connection.query(
                "SELECT COUNT(*) FROM room WHERE \(filter)::text IS NULL OR status = \(filter)", logger: connection.logger
            ).decode(Int.self) { total = count }
            let rooms = try await Self.fetch(connection, """
                SELECT \(unescaped: Self.columns) FROM room WHERE \(filter)::text IS NULL OR status = \(filter)
                ORDER BY created_at DESC, id COLLATE "C" LIMIT \(limit) OFFSET \(offset)
                """)
            return (rooms, total)
        }
    }

    public func rooms(ownerId: String) async throws -> [RoomRecord] {
        guard PostgresText.isStorable(ownerId) else { return [] }
        return try await database.withStoreConnection { connection in
            try await Self.fetch(connection, "SELECT \(unescaped: Self.columns) FROM room WHERE shop_owner_id = \(ownerId) ORDER BY created_at DESC")
        }
    }

    public func rooms(status: RoomStatus) async throws -> [RoomRecord] {
        try await database.withStoreConnection { connection in
            try await Self.fetch(connection, "SELECT \(unescaped: Self.columns) FROM room WHERE status = \(status.rawValue)")
        }
    }

    public func countByStatus() async throws -> [RoomStatus: Int] {
        try await database.withStoreConnection { connection in
            var counts: [RoomStatus: Int] = [:]
            for try await (status, count) in try await connection.query(
                "SELECT status, COUNT(*) FROM room GROUP BY status", logger: connection.logger
            ).decode((String, Int).self) {
                if let status = RoomStatus(rawValue: status) { counts[status] = count }
            }
            return counts
        }
    }

    public func update(id: String, _ change: @Sendable (inout RoomRecord) throws -> Void) async throws -> RoomRecord? {
        guard PostgresText.isStorable(id) else { return nil }
        return try await withoutActuallyEscaping(change) { change in
            let box = UncheckedSendableChange(change: change)
            return try await database.inTransaction { connection in
                guard var room = try await Self.room(connection, id: id, forUpdate: true) else { return nil }
                let before = room
                try box.change(&room)
                if room != before { try await Self.write(connection, room) }
                return room
            }
        }
    }
}

/// The non-escaping `change` of `update`, carried into the transaction's closure: it runs, and is
/// released, before `update` returns.
private struct UncheckedSendableChange: @unchecked Sendable {
    let change: @Sendable (inout RoomRecord) throws -> Void
}
