import Foundation
import GRDB

/// `DealStore` on the embedded SQLite database (migration `v4-flash-deals`). Every method is one
/// write transaction; SQLite runs one writer at a time, so a claim's checks and its decrement see
/// no other claim in between.
public struct SQLiteDealStore: DealStore {
    let database: AppDatabase

    public init(database: AppDatabase) {
        self.database = database
    }

    static let dealColumns = """
        id, liveRoomId, liveProductId, productName, originalPrice, dealPrice, quantity, remaining, perBuyerLimit, \
        startsAt, endsAt, status, createdAt
        """

    static func decodeDeal(_ row: Row) -> DealRecord {
        DealRecord(
            id: row["id"], liveRoomId: row["liveRoomId"], liveProductId: row["liveProductId"], productName: row["productName"],
            originalPrice: row["originalPrice"], dealPrice: row["dealPrice"], quantity: row["quantity"], remaining: row["remaining"],
            perBuyerLimit: row["perBuyerLimit"], startsAtMs: row["startsAt"], endsAtMs: row["endsAt"],
            status: DealStatus(rawValue: row["status"] as String? ?? "") ?? .ended, createdAtMs: row["createdAt"])
    }

    static func deal(_ db: Database, id: String) throws -> DealRecord? {
        try Row.fetchOne(db, sql: "SELECT \(dealColumns) FROM deal WHERE id = ?", arguments: [id]).map(decodeDeal)
    }

    static func deals(_ db: Database, sql: String, arguments: StatementArguments) throws -> [DealRecord] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map(decodeDeal)
    }

    public func insertDeal(_ deal: DealRecord, maxActive: Int) async throws -> DealRecord {
        try await database.writer.write { db in
            let active = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM deal WHERE liveRoomId = ? AND status IN ('scheduled', 'live')", arguments: [deal.liveRoomId]) ?? 0
            guard active < maxActive else {
                throw DomainError.conflict("the room already has \(active) scheduled or live deals (at most \(maxActive))")
            }
            try db.execute(
                sql: "INSERT INTO deal (\(Self.dealColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    deal.id, deal.liveRoomId, deal.liveProductId, deal.productName, deal.originalPrice, deal.dealPrice, deal.quantity,
                    deal.remaining, deal.perBuyerLimit, deal.startsAtMs, deal.endsAtMs, deal.status.rawValue, deal.createdAtMs,
                ])
            return deal
        }
    }

    public func deals(roomId: String, limit: Int) async throws -> [DealRecord] {
        try await database.writer.read { db in
            try Self.deals(
                db, sql: "SELECT \(Self.dealColumns) FROM deal WHERE liveRoomId = ? ORDER BY createdAt DESC, id LIMIT ?",
                arguments: [roomId, limit])
        }
    }

    public func deal(id: String) async throws -> DealRecord? {
        try await database.writer.read { db in try Self.deal(db, id: id) }
    }

    public func cancelDeal(id: String, roomId: String, nowMs: Int64) async throws -> DealRecord {
        try await database.writer.write { db in
            guard var deal = try Self.deal(db, id: id), deal.liveRoomId == roomId else { throw DealRefusal.unknownDeal }
            guard deal.status == .scheduled, nowMs < deal.startsAtMs else {
                if deal.status == .cancelled { return deal }
                throw DealRefusal.alreadyStarted
            }
            try db.execute(sql: "UPDATE deal SET status = 'cancelled' WHERE id = ?", arguments: [id])
            deal.status = .cancelled
            return deal
        }
    }

    public func claim(
        dealId: String, roomId: String, userId: String, quantity: Int, reservationId: String, nowMs: Int64, expiresAtMs: Int64
    ) async throws -> DealClaim {
        try await database.writer.write { db in
            guard var deal = try Self.deal(db, id: dealId), deal.liveRoomId == roomId else { throw DealRefusal.unknownDeal }
            try DealRules.checkClaimable(deal, nowMs: nowMs)
            let held = try Int.fetchOne(
                db,
                sql: "SELECT COALESCE(SUM(quantity), 0) FROM deal_reservation WHERE dealId = ? AND userId = ? AND status IN ('held', 'confirmed')",
                arguments: [dealId, userId]) ?? 0
            guard held <= deal.perBuyerLimit - quantity else { throw DealRefusal.overLimit(limit: deal.perBuyerLimit, alreadyReserved: held) }
            try db.execute(
                sql: "UPDATE deal SET remaining = remaining - ? WHERE id = ? AND remaining >= ?", arguments: [quantity, dealId, quantity])
            guard db.changesCount == 1 else { throw DealRefusal.soldOut }
            deal.remaining -= quantity
            let reservation = DealReservationRecord(
                id: reservationId, dealId: dealId, userId: userId, quantity: quantity, expiresAtMs: expiresAtMs, status: .held, createdAtMs: nowMs)
            try db.execute(
                sql: "INSERT INTO deal_reservation (id, dealId, userId, quantity, expiresAt, status, createdAt) VALUES (?, ?, ?, ?, ?, 'held', ?)",
                arguments: [reservation.id, dealId, userId, quantity, expiresAtMs, nowMs])
            return DealClaim(reservation: reservation, deal: deal)
        }
    }

    public func confirmReservation(id: String, roomId: String, nowMs: Int64) async throws -> DealReservationRecord {
        try await database.writer.write { db in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT r.id, r.dealId, r.userId, r.quantity, r.expiresAt, r.status, r.createdAt FROM deal_reservation r
                    JOIN deal d ON d.id = r.dealId WHERE r.id = ? AND d.liveRoomId = ?
                    """,
                arguments: [id, roomId])
            else { throw DealRefusal.unknownReservation }
            var reservation = DealReservationRecord(
                id: row["id"], dealId: row["dealId"], userId: row["userId"], quantity: row["quantity"], expiresAtMs: row["expiresAt"],
                status: ReservationStatus(rawValue: row["status"] as String? ?? "") ?? .expired, createdAtMs: row["createdAt"])
            switch reservation.status {
            case .confirmed:
                return reservation
            case .expired:
                throw DealRefusal.reservationExpired
            case .held:
                // Past its expiry but not swept yet: as good as expired (the sweep returns it).
                guard reservation.expiresAtMs >= nowMs else { throw DealRefusal.reservationExpired }
                try db.execute(sql: "UPDATE deal_reservation SET status = 'confirmed' WHERE id = ? AND status = 'held'", arguments: [id])
                reservation.status = .confirmed
                return reservation
            }
        }
    }

    public func expireReservations(nowMs: Int64) async throws -> [DealRecord] {
        try await database.writer.write { db in
            let expired = try Row.fetchAll(
                db, sql: "SELECT id, dealId, quantity FROM deal_reservation WHERE status = 'held' AND expiresAt < ?", arguments: [nowMs])
            guard !expired.isEmpty else { return [] }
            var returned: [String: Int] = [:]
            for row in expired {
                try db.execute(sql: "UPDATE deal_reservation SET status = 'expired' WHERE id = ? AND status = 'held'", arguments: [row["id"] as String])
                guard db.changesCount == 1 else { continue }
                returned[row["dealId"], default: 0] += row["quantity"] as Int
            }
            var deals: [DealRecord] = []
            for (dealId, units) in returned.sorted(by: { $0.key < $1.key }) {
                try db.execute(sql: "UPDATE deal SET remaining = MIN(quantity, remaining + ?) WHERE id = ?", arguments: [units, dealId])
                if let deal = try Self.deal(db, id: dealId) { deals.append(deal) }
            }
            return deals
        }
    }

    public func startDueDeals(nowMs: Int64) async throws -> [DealRecord] {
        try await transition(from: "status = 'scheduled' AND startsAt <= ? AND endsAt > ?", to: .live, nowMs: nowMs, arguments: [nowMs, nowMs])
    }

    public func endDueDeals(nowMs: Int64) async throws -> [DealRecord] {
        try await transition(from: "status IN ('scheduled', 'live') AND endsAt <= ?", to: .ended, nowMs: nowMs, arguments: [nowMs])
    }

    private func transition(from condition: String, to status: DealStatus, nowMs: Int64, arguments: StatementArguments) async throws -> [DealRecord] {
        try await database.writer.write { db in
            var due = try Self.deals(db, sql: "SELECT \(Self.dealColumns) FROM deal WHERE \(condition) ORDER BY startsAt, id", arguments: arguments)
            guard !due.isEmpty else { return [] }
            for index in due.indices {
                try db.execute(sql: "UPDATE deal SET status = ? WHERE id = ?", arguments: [status.rawValue, due[index].id])
                due[index].status = status
            }
            return due
        }
    }
}
