import Foundation
import GRDB

/// Times are stored as ISO-8601 UTC text with milliseconds, e.g. `2026-11-25T03:10:00.123Z`.
enum ISOTime {
    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// To the nearest millisecond. The format style truncates, and a `Date` cannot hold most
    /// millisecond fractions exactly (`.123` may be `.12299999…`), so the rounded value is nudged
    /// 0.4 µs up first: `.123` read back from the database is written `.123` again, never `.122`.
    static func string(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite else { return style.format(date) }
        return style.format(Date(timeIntervalSince1970: (seconds * 1000).rounded() / 1000 + 0.000_000_4))
    }

    static func date(_ string: String) -> Date? {
        (try? style.parse(string)) ?? (try? Date.ISO8601FormatStyle().parse(string))
    }

    static let encoding = DatabaseDateEncodingStrategy.custom { date in string(date) }
    static let decoding = DatabaseDateDecodingStrategy.custom { value in
        String.fromDatabaseValue(value).flatMap(date)
    }
}

/// `room` table: one live room (DESIGN.md REST field names).
public struct RoomRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "room"
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { ISOTime.encoding }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { ISOTime.decoding }

    public var id: String
    public var shopOwnerId: String
    public var shopOwnerName: String?
    public var title: String
    public var description: String?
    public var thumbnailUrl: String?
    public var streamKey: String
    public var status: RoomStatus
    public var peakViewers: Int
    public var totalOrders: Int
    public var totalRevenue: Double
    public var createdAt: Date
    public var updatedAt: Date
    public var startedAt: Date?
    public var endedAt: Date?

    public enum Columns {
        static let id = Column(CodingKeys.id)
        static let shopOwnerId = Column(CodingKeys.shopOwnerId)
        static let streamKey = Column(CodingKeys.streamKey)
        static let status = Column(CodingKeys.status)
        static let createdAt = Column(CodingKeys.createdAt)
    }
}

extension RoomStatus: DatabaseValueConvertible {}

/// `live_product` table: a product offered in a room.
public struct LiveProductRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "live_product"
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { ISOTime.encoding }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { ISOTime.decoding }

    public var id: String
    public var liveRoomId: String
    public var productId: String
    public var productName: String?
    public var productImageUrl: String?
    public var originalPrice: Double?
    public var livePrice: Double
    /// `DiscountRule.percent` when the product was added (v1 rows hold whole numbers; the API derives it from the prices).
    public var discountPercent: Double?
    public var quantityLimit: Int?
    public var stockAvailable: Int?
    public var soldCount: Int
    public var isFeatured: Bool
    public var displayOrder: Int
    public var createdAt: Date

    public enum Columns {
        static let liveRoomId = Column(CodingKeys.liveRoomId)
        static let displayOrder = Column(CodingKeys.displayOrder)
        static let createdAt = Column(CodingKeys.createdAt)
    }
}

/// `live_chat` table: durable chat (DESIGN.md "Chat is durable").
public struct LiveChatRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "live_chat"
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { ISOTime.encoding }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { ISOTime.decoding }

    /// Insertion order (SQLite rowid); the `before` cursor of the history endpoint.
    public var seq: Int64?
    public var id: String
    public var liveRoomId: String
    public var userId: String?
    public var username: String?
    public var avatarUrl: String?
    public var message: String
    public var type: String
    public var isPinned: Bool
    public var productId: String?
    public var productName: String?
    public var createdAt: Date

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        seq = inserted.rowID
    }

    /// Types of the rows that are chat lines (what history, the recent ring and the replay show).
    /// Every other type is an event of the chat topic's log (issue 22), e.g. `DELETED` (a line
    /// removed by a moderator; `message` holds the removed line's id): it takes a `seq` like a line,
    /// so the chat topic's offsets are `seq`s and recovery replays the log in order, but it is never
    /// a line of the history.
    public static let lineTypes = ["CHAT", "ORDER"]
    /// `type IN ('CHAT','ORDER')`: the SQL filter both stores put on every history read.
    static let lineTypeSQLList = lineTypes.map { "'\($0)'" }.joined(separator: ",")
    public var isLine: Bool { Self.lineTypes.contains(type) }
}

/// `notification` table: the per-user bell.
public struct NotificationRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "notification"
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { ISOTime.encoding }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { ISOTime.decoding }

    public var seq: Int64?
    public var id: String
    public var userId: String
    public var type: String
    public var title: String
    public var body: String?
    public var createdAt: Date
    public var readAt: Date?

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        seq = inserted.rowID
    }
}

/// `processed_order` table: order ids already applied (orders are idempotent by `orderId`).
public struct ProcessedOrderRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "processed_order"
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { ISOTime.encoding }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { ISOTime.decoding }

    public var orderId: String
    public var liveRoomId: String
    public var amount: Double
    public var processedAt: Date
    /// The event's `timestamp` as an instant (migration v2; nil for orders without one and before).
    public var orderedAt: Date?
}
