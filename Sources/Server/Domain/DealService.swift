import Foundation
import Logging

/// `POST /rooms/{id}/deals` (issue 22 §1). Numbers arrive as JSON numbers (doubles) and are
/// checked here (`DealRules.validate`): finite, integral where a count, inside their range.
public struct CreateDealRequest: Codable, Sendable {
    public var liveProductId: String
    public var dealPrice: Double
    public var quantity: Double
    /// Default 1.
    public var perBuyerLimit: Double?
    /// 0...3600, default 0 (starts now).
    public var startsInSeconds: Double?
    /// 10...3600.
    public var durationSeconds: Double

    public init(
        liveProductId: String, dealPrice: Double, quantity: Double, perBuyerLimit: Double? = nil, startsInSeconds: Double? = nil,
        durationSeconds: Double
    ) {
        self.liveProductId = liveProductId
        self.dealPrice = dealPrice
        self.quantity = quantity
        self.perBuyerLimit = perBuyerLimit
        self.startsInSeconds = startsInSeconds
        self.durationSeconds = durationSeconds
    }
}

/// `POST /rooms/{id}/deals/{dealId}/claims` — `quantity` defaults to 1.
public struct ClaimDealRequest: Codable, Sendable {
    public var quantity: Double?
    public init(quantity: Double? = nil) { self.quantity = quantity }
}

/// A deal as the API and `/topic/live/{roomId}/deal` show it; times ISO-8601 with milliseconds.
public struct DealView: Codable, Sendable, Equatable {
    public var id: String
    public var liveRoomId: String
    public var liveProductId: String
    public var productName: String?
    public var dealPrice: Double
    public var originalPrice: Double?
    public var quantity: Int
    public var remaining: Int
    public var perBuyerLimit: Int
    public var startsAt: String
    public var endsAt: String
    public var status: String

    public init(_ deal: DealRecord) {
        id = deal.id
        liveRoomId = deal.liveRoomId
        liveProductId = deal.liveProductId
        productName = deal.productName
        dealPrice = deal.dealPrice
        originalPrice = deal.originalPrice
        quantity = deal.quantity
        remaining = deal.remaining
        perBuyerLimit = deal.perBuyerLimit
        startsAt = DealTime.iso(deal.startsAtMs)
        endsAt = DealTime.iso(deal.endsAtMs)
        status = deal.status.rawValue
    }
}

/// One message of `/topic/live/{roomId}/deal`: `type` is `scheduled`, `started`, `stock`,
/// `sold-out`, `ended` or `cancelled`; `serverTime` lets a client count down with the server's
/// clock (its offset = serverTime − its own time on arrival).
public struct DealMessage: Codable, Sendable, Equatable {
    public var type: String
    public var deal: DealView
    public var serverTime: String
}

/// The answer to a claim (201).
public struct DealClaimResponse: Codable, Sendable, Equatable {
    public var reservationId: String
    public var expiresAt: String
    public var dealId: String
    public var quantity: Int
    public var remaining: Int
}

/// Where deal events go (the Server's `RealtimeWiring.dealEvents`: the room's `deal` topic).
public struct DealEvents: Sendable {
    public var publish: @Sendable (_ roomId: String, _ message: DealMessage) async -> Void = { _, _ in }
    public init() {}
}

/// The bounds of a deal (issue 22 §1; openapi.json states the same).
enum DealRules {
    static let maxQuantity = 1_000_000
    static let startsInRange: ClosedRange<Int> = 0...3600
    static let durationRange: ClosedRange<Int> = 10...3600
    /// `GET /rooms/{id}/deals` answers at most this many (newest first).
    static let listLimit = 100

    struct Valid {
        var liveProductId: String
        var dealPrice: Double
        var quantity: Int
        var perBuyerLimit: Int
        var startsIn: Int
        var duration: Int
    }

    /// Every number finite, counts integral, all in range; else `DomainError.malformed` (HTTP 400).
    static func validate(_ request: CreateDealRequest) throws -> Valid {
        let id = request.liveProductId
        guard !id.isEmpty, id.count <= 100 else { throw DomainError.malformed("liveProductId must be 1-100 characters") }
        guard request.dealPrice.isFinite, request.dealPrice >= 0, request.dealPrice <= ProductValidation.maxAmount else {
            throw DomainError.malformed("dealPrice must be a number in 0...\(ProductValidation.maxAmountText)")
        }
        let quantity = try integer(request.quantity, "quantity", 1...maxQuantity)
        let perBuyer = try integer(request.perBuyerLimit ?? 1, "perBuyerLimit", 1...quantity)
        let startsIn = try integer(request.startsInSeconds ?? 0, "startsInSeconds", startsInRange)
        let duration = try integer(request.durationSeconds, "durationSeconds", durationRange)
        return Valid(liveProductId: id, dealPrice: request.dealPrice, quantity: quantity, perBuyerLimit: perBuyer, startsIn: startsIn, duration: duration)
    }

    /// A whole number in `range`, checked before any conversion (NaN, ±inf, 1e300 and 2.5 never
    /// reach `Int(_:)`, which would trap or truncate).
    static func integer(_ value: Double, _ name: String, _ range: ClosedRange<Int>) throws -> Int {
        guard value.isFinite, value.rounded() == value, value >= Double(range.lowerBound), value <= Double(range.upperBound) else {
            throw DomainError.malformed("\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(value)
    }

    /// Whether a claim may be made now (the store calls it inside the claim's transaction).
    static func checkClaimable(_ deal: DealRecord, nowMs: Int64) throws {
        switch deal.status {
        case .cancelled, .ended: throw DealRefusal.ended
        case .scheduled, .live: break
        }
        guard nowMs < deal.endsAtMs else { throw DealRefusal.ended }
        guard nowMs >= deal.startsAtMs else { throw DealRefusal.notStarted }
    }
}

/// Flash deals (issue 22 §1): the owner's deals, the buyers' claims, the order service's
/// confirmations, and the deal topic's events. The store is the authority (every decision is one
/// of its transactions), so several nodes share deals through the database; each transition is
/// announced by the one node whose `UPDATE` changed the row. `stock` events are coalesced per
/// deal to one per 100 ms (latest value wins, read from the store when sent).
public actor DealService: ReservationConfirmer {
    public static let stockInterval: Duration = .milliseconds(100)

    let rooms: any RoomStore
    let products: any LiveRoomStore
    let store: any DealStore
    let events: DealEvents
    /// `LIVEHUB_DEAL_RESERVATION_SECONDS`.
    let reservationLifetime: Duration
    /// `LIVEHUB_DEALS_MAX_PER_ROOM`.
    let maxPerRoom: Int
    let logger: Logger
    let now: @Sendable () -> Date

    /// Rooms whose `stock` event is waiting to be sent, with the deals whose stock changed.
    private var pendingStock: [String: Set<String>] = [:]
    /// When each room's last `stock` flush went out (pruned by `tick`).
    private var lastStockFlush: [String: ContinuousClock.Instant] = [:]
    /// Rooms whose `stock` flush is being read and sent (one at a time per room).
    private var flushingRooms: Set<String> = []

    public init(
        rooms: any RoomStore, products: any LiveRoomStore, store: any DealStore, events: DealEvents,
        reservationLifetime: Duration = .seconds(600), maxPerRoom: Int = 20, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.rooms = rooms
        self.products = products
        self.store = store
        self.events = events
        self.reservationLifetime = reservationLifetime
        self.maxPerRoom = maxPerRoom
        self.logger = logger
        self.now = now
    }

    private var nowMs: Int64 { DealTime.milliseconds(now()) }

    // MARK: Owner

    public func create(roomId: String, _ request: CreateDealRequest, by user: AuthUser) async throws -> DealView {
        let valid = try DealRules.validate(request)
        let room = try await rooms.ownedRoom(id: roomId, by: user)
        guard room.status != .ended else { throw DomainError.conflict("the room has ended; deals cannot be added") }
        guard let product = try await products.products(roomId: roomId).first(where: { $0.id == valid.liveProductId }) else {
            throw DomainError.notFound("no product \(valid.liveProductId) in this room")
        }
        let created = nowMs
        let startsAt = created + Int64(valid.startsIn) * 1000
        let deal = DealRecord(
            id: UUID().uuidString.lowercased(), liveRoomId: roomId, liveProductId: product.id, productName: product.productName,
            originalPrice: product.originalPrice ?? product.livePrice, dealPrice: valid.dealPrice, quantity: valid.quantity,
            remaining: valid.quantity, perBuyerLimit: valid.perBuyerLimit, startsAtMs: startsAt,
            endsAtMs: startsAt + Int64(valid.duration) * 1000, status: .scheduled, createdAtMs: created)
        let saved = try await store.insertDeal(deal, maxActive: maxPerRoom)
        await announce("scheduled", saved)
        scheduleTick(atMs: saved.startsAtMs)
        scheduleTick(atMs: saved.endsAtMs)
        if valid.startsIn == 0 { await tick() }
        return DealView((try? await store.deal(id: saved.id)) ?? saved)
    }

    public func list(roomId: String) async throws -> [DealView] {
        _ = try await rooms.existingRoom(id: roomId)
        return try await store.deals(roomId: roomId, limit: DealRules.listLimit).map(DealView.init)
    }

    public func cancel(roomId: String, dealId: String, by user: AuthUser) async throws -> DealView {
        _ = try await rooms.ownedRoom(id: roomId, by: user)
        let before = try await store.deal(id: dealId)
        let deal = try await store.cancelDeal(id: dealId, roomId: roomId, nowMs: nowMs)
        if before?.status != .cancelled { await announce("cancelled", deal) }
        return DealView(deal)
    }

    // MARK: Buyers

    public func claim(roomId: String, dealId: String, _ request: ClaimDealRequest, by user: AuthUser) async throws -> DealClaimResponse {
        let quantity = try DealRules.integer(request.quantity ?? 1, "quantity", 1...DealRules.maxQuantity)
        let claimedAt = nowMs
        // A quick refusal from the committed row, without the claim's lock (most of a sold-out
        // rush ends here); a claim that may succeed is decided by the store's transaction alone.
        if let seen = try await store.deal(id: dealId) {
            guard seen.liveRoomId == roomId else { throw DealRefusal.unknownDeal }
            try DealRules.checkClaimable(seen, nowMs: claimedAt)
            guard seen.remaining >= quantity else { throw DealRefusal.soldOut }
        }
        let lifetimeMs = reservationLifetime.components.seconds * 1000 + reservationLifetime.components.attoseconds / 1_000_000_000_000_000
        let claim = try await store.claim(
            dealId: dealId, roomId: roomId, userId: user.userId, quantity: quantity, reservationId: UUID().uuidString.lowercased(),
            nowMs: claimedAt, expiresAtMs: claimedAt + lifetimeMs)
        if claim.deal.remaining == 0 {
            await announce("sold-out", claim.deal)
        } else {
            stockChanged(roomId: roomId, dealId: dealId)
        }
        return DealClaimResponse(
            reservationId: claim.reservation.id, expiresAt: DealTime.iso(claim.reservation.expiresAtMs), dealId: dealId, quantity: quantity,
            remaining: claim.deal.remaining)
    }

    /// The order service reported the order of this reservation (`POST /orders`).
    public func confirmReservation(id: String, roomId: String) async throws {
        guard !id.isEmpty, id.count <= 100 else { throw DealRefusal.unknownReservation }
        _ = try await store.confirmReservation(id: id, roomId: roomId, nowMs: nowMs)
    }

    // MARK: Scheduler

    /// One pass (every `LIVEHUB_DEAL_SWEEP_SECONDS`, and at each deal's start and end on the node
    /// that made it): expired reservations give their units back (`stock`), due deals start and
    /// end. Store errors are logged; the next pass retries.
    public func tick() async {
        let at = nowMs
        do {
            for deal in try await store.endDueDeals(nowMs: at) { await announce("ended", deal) }
            for deal in try await store.startDueDeals(nowMs: at) {
                await announce("started", deal)
                if deal.remaining == 0 { await announce("sold-out", deal) }
            }
            for deal in try await store.expireReservations(nowMs: at) where deal.status == .live || deal.status == .scheduled {
                stockChanged(roomId: deal.liveRoomId, dealId: deal.id)
            }
        } catch {
            logger.warning("deal sweep failed", metadata: ["error": "\(error)"])
        }
        let stale = ContinuousClock.now - .seconds(1)
        lastStockFlush = lastStockFlush.filter { $0.value > stale || pendingStock[$0.key] != nil }
    }

    private func scheduleTick(atMs: Int64) {
        let delayMs = max(0, atMs - nowMs)
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(delayMs))
            await self?.tick()
        }
    }

    // MARK: Events

    private func announce(_ type: String, _ deal: DealRecord) async {
        await events.publish(deal.liveRoomId, DealMessage(type: type, deal: DealView(deal), serverTime: ISOTime.string(now())))
    }

    /// Rooms with a `stock` flush pending (tests).
    var pendingStockRooms: Int { pendingStock.count }

    private func stockChanged(roomId: String, dealId: String) {
        if pendingStock[roomId] != nil {
            pendingStock[roomId]?.insert(dealId)
            return
        }
        pendingStock[roomId] = [dealId]
        Task { [weak self] in await self?.flushStockWhenDue(roomId: roomId) }
    }

    /// Sends the room's pending `stock` events once `stockInterval` has passed since the end of
    /// its previous flush (a flush under way counts as just sent), with the values read now.
    private func flushStockWhenDue(roomId: String) async {
        while flushingRooms.contains(roomId) || lastStockFlush[roomId].map({ ContinuousClock.now - $0 < Self.stockInterval }) == true {
            let since = lastStockFlush[roomId].map { ContinuousClock.now - $0 } ?? .zero
            try? await Task.sleep(for: max(.milliseconds(5), Self.stockInterval - since))
        }
        guard let dealIds = pendingStock.removeValue(forKey: roomId) else { return }
        flushingRooms.insert(roomId)
        defer { flushingRooms.remove(roomId) }
        for dealId in dealIds.sorted() {
            guard let deal = try? await store.deal(id: dealId), deal.status == .live || deal.status == .scheduled else { continue }
            await announce("stock", deal)
        }
        lastStockFlush[roomId] = ContinuousClock.now
    }
}
