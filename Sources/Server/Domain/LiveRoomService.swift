import Foundation
import Logging

/// Why a chat line was refused; the message is shown to that client (its connection stays open).
public enum ChatRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    case guest
    case empty
    case tooLong(limit: Int)
    case tooLarge(limitBytes: Int)
    case roomEnded
    case unknownRoom
    case rateLimited

    public var code: String {
        switch self {
        case .guest: return "SIGN_IN_REQUIRED"
        case .empty: return "EMPTY_MESSAGE"
        case .tooLong: return "MESSAGE_TOO_LONG"
        case .tooLarge: return "MESSAGE_TOO_LARGE"
        case .roomEnded: return "ROOM_ENDED"
        case .unknownRoom: return "UNKNOWN_ROOM"
        case .rateLimited: return "RATE_LIMITED"
        }
    }

    public var description: String {
        switch self {
        case .guest: return "sign in to chat"
        case .empty: return "the message is empty"
        case .tooLong(let limit): return "a message is at most \(limit) characters"
        case .tooLarge(let limit): return "a message is at most \(limit) bytes of UTF-8"
        case .roomEnded: return "the live room has ended"
        case .unknownRoom: return "no such live room"
        case .rateLimited: return "too many messages; slow down"
        }
    }
}

/// Where products, chat and orders are announced, given to `LiveRoomService` when it is made
/// (the Server's `RealtimeWiring.liveRoomEvents`; DESIGN.md destinations). Everything is persisted
/// before an event goes out.
public struct LiveRoomEvents: Sendable {
    public var productsChanged: @Sendable (_ roomId: String, _ products: [LiveProductView]) async -> Void = { _, _ in }
    public var chatPosted: @Sendable (_ chat: LiveChatView) async -> Void = { _ in }
    public var orderApplied: @Sendable (_ room: RoomRecord, _ event: LiveOrderEvent) async -> Void = { _, _ in }
    public init() {}
}

/// Products, chat and orders of live rooms.
public actor LiveRoomService {
    public static let maxChatLength = 500
    public static let historySize = 100

    /// Rooms are read here, never changed (their lifecycle is `RoomService`'s).
    let rooms: any RoomStore
    let store: any LiveRoomStore
    let committer: ChatCommitter
    let logger: Logger
    /// `LIVEHUB_CHAT_MAX_BYTES`: a chat line's UTF-8 bytes, besides its `maxChatLength` characters
    /// (one character may be many code points: combining marks, emoji sequences).
    let maxChatBytes: Int
    private let events: LiveRoomEvents
    /// The last `historySize` lines per room not ended, loaded from SQLite on first use and dropped
    /// when the room ends (`roomEnded`); an ended room's history is read from SQLite.
    private var recent: [String: [LiveChatView]] = [:]

    public init(rooms: any RoomStore, store: any LiveRoomStore, events: LiveRoomEvents, maxChatBytes: Int = 2000, logger: Logger) {
        self.rooms = rooms
        self.store = store
        self.events = events
        self.committer = ChatCommitter(store: store)
        self.maxChatBytes = maxChatBytes
        self.logger = logger
    }

    /// Forgets what was kept for a room that ended (its history ring).
    public func roomEnded(_ roomId: String) {
        recent.removeValue(forKey: roomId)
    }

    /// Rooms whose history is kept in memory (tests: ended rooms are not).
    var cachedRooms: Int { recent.count }

    // MARK: Products

    public func products(roomId: String) async throws -> [LiveProductView] {
        _ = try await rooms.existingRoom(id: roomId)
        return try await store.products(roomId: roomId).map(LiveProductView.init)
    }

    public func addProduct(roomId: String, _ request: AddProductRequest, by user: AuthUser, now: Date = Date()) async throws -> [LiveProductView] {
        let room = try await rooms.ownedRoom(id: roomId, by: user)
        guard room.status != .ended else { throw DomainError.conflict("the room has ended; products cannot be added") }
        try ProductValidation.validate(request)
        var discount: Int?
        if let original = request.originalPrice, original > 0, request.livePrice < original {
            discount = Int(((original - request.livePrice) / original * 100).rounded())
        }
        let record = LiveProductRecord(
            id: UUID().uuidString.lowercased(), liveRoomId: roomId, productId: request.productId.value,
            productName: request.productName, productImageUrl: request.productImageUrl, originalPrice: request.originalPrice,
            livePrice: request.livePrice, discountPercent: discount ?? 0, quantityLimit: request.quantityLimit,
            stockAvailable: request.stockAvailable, soldCount: 0, isFeatured: false, displayOrder: request.displayOrder ?? 0,
            createdAt: now)
        let list = try await store.addProduct(record, defaultOrder: request.displayOrder == nil).map(LiveProductView.init)
        await events.productsChanged(roomId, list)
        return list
    }

    public func feature(roomId: String, liveProductId: String, by user: AuthUser) async throws -> [LiveProductView] {
        try await changeProduct(roomId: roomId, liveProductId: liveProductId, by: user) {
            try await store.feature(liveProductId: liveProductId, roomId: roomId)
        }
    }

    public func removeProduct(roomId: String, liveProductId: String, by user: AuthUser) async throws -> [LiveProductView] {
        try await changeProduct(roomId: roomId, liveProductId: liveProductId, by: user) {
            try await store.removeProduct(liveProductId: liveProductId, roomId: roomId)
        }
    }

    /// Owner check, one store change (nil = no such product in the room), then the new list is
    /// broadcast and returned.
    private func changeProduct(
        roomId: String, liveProductId: String, by user: AuthUser, _ change: () async throws -> [LiveProductRecord]?
    ) async throws -> [LiveProductView] {
        _ = try await rooms.ownedRoom(id: roomId, by: user)
        guard let list = try await change() else { throw DomainError.notFound("no product \(liveProductId) in this room") }
        let views = list.map(LiveProductView.init)
        await events.productsChanged(roomId, views)
        return views
    }

    // MARK: Chat

    /// Validates (control characters other than newline stripped, then ≤ `maxChatLength`
    /// characters and ≤ `maxChatBytes` bytes), commits (group commit), then broadcasts. Returns the
    /// stored line.
    public func postChat(roomId: String, user: AuthUser?, message rawMessage: String, now: Date = Date()) async throws(ChatRefusal) -> LiveChatView {
        guard let user else { throw .guest }
        let message = ChatText.clean(rawMessage)
        guard !message.isEmpty else { throw .empty }
        guard message.count <= Self.maxChatLength else { throw .tooLong(limit: Self.maxChatLength) }
        guard message.utf8.count <= maxChatBytes else { throw .tooLarge(limitBytes: maxChatBytes) }
        let room: RoomRecord
        do { room = try await rooms.existingRoom(id: roomId) } catch { throw .unknownRoom }
        guard room.status != .ended else { throw .roomEnded }
        let record = LiveChatRecord(
            seq: nil, id: UUID().uuidString.lowercased(), liveRoomId: roomId, userId: user.userId, username: user.username,
            avatarUrl: user.avatarUrl, message: message, type: "CHAT", isPinned: false, productId: nil, productName: nil,
            createdAt: now)
        let saved: LiveChatRecord
        do {
            saved = try await committer.commit(record)
        } catch {
            logger.error("chat commit failed", metadata: ["room": "\(roomId)", "error": "\(error)"])
            throw .unknownRoom
        }
        let view = LiveChatView(saved)
        await remember(view)
        await events.chatPosted(view)
        return view
    }

    /// History, newest last. `before` is a chat id: lines older than it.
    public func history(roomId: String, limit: Int, before: String?) async throws -> [LiveChatView] {
        let room = try await rooms.existingRoom(id: roomId)
        if before == nil, limit <= Self.historySize, room.status != .ended {
            return Array(try await recentLines(roomId).suffix(limit))
        }
        var beforeSeq: Int64?
        if let before {
            guard let anchor = try await store.chat(id: before), anchor.liveRoomId == roomId else {
                throw DomainError.malformed("before must be the id of a chat line of this room")
            }
            beforeSeq = anchor.seq
        }
        return try await store.chats(roomId: roomId, limit: limit, beforeSeq: beforeSeq).map(LiveChatView.init)
    }

    public func pin(roomId: String, chatId: String, by user: AuthUser) async throws -> LiveChatView {
        _ = try await rooms.ownedRoom(id: roomId, by: user)
        guard let chat = try await store.pin(chatId: chatId, roomId: roomId) else {
            throw DomainError.notFound("no chat \(chatId) in this room")
        }
        let view = LiveChatView(chat)
        if var lines = recent[roomId] {
            for index in lines.indices { lines[index].isPinned = lines[index].id == chatId }
            recent[roomId] = lines
        }
        await events.chatPosted(view)
        return view
    }

    // MARK: Orders

    /// Applies an order once (idempotent by `orderId`): ORDER line on the chat, `soldCount` + 1,
    /// room totals; then the chat line and the product list are broadcast.
    public func applyOrder(_ event: LiveOrderEvent, now: Date = Date()) async throws -> OrderOutcome {
        guard event.amount >= 0, event.amount <= ProductValidation.maxAmount else {
            throw DomainError.invalid("amount must be a number in 0...\(ProductValidation.maxAmountText)")
        }
        guard !event.orderId.value.isEmpty else { throw DomainError.invalid("orderId must not be empty") }
        let room = try await rooms.existingRoom(id: event.roomId)
        let who = event.username ?? "A viewer"
        let what = event.productName ?? "a product"
        let chat = LiveChatRecord(
            seq: nil, id: UUID().uuidString.lowercased(), liveRoomId: event.roomId, userId: event.userId?.value,
            username: event.username, avatarUrl: nil, message: "\(who) just bought \(what)!", type: "ORDER", isPinned: false,
            productId: event.productId?.value, productName: event.productName, createdAt: now)
        let order = ProcessedOrderRecord(orderId: event.orderId.value, liveRoomId: event.roomId, amount: event.amount, processedAt: now)
        guard let applied = try await store.applyOrder(order, productId: event.productId?.value, chat: chat) else {
            let room = try await rooms.existingRoom(id: event.roomId)
            return OrderOutcome(orderId: event.orderId.value, applied: false, totalOrders: room.totalOrders, totalRevenue: room.totalRevenue)
        }
        let view = LiveChatView(applied.chat)
        if room.status != .ended { await remember(view) }
        await events.chatPosted(view)
        await events.productsChanged(event.roomId, applied.products.map(LiveProductView.init))
        await events.orderApplied(applied.room, event)
        return OrderOutcome(orderId: event.orderId.value, applied: true, totalOrders: applied.room.totalOrders, totalRevenue: applied.room.totalRevenue)
    }

    // MARK: History ring

    private func recentLines(_ roomId: String) async throws -> [LiveChatView] {
        if let lines = recent[roomId] { return lines }
        let loaded = try await store.chats(roomId: roomId, limit: Self.historySize, beforeSeq: nil).map(LiveChatView.init)
        if let raced = recent[roomId] { return raced }
        recent[roomId] = loaded
        return loaded
    }

    private func remember(_ line: LiveChatView) async {
        guard var lines = try? await recentLines(line.liveRoomId) else { return }
        if !lines.contains(where: { $0.id == line.id }) { lines.append(line) }
        if lines.count > Self.historySize { lines.removeFirst(lines.count - Self.historySize) }
        recent[line.liveRoomId] = lines
    }
}

/// Chat text as it is stored and broadcast (issue 17).
enum ChatText {
    /// Strips control characters (Unicode `Cc`: C0, DEL, C1) except newline; `\r\n` and a lone
    /// `\r` become `\n`; then trims whitespace and newlines at both ends. Format characters such as
    /// the zero-width joiner inside emoji are kept.
    static func clean(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            defer { previousWasCR = scalar == "\r" }
            switch scalar {
            case "\n":
                if !previousWasCR { scalars.append(scalar) }
            case "\r":
                scalars.append("\n")
            case _ where scalar.properties.generalCategory == .control:
                continue
            default:
                scalars.append(scalar)
            }
        }
        return String(scalars).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Field rules of `POST /rooms/{id}/products` (422 when broken) and the bounds of money and counts
/// (openapi.json states the same): a price, an order amount or a room's revenue never reaches a
/// double's infinity (not JSON), and the next default `displayOrder` never overflows.
enum ProductValidation {
    /// Largest price or order amount (10^12, in the shop's currency unit).
    static let maxAmount = 1_000_000_000_000.0
    static let maxAmountText = "1000000000000"
    static let maxDisplayOrder = 1_000_000
    /// Largest `quantityLimit` / `stockAvailable`.
    static let maxQuantity = 1_000_000_000

    static func validate(_ request: AddProductRequest) throws {
        let id = request.productId.value
        guard !id.isEmpty, id.count <= 100 else { throw DomainError.invalid("productId must be 1-100 characters") }
        guard request.livePrice >= 0, request.livePrice <= maxAmount else {
            throw DomainError.invalid("livePrice must be a number in 0...\(maxAmountText)")
        }
        if let original = request.originalPrice, !(original >= 0 && original <= maxAmount) {
            throw DomainError.invalid("originalPrice must be a number in 0...\(maxAmountText)")
        }
        if let limit = request.quantityLimit, !(1...maxQuantity).contains(limit) {
            throw DomainError.invalid("quantityLimit must be in 1...\(maxQuantity)")
        }
        if let stock = request.stockAvailable, !(0...maxQuantity).contains(stock) {
            throw DomainError.invalid("stockAvailable must be in 0...\(maxQuantity)")
        }
        if let order = request.displayOrder, !(0...maxDisplayOrder).contains(order) {
            throw DomainError.invalid("displayOrder must be in 0...\(maxDisplayOrder)")
        }
        if let name = request.productName, name.count > 500 { throw DomainError.invalid("productName must be at most 500 characters") }
        if let url = request.productImageUrl, !RoomValidation.isWebURL(url) {
            throw DomainError.invalid("productImageUrl must be an absolute http(s) URL")
        }
    }
}
