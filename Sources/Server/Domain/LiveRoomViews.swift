import Foundation

/// `LiveProductDto` of the old service: the products of a room in display order.
public struct LiveProductView: Codable, Sendable, Equatable {
    public var id: String
    public var liveRoomId: String
    public var productId: String
    public var productName: String?
    public var productImageUrl: String?
    public var originalPrice: Double?
    public var livePrice: Double
    /// `DiscountRule.percent`: to 2 decimals (299000 → 149000 is 50.17), derived from the prices.
    public var discountPercent: Double
    public var quantityLimit: Int?
    public var stockAvailable: Int?
    public var soldCount: Int
    public var isFeatured: Bool
    public var displayOrder: Int
    /// When the product was added to the room (ISO-8601 UTC, milliseconds).
    public var createdAt: String

    init(_ record: LiveProductRecord) {
        id = record.id
        liveRoomId = record.liveRoomId
        productId = record.productId
        productName = record.productName
        productImageUrl = record.productImageUrl
        originalPrice = record.originalPrice
        livePrice = record.livePrice
        discountPercent = DiscountRule.percent(originalPrice: record.originalPrice, livePrice: record.livePrice)
        quantityLimit = record.quantityLimit
        stockAvailable = record.stockAvailable
        soldCount = record.soldCount
        isFeatured = record.isFeatured
        displayOrder = record.displayOrder
        createdAt = ISOTime.string(record.createdAt)
    }
}

/// `discountPercent` (README "Differences from the old service"): (original − live) / original × 100,
/// rounded half up to 2 decimals, like the old service's `BigDecimal` `HALF_UP` (299000 → 149000:
/// 50.1672… → 50.17). 0 when the original price is missing or 0, or the live price is not below it.
/// The quotient is first snapped to 10⁻⁸ so that binary noise (1.005 computed as 1.00499…) rounds
/// as the decimal it stands for.
public enum DiscountRule {
    public static func percent(originalPrice: Double?, livePrice: Double) -> Double {
        guard let original = originalPrice, original > 0, original.isFinite, livePrice.isFinite,
            livePrice >= 0, livePrice < original
        else { return 0 }
        let hundredths = (original - livePrice) / original * 10_000
        let snapped = (hundredths * 1_000_000).rounded() / 1_000_000
        return snapped.rounded(.toNearestOrAwayFromZero) / 100
    }
}

/// `LiveChatDto`: one chat line (type CHAT, SYSTEM or ORDER).
public struct LiveChatView: Codable, Sendable, Equatable {
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
    public var createdAt: String

    init(_ record: LiveChatRecord) {
        id = record.id
        liveRoomId = record.liveRoomId
        userId = record.userId
        username = record.username
        avatarUrl = record.avatarUrl
        message = record.message
        type = record.type
        isPinned = record.isPinned
        productId = record.productId
        productName = record.productName
        createdAt = ISOTime.string(record.createdAt)
    }
}

/// A string that also accepts a JSON number (ids of the old service were Java longs).
public struct FlexibleID: Codable, Sendable, Equatable, Hashable {
    public var value: String

    public init(_ value: String) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            value = string
        } else if let integer = try? container.decode(Int64.self) {
            value = String(integer)
        } else {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath, debugDescription: "expected a string or an integer id"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// `POST /rooms/{id}/products`.
public struct AddProductRequest: Codable, Sendable {
    public var productId: FlexibleID
    public var livePrice: Double
    public var quantityLimit: Int?
    public var displayOrder: Int?
    public var productName: String?
    public var productImageUrl: String?
    public var originalPrice: Double?
    public var stockAvailable: Int?
}

/// `POST /orders`: the old service's Kafka `LiveOrderEvent`, accepted exactly as Jackson serialised
/// it (README "Orders from the old Kafka topic"): ids as strings or Java longs, `amount` a JSON
/// number (`149000.0`, `1.49E5`), `timestamp` a zone-less `LocalDateTime` (`OrderTimestamp`).
/// `orderId` may be missing when the request carries an `Idempotency-Key` header.
public struct LiveOrderEvent: Codable, Sendable {
    public var orderId: FlexibleID?
    public var roomId: String
    public var userId: FlexibleID?
    public var username: String?
    public var productId: FlexibleID?
    public var productName: String?
    public var amount: Double
    public var timestamp: OrderTimestamp?
    /// Issue 22: the flash-deal reservation this order pays for; it is confirmed before the order
    /// is applied (an unknown or expired one refuses the order with 409).
    public var reservationId: String?

    public init(
        orderId: FlexibleID?, roomId: String, userId: FlexibleID? = nil, username: String? = nil, productId: FlexibleID? = nil,
        productName: String? = nil, amount: Double, timestamp: OrderTimestamp? = nil
    ) {
        self.orderId = orderId
        self.roomId = roomId
        self.userId = userId
        self.username = username
        self.productId = productId
        self.productName = productName
        self.amount = amount
        self.timestamp = timestamp
    }

    private enum CodingKeys: String, CodingKey {
        case orderId, roomId, userId, username, productId, productName, amount, timestamp, reservationId
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        orderId = try container.decodeIfPresent(FlexibleID.self, forKey: .orderId)
        // The old service's room ids were Java longs too.
        roomId = try container.decode(FlexibleID.self, forKey: .roomId).value
        userId = try container.decodeIfPresent(FlexibleID.self, forKey: .userId)
        username = try container.decodeIfPresent(String.self, forKey: .username)
        productId = try container.decodeIfPresent(FlexibleID.self, forKey: .productId)
        productName = try container.decodeIfPresent(String.self, forKey: .productName)
        amount = try container.decode(Double.self, forKey: .amount)
        timestamp = try container.decodeIfPresent(OrderTimestamp.self, forKey: .timestamp)
        reservationId = try container.decodeIfPresent(String.self, forKey: .reservationId)
    }
}

/// What `POST /orders` answers.
public struct OrderOutcome: Codable, Sendable, Equatable {
    public var orderId: String
    /// False when the order id had been processed before (nothing changed).
    public var applied: Bool
    public var totalOrders: Int
    public var totalRevenue: Double
    /// The event's `timestamp` as an instant (ISO-8601 UTC), when it had one.
    public var orderedAt: String?
}
