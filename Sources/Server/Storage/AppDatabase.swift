import Foundation
import GRDB

/// How hard SQLite pushes a commit to the disk (`PRAGMA synchronous`, sqlite.org/pragma.html#pragma_synchronous).
/// In WAL mode, `full` syncs the WAL at every commit, so a committed transaction survives a power
/// cut; `normal` syncs only at checkpoints: never corrupt, but the last commits can be lost.
public enum SQLiteSynchronous: String, Sendable, CaseIterable {
    case full = "FULL"
    case normal = "NORMAL"

    /// What `PRAGMA synchronous` reads back (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA).
    public var pragmaValue: Int { self == .full ? 2 : 1 }
}

/// The embedded SQLite database (GRDB `DatabasePool`, WAL mode). Migrations are registered once
/// here and never edited after they ship: add a new one instead.
public final class AppDatabase: Sendable {
    public let writer: any DatabaseWriter

    /// Opens (creating if needed) the database file at `path` and migrates it. Every connection
    /// runs with `synchronous` (DESIGN.md "Nothing acknowledged is lost": `.full`, so an order
    /// answered 201 or a chat line broadcast is on the disk; the chat's group commit keeps one
    /// sync per batch).
    public static func open(path: String, synchronous: SQLiteSynchronous = .full) throws -> AppDatabase {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        let pool = try DatabasePool(path: path, configuration: configuration)
        // Not in `prepareDatabase`: GRDB's WAL set-up runs after it on the writer and sets NORMAL.
        // Commits only go through the writer; readers never commit, so their setting is moot.
        let applied = try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
            return try Int.fetchOne(db, sql: "PRAGMA synchronous")
        }
        guard applied == synchronous.pragmaValue else {
            throw DatabaseError(message: "PRAGMA synchronous = \(synchronous.rawValue) did not take (read back \(applied.map(String.init) ?? "nothing"))")
        }
        return try AppDatabase(writer: pool)
    }

    /// An in-memory database (tests of the domain that need no file).
    public static func inMemory() throws -> AppDatabase {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        return try AppDatabase(writer: DatabaseQueue(configuration: configuration))
    }

    init(writer: any DatabaseWriter) throws {
        self.writer = writer
        try Self.migrator.migrate(writer)
    }

    public var journalMode: String {
        get throws { try writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" } }
    }

    /// `PRAGMA synchronous` of the writer connection (2 = FULL), the one every commit goes through.
    public var writerSynchronous: Int {
        get throws { try writer.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 } }
    }

    /// Flushes the WAL into the main file and closes every connection (graceful shutdown).
    public func close() throws {
        if let pool = writer as? DatabasePool {
            try pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            try pool.close()
        } else if let queue = writer as? DatabaseQueue {
            try queue.close()
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-rooms-products-chats-notifications-orders") { db in
            try db.create(table: "room") { t in
                t.primaryKey("id", .text)
                t.column("shopOwnerId", .text).notNull().indexed()
                t.column("shopOwnerName", .text)
                t.column("title", .text).notNull()
                t.column("description", .text)
                t.column("thumbnailUrl", .text)
                t.column("streamKey", .text).notNull().unique()
                t.column("status", .text).notNull().indexed()
                t.column("peakViewers", .integer).notNull().defaults(to: 0)
                t.column("totalOrders", .integer).notNull().defaults(to: 0)
                t.column("totalRevenue", .double).notNull().defaults(to: 0)
                t.column("createdAt", .text).notNull()
                t.column("updatedAt", .text).notNull()
                t.column("startedAt", .text)
                t.column("endedAt", .text)
            }
            try db.create(table: "live_product") { t in
                t.primaryKey("id", .text)
                t.column("liveRoomId", .text).notNull().references("room", onDelete: .cascade)
                t.column("productId", .text).notNull()
                t.column("productName", .text)
                t.column("productImageUrl", .text)
                t.column("originalPrice", .double)
                t.column("livePrice", .double).notNull()
                t.column("discountPercent", .integer)
                t.column("quantityLimit", .integer)
                t.column("stockAvailable", .integer)
                t.column("soldCount", .integer).notNull().defaults(to: 0)
                t.column("isFeatured", .boolean).notNull().defaults(to: false)
                t.column("displayOrder", .integer).notNull().defaults(to: 0)
                t.column("createdAt", .text).notNull()
                t.uniqueKey(["liveRoomId", "productId"])
            }
            try db.create(index: "live_product_on_room_order", on: "live_product", columns: ["liveRoomId", "displayOrder"])
            try db.create(table: "live_chat") { t in
                t.autoIncrementedPrimaryKey("seq")
                t.column("id", .text).notNull().unique()
                t.column("liveRoomId", .text).notNull().references("room", onDelete: .cascade)
                t.column("userId", .text)
                t.column("username", .text)
                t.column("avatarUrl", .text)
                t.column("message", .text).notNull()
                t.column("type", .text).notNull()
                t.column("isPinned", .boolean).notNull().defaults(to: false)
                t.column("productId", .text)
                t.column("productName", .text)
                t.column("createdAt", .text).notNull()
            }
            try db.create(index: "live_chat_on_room_seq", on: "live_chat", columns: ["liveRoomId", "seq"])
            try db.create(table: "notification") { t in
                t.autoIncrementedPrimaryKey("seq")
                t.column("id", .text).notNull().unique()
                t.column("userId", .text).notNull()
                t.column("type", .text).notNull()
                t.column("title", .text).notNull()
                t.column("body", .text)
                t.column("createdAt", .text).notNull()
                t.column("readAt", .text)
            }
            try db.create(index: "notification_on_user_seq", on: "notification", columns: ["userId", "seq"])
            try db.execute(sql: "CREATE INDEX notification_unread_on_user ON notification(userId) WHERE readAt IS NULL")
            try db.create(table: "processed_order") { t in
                t.primaryKey("orderId", .text)
                t.column("liveRoomId", .text).notNull()
                t.column("amount", .double).notNull()
                t.column("processedAt", .text).notNull()
            }
        }
        // Issue 19: the instant an order event names (its `timestamp`), kept with the order id.
        // Orders applied before have none (NULL). Products have had `createdAt` since v1.
        migrator.registerMigration("v2-processed-order-ordered-at") { db in
            try db.alter(table: "processed_order") { t in
                t.add(column: "orderedAt", .text)
            }
        }
        // Issue 21: the replay timeline's events besides chat (TimelineStore), and chat read by time.
        migrator.registerMigration("v3-live-timeline-event") { db in
            try db.create(table: "live_timeline_event") { t in
                t.autoIncrementedPrimaryKey("seq")
                t.column("liveRoomId", .text).notNull().references("room", onDelete: .cascade)
                t.column("atMs", .integer).notNull()
                t.column("kind", .text).notNull()
                t.column("payload", .text).notNull()
            }
            try db.create(index: "live_timeline_event_on_room_at", on: "live_timeline_event", columns: ["liveRoomId", "atMs", "seq"])
            try db.create(index: "live_chat_on_room_created", on: "live_chat", columns: ["liveRoomId", "createdAt", "seq"])
        }
        // Issue 22: flash deals and their reservations (SQLiteDealStore); times in epoch milliseconds.
        migrator.registerMigration("v4-flash-deals") { db in
            try db.create(table: "deal") { t in
                t.primaryKey("id", .text)
                t.column("liveRoomId", .text).notNull().references("room", onDelete: .cascade)
                t.column("liveProductId", .text).notNull()
                t.column("productName", .text)
                t.column("originalPrice", .double)
                t.column("dealPrice", .double).notNull()
                t.column("quantity", .integer).notNull()
                t.column("remaining", .integer).notNull()
                t.column("perBuyerLimit", .integer).notNull()
                t.column("startsAt", .integer).notNull()
                t.column("endsAt", .integer).notNull()
                t.column("status", .text).notNull()
                t.column("createdAt", .integer).notNull()
            }
            try db.create(index: "deal_on_room", on: "deal", columns: ["liveRoomId", "createdAt"])
            try db.create(index: "deal_on_status", on: "deal", columns: ["status"])
            try db.create(table: "deal_reservation") { t in
                t.primaryKey("id", .text)
                t.column("dealId", .text).notNull().references("deal", onDelete: .cascade)
                t.column("userId", .text).notNull()
                t.column("quantity", .integer).notNull()
                t.column("expiresAt", .integer).notNull()
                t.column("status", .text).notNull()
                t.column("createdAt", .integer).notNull()
            }
            try db.create(index: "deal_reservation_on_buyer", on: "deal_reservation", columns: ["dealId", "userId"])
            try db.create(index: "deal_reservation_on_status_expiry", on: "deal_reservation", columns: ["status", "expiresAt"])
        }
        // Issue 22 §3: moderation (SQLiteModerationStore).
        migrator.registerMigration("v5-moderation") { db in
            try SQLiteModerationStore.migrate(db)
        }
        return migrator
    }
}
