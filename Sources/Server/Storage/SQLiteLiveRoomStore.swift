import Foundation
import GRDB

/// `LiveRoomStore` on the embedded SQLite database; every method is one transaction.
public struct SQLiteLiveRoomStore: LiveRoomStore {
    let database: AppDatabase

    public init(database: AppDatabase) {
        self.database = database
    }

    static func products(_ db: Database, roomId: String) throws -> [LiveProductRecord] {
        try LiveProductRecord.filter(LiveProductRecord.Columns.liveRoomId == roomId)
            .order(LiveProductRecord.Columns.displayOrder, LiveProductRecord.Columns.createdAt)
            .fetchAll(db)
    }

    public func products(roomId: String) async throws -> [LiveProductRecord] {
        try await database.writer.read { db in try Self.products(db, roomId: roomId) }
    }

    public func addProduct(_ product: LiveProductRecord, defaultOrder: Bool) async throws -> [LiveProductRecord] {
        try await database.writer.write { db in
            var product = product
            let exists = try LiveProductRecord
                .filter(LiveProductRecord.Columns.liveRoomId == product.liveRoomId && Column("productId") == product.productId)
                .fetchCount(db) > 0
            if exists { throw DomainError.conflict("product \(product.productId) is already in this room") }
            if defaultOrder {
                let last = try Int.fetchOne(db, sql: "SELECT MAX(displayOrder) FROM live_product WHERE liveRoomId = ?", arguments: [product.liveRoomId])
                // Clamped: a row from before the bound (or any value) must not overflow the next one.
                product.displayOrder = min(last ?? -1, ProductValidation.maxDisplayOrder - 1) + 1
            }
            try product.insert(db)
            return try Self.products(db, roomId: product.liveRoomId)
        }
    }

    public func feature(liveProductId: String, roomId: String) async throws -> [LiveProductRecord]? {
        try await database.writer.write { db in
            guard try LiveProductRecord.filter(key: liveProductId).filter(LiveProductRecord.Columns.liveRoomId == roomId).fetchCount(db) == 1 else { return nil }
            try db.execute(sql: "UPDATE live_product SET isFeatured = (id = ?) WHERE liveRoomId = ?", arguments: [liveProductId, roomId])
            return try Self.products(db, roomId: roomId)
        }
    }

    public func removeProduct(liveProductId: String, roomId: String) async throws -> [LiveProductRecord]? {
        try await database.writer.write { db in
            try db.execute(sql: "DELETE FROM live_product WHERE id = ? AND liveRoomId = ?", arguments: [liveProductId, roomId])
            guard db.changesCount == 1 else { return nil }
            return try Self.products(db, roomId: roomId)
        }
    }

    public func insertChats(_ chats: [LiveChatRecord]) async throws -> [LiveChatRecord] {
        try await database.writer.write { db in
            var saved: [LiveChatRecord] = []
            saved.reserveCapacity(chats.count)
            for var chat in chats {
                try chat.insert(db)
                saved.append(chat)
            }
            return saved
        }
    }

    public func chats(roomId: String, limit: Int, beforeSeq: Int64?) async throws -> [LiveChatRecord] {
        try await database.writer.read { db in
            var request = LiveChatRecord.filter(Column("liveRoomId") == roomId && LiveChatRecord.lineTypes.contains(Column("type")))
            if let beforeSeq { request = request.filter(Column("seq") < beforeSeq) }
            return try request.order(Column("seq").desc).limit(limit).fetchAll(db).reversed()
        }
    }

    public func chatLog(roomId: String, afterSeq: Int64, limit: Int) async throws -> [LiveChatRecord] {
        try await database.writer.read { db in
            try LiveChatRecord.filter(Column("liveRoomId") == roomId && Column("seq") > afterSeq)
                .order(Column("seq")).limit(max(0, limit)).fetchAll(db)
        }
    }

    public func chatRow(id: String) async throws -> LiveChatRecord? {
        try await database.writer.read { db in try LiveChatRecord.filter(Column("id") == id).fetchOne(db) }
    }

    public func chat(id: String) async throws -> LiveChatRecord? {
        try await database.writer.read { db in try LiveChatRecord.filter(Column("id") == id && LiveChatRecord.lineTypes.contains(Column("type"))).fetchOne(db) }
    }

    public func pin(chatId: String, roomId: String) async throws -> LiveChatRecord? {
        try await database.writer.write { db in
            guard var chat = try LiveChatRecord.filter(
                Column("id") == chatId && Column("liveRoomId") == roomId && LiveChatRecord.lineTypes.contains(Column("type"))).fetchOne(db) else { return nil }
            try db.execute(sql: "UPDATE live_chat SET isPinned = (id = ?) WHERE liveRoomId = ? AND (isPinned = 1 OR id = ?)", arguments: [chatId, roomId, chatId])
            chat.isPinned = true
            return chat
        }
    }

    public func applyOrder(_ order: ProcessedOrderRecord, productId: String?, chat: LiveChatRecord) async throws -> AppliedOrder? {
        try await database.writer.write { db in
            if try ProcessedOrderRecord.fetchOne(db, key: order.orderId) != nil { return nil }
            guard var room = try RoomRecord.fetchOne(db, key: order.liveRoomId) else {
                throw DomainError.notFound("no room with id \(order.liveRoomId)")
            }
            try order.insert(db)
            room.totalOrders += 1
            room.totalRevenue += order.amount
            room.updatedAt = order.processedAt
            try room.update(db)
            if let productId {
                try db.execute(
                    sql: """
                        UPDATE live_product SET soldCount = soldCount + 1,
                          stockAvailable = CASE WHEN stockAvailable IS NULL THEN NULL ELSE MAX(stockAvailable - 1, 0) END
                        WHERE liveRoomId = ? AND productId = ?
                        """,
                    arguments: [order.liveRoomId, productId])
            }
            var chat = chat
            try chat.insert(db)
            return AppliedOrder(room: room, chat: chat, products: try Self.products(db, roomId: order.liveRoomId))
        }
    }
}
