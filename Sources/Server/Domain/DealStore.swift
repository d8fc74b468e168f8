import Foundation

/// A flash deal's state in storage (issue 22 §1). `scheduled` → `live` (at `startsAt`) → `ended`
/// (at `endsAt`); `cancelled` only before the start. "Sold out" is `remaining == 0`, not a state:
/// an expired reservation may give units back.
public enum DealStatus: String, Sendable, Codable, CaseIterable {
    case scheduled, live, ended, cancelled
}

/// `deal` table: a limited quantity of a room's product at a deal price, between two times.
/// Times are milliseconds since 1970 (compared in SQL on both backends).
public struct DealRecord: Sendable, Equatable {
    public var id: String
    public var liveRoomId: String
    public var liveProductId: String
    /// The product's name and price when the deal was made (the card shows them).
    public var productName: String?
    public var originalPrice: Double?
    public var dealPrice: Double
    public var quantity: Int
    public var remaining: Int
    public var perBuyerLimit: Int
    public var startsAtMs: Int64
    public var endsAtMs: Int64
    public var status: DealStatus
    public var createdAtMs: Int64
}

/// A reservation's state: `held` until the order service confirms it (`confirmed`) or it expires
/// (`expired`, its units returned to the deal once, by whichever node sweeps first).
public enum ReservationStatus: String, Sendable, Codable {
    case held, confirmed, expired
}

/// `deal_reservation` table: units of a deal held for one buyer.
public struct DealReservationRecord: Sendable, Equatable {
    public var id: String
    public var dealId: String
    public var userId: String
    public var quantity: Int
    public var expiresAtMs: Int64
    public var status: ReservationStatus
    public var createdAtMs: Int64
}

/// Why a claim, a cancel or an order's reservation was refused: HTTP 409 with `code` (404 for an
/// unknown deal), the message shown to the caller.
public enum DealRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownDeal
    case soldOut
    case overLimit(limit: Int, alreadyReserved: Int)
    case notStarted
    case ended
    case alreadyStarted
    case unknownReservation
    case reservationExpired

    public var code: String {
        switch self {
        case .unknownDeal: return "DEAL_NOT_FOUND"
        case .soldOut: return "SOLD_OUT"
        case .overLimit: return "OVER_LIMIT"
        case .notStarted: return "NOT_STARTED"
        case .ended: return "DEAL_ENDED"
        case .alreadyStarted: return "DEAL_STARTED"
        case .unknownReservation: return "RESERVATION_NOT_FOUND"
        case .reservationExpired: return "RESERVATION_EXPIRED"
        }
    }

    public var isNotFound: Bool { self == .unknownDeal }

    public var description: String {
        switch self {
        case .unknownDeal: return "no such deal in this room"
        case .soldOut: return "the deal is sold out"
        case .overLimit(let limit, let reserved):
            return "at most \(limit) per buyer; you already hold \(reserved)"
        case .notStarted: return "the deal has not started yet"
        case .ended: return "the deal has ended"
        case .alreadyStarted: return "the deal has started; it can no longer be cancelled"
        case .unknownReservation: return "no such reservation in this room"
        case .reservationExpired: return "the reservation expired; its units went back to the deal"
        }
    }
}

/// What a successful claim answers: the reservation and the deal after the decrement.
public struct DealClaim: Sendable, Equatable {
    public var reservation: DealReservationRecord
    public var deal: DealRecord
}

/// Storage of flash deals (issue 22 §1), declared by the domain; SQLite (`SQLiteDealStore`) and
/// PostgreSQL (`PostgresDealStore`) pass the same contract (DealStoreContractTests). Every method
/// is one transaction. The `…Due` and `expireReservations` methods change each row once whatever
/// the number of nodes calling them: only the caller that changed a row gets it back, so exactly
/// one node announces each transition.
public protocol DealStore: Sendable {
    /// Inserts a scheduled deal unless the room already has `maxActive` scheduled or live deals
    /// (`DomainError.conflict`).
    func insertDeal(_ deal: DealRecord, maxActive: Int) async throws -> DealRecord
    /// The room's deals, newest first, at most `limit`.
    func deals(roomId: String, limit: Int) async throws -> [DealRecord]
    func deal(id: String) async throws -> DealRecord?
    /// `scheduled` → `cancelled` while `nowMs < startsAt`. Throws `DealRefusal.unknownDeal` or
    /// `.alreadyStarted`.
    func cancelDeal(id: String, roomId: String, nowMs: Int64) async throws -> DealRecord
    /// The atomic claim: in one transaction, the deal row locked, the buyer's held + confirmed
    /// units counted, then `remaining = remaining - quantity WHERE remaining >= quantity`, then the
    /// reservation inserted. Throws a `DealRefusal`.
    func claim(
        dealId: String, roomId: String, userId: String, quantity: Int, reservationId: String, nowMs: Int64, expiresAtMs: Int64
    ) async throws -> DealClaim
    /// `held` → `confirmed` (idempotent: a confirmed one answers again). Throws
    /// `DealRefusal.unknownReservation` (none, or not of this room) or `.reservationExpired`.
    func confirmReservation(id: String, roomId: String, nowMs: Int64) async throws -> DealReservationRecord
    /// Held reservations past their expiry become `expired` and their units return to their deal;
    /// answers the deals whose stock changed (after the return).
    func expireReservations(nowMs: Int64) async throws -> [DealRecord]
    /// `scheduled` deals whose start has come become `live`; answers them.
    func startDueDeals(nowMs: Int64) async throws -> [DealRecord]
    /// `scheduled`/`live` deals whose end has come become `ended`; answers them.
    func endDueDeals(nowMs: Int64) async throws -> [DealRecord]
}

/// Confirms a flash-deal reservation when the order service reports its order (`POST /orders`
/// with `reservationId`); `DealService` is the one.
public protocol ReservationConfirmer: Sendable {
    func confirmReservation(id: String, roomId: String) async throws
}

enum DealTime {
    static func milliseconds(_ date: Date) -> Int64 {
        let ms = (date.timeIntervalSince1970 * 1000).rounded()
        // A clock far outside any plausible date would trap in the conversion.
        guard ms.isFinite, abs(ms) < 1e15 else { return 0 }
        return Int64(ms)
    }

    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

    static func iso(_ ms: Int64) -> String { ISOTime.string(date(ms)) }
}
