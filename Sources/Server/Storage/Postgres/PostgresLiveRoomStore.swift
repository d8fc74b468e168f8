import Foundation
import PostgresNIO

/// `LiveRoomStore` on the cluster's PostgreSQL database (issue 20); every method is one
/// transaction and answers as `SQLiteLiveRoomStore` does. A chat batch is one transaction (group
/// commit); an order's id is kept in `processed_order`, so a retry on any node is applied once.
public struct PostgresLiveRoomStore: LiveRoomStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    static let productColumns = """
        id, live_room_id, product_id, product_name, product_image_url, original_price, live_price, discount_percent, \
        quantity_limit, stock_available, sold_count, is_featured, display_order, created_at
        """

    static let chatColumns = """
        seq, id, live_room_id, user_id, username, avatar_url, message, type, is_pinned, product_id, product_name, created_at
        """

    static func decodeProduct(_ row: PostgresRow) throws -> LiveProductRecord {
        let cells = row.makeRandomAccess()
        return LiveProductRecord(
            id: try cells["id"].decode(String.self),
            liveRoomId: try cells["live_room_id"].decode(String.self),
            productId: try cells["product_id"].decode(String.self),
            productName: try cells["product_name"].decode(String?.self),
            productImageUrl: try cells["product_image_url"].decode(String?.self),
            originalPrice: try cells["original_price"].decode(Double?.self),
            livePrice: try cells["live_price"].decode(Double.self),
            discountPercent: try cells["discount_percent"].decode(Double?.self),
            quantityLimit: try cells["quantity_limit"].decode(Int?.self),
            stockAvailable: try cells["stock_available"].decode(Int?.self),
            soldCount: try cells["sold_count"].decode(Int.self),
            isFeatured: try cells["is_featured"].decode(Bool.self),
            displayOrder: try cells["display_order"].decode(Int.self),
            createdAt: try PostgresTime.decode(cells["created_at"].decode(String.self)))
    }

    static func decodeChat(_ row: PostgresRow) throws -> LiveChatRecord {
        let cells = row.makeRandomAccess()
        return LiveChatRecord(
            seq: try cells["seq"].decode(Int64.self),
            id: try cells["id"].decode(String.self),
            liveRoomId: try cells["live_room_id"].decode(String.self),
            userId: try cells["user_id"].decode(String?.self),
            username: try cells["username"].decode(String?.self),
            avatarUrl: try cells["avatar_url"].decode(String?.self),
            message: try cells["message"].decode(String.self),
            type: try cells["type"].decode(String.self),
            isPinned: try cells["is_pinned"].decode(Bool.self),
            productId: try cells["product_id"].decode(String?.self),
            productName: try cells["product_name"].decode(String?.self),
            createdAt: try PostgresTime.decode(cells["created_at"].decode(String.self)))
    }

    static func products(_ connection: PostgresConnection, roomId: String) async throws -> [LiveProductRecord] {
        var products: [LiveProductRecord] = []
        for try await row in try await connection.query("""
            SELECT \(unescaped: productColumns) FROM live_product WHERE live_room_id = \(roomId) ORDER BY display_order, created_at
            """, logger: connection.logger) {
            products.append(try decodeProduct(row))
        }
        return products
    }

    static func chats(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [LiveChatRecord] {
        var chats: [LiveChatRecord] = []
        for try await row in try await connection.query(query, logger: connection.logger) { chats.append(try decodeChat(row)) }
        return chats
    }

    /// Inserts `chat` and returns it with the `seq` the database gave it.
    static func insert(_ connection: PostgresConnection, _ chat: LiveChatRecord) async throws -> LiveChatRecord {
        var saved = chat
        for try await seq in try await connection.query("""
            INSERT INTO live_chat (id, live_room_id, user_id, username, avatar_url, message, type, is_pinned, product_id, product_name, created_at)
            VALUES (\(chat.id), \(chat.liveRoomId), \(chat.userId), \(chat.username), \(chat.avatarUrl), \(chat.message), \(chat.type),
              \(chat.isPinned), \(chat.productId), \(chat.productName), \(ISOTime.string(chat.createdAt)))
            RETURNING seq
            """, logger: connection.logger).decode(Int64.self) {
            saved.seq = seq
        }
        return saved
    }

    public func products(roomId: String) async throws -> [LiveProductRecord] {
        guard PostgresText.isStorable(roomId) else { return [] }
        return try await database.withStoreConnection { connection in try await Self.products(connection, roomId: roomId) }
    }

    public func addProduct(_ product: LiveProductRecord, defaultOrder: Bool) async throws -> [LiveProductRecord] {
        try await database.inTransaction { connection in
            var product = product
            if defaultOrder {
                var last: Int?
                for try await value in try await connection.query(
                    "SELECT MAX(display_order) FROM live_product WHERE live_room_id = \(product.liveRoomId)", logger: connection.logger
                ).decode(Int?.self) { last = value }
                // Clamped: a row from before the bound (or any value) must not overflow the next one.
                product.displayOrder = min(last ?? -1, ProductValidation.maxDisplayOrder - 1) + 1
            }
            // Two nodes adding the same product at once: the unique key decides, as a conflict.
            let inserted = try await connection.query("""
                INSERT INTO live_product (\(unescaped: Self.productColumns)) VALUES (
                  \(product.id), \(product.liveRoomId), \(product.productId), \(product.productName), \(product.productImageUrl),
                  \(product.originalPrice), \(product.livePrice), \(product.discountPercent), \(product.quantityLimit),
                  \(product.stockAvailable), \(product.soldCount), \(product.isFeatured), \(product.displayOrder),
                  \(ISOTime.string(product.createdAt)))
                ON CONFLICT (live_room_id, product_id) DO NOTHING RETURNING id
                """, logger: connection.logger).collect()
            if inserted.isEmpty { throw DomainError.conflict("product \(product.productId) is already in this room") }
            return try await Self.products(connection, roomId: product.liveRoomId)
        }
    }

    public func feature(liveProductId: String, roomId: String) async throws -> [LiveProductRecord]? {
        guard PostgresText.isStorable(liveProductId, roomId) else { return nil }
        return try await database.inTransaction { connection in
            let found = try await connection.query(
                "SELECT id FROM live_product WHERE id = \(liveProductId) AND live_room_id = \(roomId) FOR UPDATE", logger: connection.logger
            ).collect()
            guard found.count == 1 else { return nil }
            try await connection.query(
                "UPDATE live_product SET is_featured = (id = \(liveProductId)) WHERE live_room_id = \(roomId)", logger: connection.logger)
            return try await Self.products(connection, roomId: roomId)
        }
    }

    public func removeProduct(liveProductId: String, roomId: String) async throws -> [LiveProductRecord]? {
        guard PostgresText.isStorable(liveProductId, roomId) else { return nil }
        return try await database.inTransaction { connection in
            let removed = try await connection.query(
                "DELETE FROM live_product WHERE id = \(liveProductId) AND live_room_id = \(roomId) RETURNING id", logger: connection.logger
            ).collect()
            guard removed.count == 1 else { return nil }
            return try await Self.products(connection, roomId: roomId)
        }
    }

    public func insertChats(_ chats: [LiveChatRecord]) async throws -> [LiveChatRecord] {
        try await database.inTransaction { connection in
            var saved: [LiveChatRecord] = []
            saved.reserveCapacity(chats.count)
            for chat in chats { saved.append(try await Self.insert(connection, chat)) }
            return saved
        }
    }

    public func chats(roomId: String, limit: Int, beforeSeq: Int64?) async throws -> [LiveChatRecord] {
        guard PostgresText.isStorable(roomId) else { return [] }
        return try await database.withStoreConnection { connection in
            try await Self.chats(connection, """
                SELECT \(unescaped: Self.chatColumns) FROM live_chat
                WHERE live_room_id = \(roomId) AND type IN (\(unescaped: LiveChatRecord.lineTypeSQLList))
                  AND (\(beforeSeq)::bigint IS NULL OR seq < \(beforeSeq))
                ORDER BY seq DESC LIMIT \(limit)
                """).reversed()
        }
    }

    public func chatLog(roomId: String, afterSeq: Int64, limit: Int) async throws -> [LiveChatRecord] {
        guard PostgresText.isStorable(roomId) else { return [] }
        let limit = max(0, limit)
        return try await database.withStoreConnection { connection in
            try await Self.chats(connection, """
                SELECT \(unescaped: Self.chatColumns) FROM live_chat
                WHERE live_room_id = \(roomId) AND seq > \(afterSeq)
                ORDER BY seq LIMIT \(limit)
                """)
        }
    }

    public func chatRow(id: String) async throws -> LiveChatRecord? {
        guard PostgresText.isStorable(id) else { return nil }
        return try await database.withStoreConnection { connection in
            try await Self.chats(connection, "SELECT \(unescaped: Self.chatColumns) FROM live_chat WHERE id = \(id)").first
        }
    }

    public func chat(id: String) async throws -> LiveChatRecord? {
        guard PostgresText.isStorable(id) else { return nil }
        return try await database.withStoreConnection { connection in
            try await Self.chats(connection, "SELECT \(unescaped: Self.chatColumns) FROM live_chat WHERE id = \(id) AND type IN (\(unescaped: LiveChatRecord.lineTypeSQLList))").first
        }
    }

    public func pin(chatId: String, roomId: String) async throws -> LiveChatRecord? {
        guard PostgresText.isStorable(chatId, roomId) else { return nil }
        return try await database.inTransaction { connection in
            guard var chat = try await Self.chats(connection, """
                SELECT \(unescaped: Self.chatColumns) FROM live_chat
                WHERE id = \(chatId) AND live_room_id = \(roomId) AND type IN (\(unescaped: LiveChatRecord.lineTypeSQLList)) FOR UPDATE
                """).first else { return nil }
            try await connection.query("""
                UPDATE live_chat SET is_pinned = (id = \(chatId)) WHERE live_room_id = \(roomId) AND (is_pinned OR id = \(chatId))
                """, logger: connection.logger)
            chat.isPinned = true
            return chat
        }
    }

    public func applyOrder(_ order: ProcessedOrderRecord, productId: String?, chat: LiveChatRecord) async throws -> AppliedOrder? {
        try await database.inTransaction { connection in
            // The room first (locked): a missing room refuses the order without recording its id.
            guard var room = try await PostgresRoomStore.room(connection, id: order.liveRoomId, forUpdate: true) else {
                throw DomainError.notFound("no room with id \(order.liveRoomId)")
            }
            let recorded = try await connection.query("""
                INSERT INTO processed_order (order_id, live_room_id, amount, processed_at, ordered_at)
                VALUES (\(order.orderId), \(order.liveRoomId), \(order.amount), \(ISOTime.string(order.processedAt)),
                  \(order.orderedAt.map(ISOTime.string)))
                ON CONFLICT (order_id) DO NOTHING RETURNING order_id
                """, logger: connection.logger).collect()
            if recorded.isEmpty { return nil }
            room.totalOrders += 1
            room.totalRevenue += order.amount
            room.updatedAt = order.processedAt
            try await PostgresRoomStore.write(connection, room)
            if let productId {
                try await connection.query("""
                    UPDATE live_product SET sold_count = sold_count + 1,
                      stock_available = CASE WHEN stock_available IS NULL THEN NULL ELSE GREATEST(stock_available - 1, 0) END
                    WHERE live_room_id = \(order.liveRoomId) AND product_id = \(productId)
                    """, logger: connection.logger)
            }
            let savedChat = try await Self.insert(connection, chat)
            return AppliedOrder(room: room, chat: savedChat, products: try await Self.products(connection, roomId: order.liveRoomId))
        }
    }
}
