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
    /// Moderation (issue 22 §3; `ModerationService`).
    case banned
    case muted(until: Date)
    case slowMode(waitSeconds: Int)
    case linksNotAllowed
    /// Kept for review by the owner or a moderator; not broadcast.
    case heldForReview
    case blockedWord

    public var code: String {
        switch self {
        case .guest: return "SIGN_IN_REQUIRED"
        case .empty: return "EMPTY_MESSAGE"
        case .tooLong: return "MESSAGE_TOO_LONG"
        case .tooLarge: return "MESSAGE_TOO_LARGE"
        case .roomEnded: return "ROOM_ENDED"
        case .unknownRoom: return "UNKNOWN_ROOM"
        case .rateLimited: return "RATE_LIMITED"
        case .banned: return "BANNED"
        case .muted: return "MUTED"
        case .slowMode: return "SLOW_MODE"
        case .linksNotAllowed: return "LINKS_NOT_ALLOWED"
        case .heldForReview: return "HELD_FOR_REVIEW"
        case .blockedWord: return "BLOCKED_WORD"
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
        case .banned: return "you are banned from this room's chat"
        case .muted(let until): return "you are muted in this room until \(ISOTime.string(until))"
        case .slowMode(let wait): return "slow mode: wait \(wait) s before your next message"
        case .linksNotAllowed: return "only the host and moderators may post links here"
        case .heldForReview: return "your message is held for review by a moderator"
        case .blockedWord: return "your message contains a blocked word"
        }
    }
}

/// Where products, chat and orders are announced, given to `LiveRoomService` when it is made
/// (the Server's `RealtimeWiring.liveRoomEvents`; DESIGN.md destinations). Everything is persisted
/// before an event goes out.
/// One message of the chat topic's log (`LiveRoomService.chatLog`).
public enum ChatLogMessage: Sendable {
    case line(LiveChatView)
    /// `{"type":"DELETED","id":…}`: a moderator removed the line.
    case deleted(id: String)
}

public struct LiveRoomEvents: Sendable {
    public var productsChanged: @Sendable (_ roomId: String, _ products: [LiveProductView]) async -> Void = { _, _ in }
    /// A line (or a re-announced pinned line) for the chat topic; `seq` is its offset there (the
    /// `live_chat.seq` of the line, or of the `PINNED` event row of a pin).
    public var chatPosted: @Sendable (_ chat: LiveChatView, _ seq: Int64?) async -> Void = { _, _ in }
    public var orderApplied: @Sendable (_ room: RoomRecord, _ event: LiveOrderEvent) async -> Void = { _, _ in }
    /// A moderator deleted line `chatId` (issue 22): `{"type":"DELETED","id":chatId}` on the chat
    /// topic; `tombstoneSeq` is the `seq` of its DELETED row (the message's offset).
    public var chatDeleted: @Sendable (_ roomId: String, _ chatId: String, _ tombstoneSeq: Int64) async -> Void = { _, _, _ in }
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
    /// `LIVEHUB_STOCK_SERVICE_URL`: fills a new product's missing details; nil = not configured.
    let stockCatalog: (any StockCatalog)?
    /// `LIVEHUB_USER_SERVICE_URL`: chat names and avatars for tokens without them; nil = not configured.
    let userProfiles: UserProfileCache?
    /// `LIVEHUB_ORDER_EVENT_TIMEZONE`: the zone of an order event's zone-less `timestamp`.
    let orderEventTimeZone: TimeZone
    /// The last `historySize` lines per room not ended, loaded from SQLite on first use and dropped
    /// when the room ends (`roomEnded`); an ended room's history is read from SQLite.
    private var recent: [String: [LiveChatView]] = [:]
    /// Cluster mode (issue 20): a per-user chat limit across nodes (`ClusterChatRateLimit`); nil
    /// on one node, where the hub's token buckets are the limit.
    private var chatRateGate: (any ChatRateGate)?
    /// Issue 22: confirms an order's flash-deal reservation (`DealService`); nil = no deals.
    private var reservations: (any ReservationConfirmer)?
    /// Cluster mode: the history is read from the shared database, never from this node's ring,
    /// which holds neither the lines posted on other nodes nor their moderators' deletes.
    private var historyFromStore = false
    /// Issue 22: mutes, bans, slow mode, links and blocked words checked before a line is stored;
    /// nil = no moderation (tests of the bare service).
    private var moderation: ModerationService?

    public init(
        rooms: any RoomStore, store: any LiveRoomStore, events: LiveRoomEvents, maxChatBytes: Int = 2000,
        stockCatalog: (any StockCatalog)? = nil, userProfiles: UserProfileCache? = nil,
        orderEventTimeZone: TimeZone = TimeZone(identifier: "UTC") ?? .gmt, logger: Logger
    ) {
        self.rooms = rooms
        self.store = store
        self.events = events
        self.stockCatalog = stockCatalog
        self.userProfiles = userProfiles
        self.orderEventTimeZone = orderEventTimeZone
        self.committer = ChatCommitter(store: store)
        self.maxChatBytes = maxChatBytes
        self.logger = logger
    }

    /// Cluster mode: chat lines are also counted per user across nodes.
    func attachChatRateGate(_ gate: any ChatRateGate) {
        chatRateGate = gate
    }

    /// Orders with a `reservationId` confirm it first (issue 22).
    func attachReservations(_ confirmer: any ReservationConfirmer) {
        reservations = confirmer
    }

    /// Moderation of the chat (issue 22 §3).
    func attachModeration(_ service: ModerationService) {
        moderation = service
    }

    /// Cluster mode: see `historyFromStore`.
    func readHistoryFromStore() {
        historyFromStore = true
    }

    /// Forgets what was kept for a room that ended (its history ring, its moderation state).
    public func roomEnded(_ roomId: String) async {
        recent.removeValue(forKey: roomId)
        await moderation?.roomEnded(roomId)
    }

    /// Rooms whose history is kept in memory (tests: ended rooms are not).
    var cachedRooms: Int { recent.count }

    // MARK: Products

    public func products(roomId: String) async throws -> [LiveProductView] {
        _ = try await rooms.existingRoom(id: roomId)
        return try await store.products(roomId: roomId).map(LiveProductView.init)
    }

    /// Adds a product and answers it (the old service's `LiveProductDto`); the whole list is
    /// broadcast. When a stock service is configured and the request lacks `productName`,
    /// `originalPrice`, `productImageUrl` or `stockAvailable`, they are looked up there (fields
    /// given in the request win); a failed lookup stores nothing (`StockLookupError`).
    public func addProduct(roomId: String, _ request: AddProductRequest, by user: AuthUser, now: Date = Date()) async throws -> LiveProductView {
        let room = try await rooms.ownedRoom(id: roomId, by: user)
        guard room.status != .ended else { throw DomainError.conflict("the room has ended; products cannot be added") }
        try ProductValidation.validate(request)
        var request = request
        if let stockCatalog, request.lacksDetails {
            request.fillMissing(from: try await stockCatalog.product(id: request.productId.value))
            try ProductValidation.validate(request)
        }
        let record = LiveProductRecord(
            id: UUID().uuidString.lowercased(), liveRoomId: roomId, productId: request.productId.value,
            productName: request.productName, productImageUrl: request.productImageUrl, originalPrice: request.originalPrice,
            livePrice: request.livePrice, discountPercent: DiscountRule.percent(originalPrice: request.originalPrice, livePrice: request.livePrice),
            quantityLimit: request.quantityLimit, stockAvailable: request.stockAvailable, soldCount: 0, isFeatured: false,
            displayOrder: request.displayOrder ?? 0, createdAt: now)
        let list = try await store.addProduct(record, defaultOrder: request.displayOrder == nil).map(LiveProductView.init)
        await events.productsChanged(roomId, list)
        guard let created = list.first(where: { $0.id == record.id }) else {
            throw DomainError.notFound("the product was removed while it was being added")
        }
        return created
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
        guard var user else { throw .guest }
        if let userProfiles { user = await userProfiles.fill(user) }
        let message = ChatText.clean(rawMessage)
        guard !message.isEmpty else { throw .empty }
        guard message.count <= Self.maxChatLength else { throw .tooLong(limit: Self.maxChatLength) }
        guard message.utf8.count <= maxChatBytes else { throw .tooLarge(limitBytes: maxChatBytes) }
        let room: RoomRecord
        do { room = try await rooms.existingRoom(id: roomId) } catch { throw .unknownRoom }
        guard room.status != .ended else { throw .roomEnded }
        if let moderation {
            switch await moderation.check(room: room, user: user, message: message, now: now) {
            case .allow: break
            case .banned: throw .banned
            case .muted(let until): throw .muted(until: until)
            case .slowMode(let wait): throw .slowMode(waitSeconds: wait)
            case .linksNotAllowed: throw .linksNotAllowed
            case .held: throw .heldForReview
            case .blockedWord: throw .blockedWord
            }
        }
        if let chatRateGate, await !chatRateGate.allowChat(userId: user.userId) { throw .rateLimited }
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
        await events.chatPosted(view, saved.seq)
        return view
    }

    /// Starts looking up the user's chat name and avatar before their first line (a join).
    public func prefetchProfile(_ user: AuthUser?) async {
        guard let user, let userProfiles else { return }
        await userProfiles.prefetch(user)
    }

    /// History, newest last. `before` is a chat id: lines older than it.
    public func history(roomId: String, limit: Int, before: String?) async throws -> [LiveChatView] {
        let room = try await rooms.existingRoom(id: roomId)
        if before == nil, limit <= Self.historySize, room.status != .ended, !historyFromStore {
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

    /// The chat topic's log after `afterSeq` as the messages the topic carried (recovery, issue 22):
    /// CHAT/ORDER rows as `LiveChatView`, `DELETED` as `{"type":"DELETED","id":…}`, `PINNED` as the
    /// pinned line (skipped when the line is gone). nil when the read fails. Reads `limit` rows
    /// (`rows`: how many it read, skipped ones included).
    public func chatLog(roomId: String, afterSeq: Int64, limit: Int) async -> (messages: [(seq: Int64, message: ChatLogMessage)], rows: Int)? {
        guard let rows = try? await store.chatLog(roomId: roomId, afterSeq: afterSeq, limit: limit) else { return nil }
        var out: [(seq: Int64, message: ChatLogMessage)] = []
        out.reserveCapacity(rows.count)
        for row in rows {
            guard let seq = row.seq else { continue }
            if row.isLine {
                out.append((seq, .line(LiveChatView(row))))
            } else if row.type == "DELETED" {
                out.append((seq, .deleted(id: row.message)))
            } else if row.type == "PINNED" {
                guard let line = try? await store.chatRow(id: row.message), line.isLine else { continue }
                var view = LiveChatView(line)
                view.isPinned = true
                out.append((seq, .line(view)))
            }
        }
        return (out, rows.count)
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
        // A `PINNED` event row gives the re-announced line its own offset on the chat topic.
        let event = LiveChatRecord(
            seq: nil, id: UUID().uuidString.lowercased(), liveRoomId: roomId, userId: user.userId, username: nil, avatarUrl: nil,
            message: chatId, type: "PINNED", isPinned: false, productId: nil, productName: nil, createdAt: Date())
        let pinnedSeq = try? await store.insertChats([event]).first?.seq
        await events.chatPosted(view, pinnedSeq ?? nil)
        return view
    }

    // MARK: Moderation (issue 22 §3)

    /// A moderator's delete: the line and its DELETED tombstone in one transaction, then the line
    /// leaves the recent ring and `{"type":"DELETED","id"}` goes out on the chat topic.
    public func deleteChat(roomId: String, chatId: String, by user: AuthUser, now: Date = Date()) async throws {
        guard let moderation else { throw DomainError.notFound("moderation is not enabled") }
        _ = try await moderation.requireModerator(roomId: roomId, user: user)
        guard let line = try await store.chat(id: chatId), line.liveRoomId == roomId else {
            throw DomainError.notFound("no chat \(chatId) in this room")
        }
        let tombstone = LiveChatRecord(
            seq: nil, id: UUID().uuidString.lowercased(), liveRoomId: roomId, userId: user.userId, username: user.username, avatarUrl: nil,
            message: chatId, type: "DELETED", isPinned: false, productId: nil, productName: nil, createdAt: now)
        let log = await moderation.logEntry(
            .chatDeleted, roomId: roomId, actor: user, targetUserId: line.userId, targetChatId: chatId,
            detail: ["message": .string(line.message), "type": .string(line.type)], now: now)
        guard let deleted = try await moderation.store.deleteChat(chatId: chatId, roomId: roomId, tombstone: tombstone, log: log) else {
            throw DomainError.notFound("no chat \(chatId) in this room")
        }
        recent[roomId]?.removeAll { $0.id == chatId }
        await events.chatDeleted(roomId, chatId, deleted.tombstone.seq ?? 0)
    }

    /// Approves a held line: it becomes a chat line (stored, in the ring, broadcast) — one transaction.
    public func approveHeld(roomId: String, heldId: String, by user: AuthUser, now: Date = Date()) async throws -> LiveChatView {
        guard let moderation else { throw DomainError.notFound("moderation is not enabled") }
        let room = try await moderation.requireModerator(roomId: roomId, user: user)
        guard room.status != .ended else { throw DomainError.conflict("the room has ended") }
        guard let held = try await moderation.store.heldChats(roomId: roomId).first(where: { $0.id == heldId }) else {
            throw DomainError.notFound("no held line \(heldId) in this room")
        }
        let line = LiveChatRecord(
            seq: nil, id: UUID().uuidString.lowercased(), liveRoomId: roomId, userId: held.userId, username: held.username,
            avatarUrl: held.avatarUrl, message: held.message, type: "CHAT", isPinned: false, productId: nil, productName: nil, createdAt: now)
        let log = await moderation.logEntry(
            .heldApproved, roomId: roomId, actor: user, targetUserId: held.userId, targetChatId: line.id,
            detail: ["heldId": .string(heldId), "message": .string(held.message)], now: now)
        guard let saved = try await moderation.store.approveHeld(id: heldId, roomId: roomId, line: line, log: log) else {
            throw DomainError.notFound("no held line \(heldId) in this room")
        }
        let view = LiveChatView(saved)
        await remember(view)
        await events.chatPosted(view, saved.seq)
        return view
    }

    // MARK: Orders

    /// Applies an order once (idempotent by its id: `orderId`, else the request's `Idempotency-Key`):
    /// ORDER line on the chat, `soldCount` + 1, room totals; then the chat line and the product
    /// list are broadcast. Everything is checked before anything is written.
    public func applyOrder(_ event: LiveOrderEvent, idempotencyKey: String? = nil, now: Date = Date()) async throws -> OrderOutcome {
        guard let orderId = event.orderId?.value ?? idempotencyKey.flatMap({ $0.isEmpty ? nil : $0 }) else {
            throw DomainError.malformed("the order has no id: send orderId in the body or an Idempotency-Key header")
        }
        guard !orderId.isEmpty else { throw DomainError.invalid("orderId must not be empty") }
        guard event.amount.isFinite, event.amount >= 0, event.amount <= ProductValidation.maxAmount else {
            throw DomainError.invalid("amount must be a number in 0...\(ProductValidation.maxAmountText)")
        }
        let orderedAt = event.timestamp?.date(in: orderEventTimeZone)
        let room = try await rooms.existingRoom(id: event.roomId)
        // Issue 22: the reservation first (held → confirmed, idempotent); an unknown or expired one
        // refuses the order (409) before anything is written, so the order service can tell.
        if let reservationId = event.reservationId {
            guard let reservations else { throw DealRefusal.unknownReservation }
            try await reservations.confirmReservation(id: reservationId, roomId: event.roomId)
        }
        let who = event.username ?? "A viewer"
        let what = event.productName ?? "a product"
        let chat = LiveChatRecord(
            seq: nil, id: UUID().uuidString.lowercased(), liveRoomId: event.roomId, userId: event.userId?.value,
            username: event.username, avatarUrl: nil, message: "\(who) just bought \(what)!", type: "ORDER", isPinned: false,
            productId: event.productId?.value, productName: event.productName, createdAt: now)
        let order = ProcessedOrderRecord(orderId: orderId, liveRoomId: event.roomId, amount: event.amount, processedAt: now, orderedAt: orderedAt)
        let orderedAtText = orderedAt.map(ISOTime.string)
        guard let applied = try await store.applyOrder(order, productId: event.productId?.value, chat: chat) else {
            let room = try await rooms.existingRoom(id: event.roomId)
            return OrderOutcome(orderId: orderId, applied: false, totalOrders: room.totalOrders, totalRevenue: room.totalRevenue, orderedAt: orderedAtText)
        }
        let view = LiveChatView(applied.chat)
        if room.status != .ended { await remember(view) }
        await events.chatPosted(view, applied.chat.seq)
        await events.productsChanged(event.roomId, applied.products.map(LiveProductView.init))
        await events.orderApplied(applied.room, event)
        return OrderOutcome(
            orderId: orderId, applied: true, totalOrders: applied.room.totalOrders, totalRevenue: applied.room.totalRevenue, orderedAt: orderedAtText)
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

extension AddProductRequest {
    /// A detail the stock service could fill is missing.
    var lacksDetails: Bool { productName == nil || originalPrice == nil || productImageUrl == nil || stockAvailable == nil }

    /// Fills what the request left out; what it gave wins.
    mutating func fillMissing(from product: StockProduct) {
        productName = productName ?? product.name
        originalPrice = originalPrice ?? product.price
        productImageUrl = productImageUrl ?? product.imageUrl
        stockAvailable = stockAvailable ?? product.stock
    }
}
