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
    public var discountPercent: Int
    public var quantityLimit: Int?
    public var stockAvailable: Int?
    public var soldCount: Int
    public var isFeatured: Bool
    public var displayOrder: Int

    init(_ record: LiveProductRecord) {
        id = record.id
        liveRoomId = record.liveRoomId
        productId = record.productId
        productName = record.productName
        productImageUrl = record.productImageUrl
        originalPrice = record.originalPrice
        livePrice = record.livePrice
        discountPercent = record.discountPercent ?? 0
        quantityLimit = record.quantityLimit
        stockAvailable = record.stockAvailable
        soldCount = record.soldCount
        isFeatured = record.isFeatured
        displayOrder = record.displayOrder
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

/// `POST /orders`: what the order service (formerly through Kafka) reports for a live room.
public struct LiveOrderEvent: Codable, Sendable {
    public var orderId: FlexibleID
    public var roomId: String
    public var userId: FlexibleID?
    public var username: String?
    public var productId: FlexibleID?
    public var productName: String?
    public var amount: Double
    public var timestamp: String?
}

/// What `POST /orders` answers.
public struct OrderOutcome: Codable, Sendable, Equatable {
    public var orderId: String
    /// False when the order id had been processed before (nothing changed).
    public var applied: Bool
    public var totalOrders: Int
    public var totalRevenue: Double
}
