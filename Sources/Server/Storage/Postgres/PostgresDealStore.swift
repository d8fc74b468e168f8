import Foundation
import PostgresNIO

/// `DealStore` on the cluster's PostgreSQL database (migration `store-v4-flash-deals`); answers as
/// `SQLiteDealStore` does. A claim's first statement is its conditional decrement, which locks the
/// deal row until the commit, so claims on any node are serialised per deal: the per-buyer count
/// that follows sees every earlier claim of that deal committed, and an over-limit claim rolls back. Transitions and expiries are `UPDATE … WHERE <old state> RETURNING`: a row
/// changes once, and only the node that changed it hears of it.
public struct PostgresDealStore: DealStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    static let dealColumns = """
        id, live_room_id, live_product_id, product_name, original_price, deal_price, quantity, remaining, per_buyer_limit, \
        starts_at, ends_at, status, created_at
        """

    static func decodeDeal(_ row: PostgresRow) throws -> DealRecord {
        let cells = row.makeRandomAccess()
        return DealRecord(
            id: try cells["id"].decode(String.self),
            liveRoomId: try cells["live_room_id"].decode(String.self),
            liveProductId: try cells["live_product_id"].decode(String.self),
            productName: try cells["product_name"].decode(String?.self),
            originalPrice: try cells["original_price"].decode(Double?.self),
            dealPrice: try cells["deal_price"].decode(Double.self),
            quantity: try cells["quantity"].decode(Int.self),
            remaining: try cells["remaining"].decode(Int.self),
            perBuyerLimit: try cells["per_buyer_limit"].decode(Int.self),
            startsAtMs: try cells["starts_at"].decode(Int64.self),
            endsAtMs: try cells["ends_at"].decode(Int64.self),
            status: DealStatus(rawValue: try cells["status"].decode(String.self)) ?? .ended,
            createdAtMs: try cells["created_at"].decode(Int64.self))
    }

    static func deals(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [DealRecord] {
        var deals: [DealRecord] = []
        for try await row in try await connection.query(query, logger: connection.logger) { deals.append(try decodeDeal(row)) }
        return deals
    }

    public func insertDeal(_ deal: DealRecord, maxActive: Int) async throws -> DealRecord {
        guard PostgresText.isStorable(deal.id, deal.liveRoomId, deal.liveProductId, deal.productName ?? "") else {
            throw DomainError.invalid("text may not contain the NUL character (U+0000)")
        }
        return try await database.inTransaction { connection in
            // The room row locked: two nodes creating deals at once count one after the other.
            guard try await PostgresRoomStore.room(connection, id: deal.liveRoomId, forUpdate: true) != nil else {
                throw DomainError.notFound("no room with id \(deal.liveRoomId)")
            }
            var active = 0
            for try await count in try await connection.query(
                "SELECT COUNT(*)::bigint FROM deal WHERE live_room_id = \(deal.liveRoomId) AND status IN ('scheduled', 'live')",
                logger: connection.logger
            ).decode(Int.self) { active = count }
            guard active < maxActive else {
                throw DomainError.conflict("the room already has \(active) scheduled or live deals (at most \(maxActive))")
            }
            try await connection.query("""
                INSERT INTO deal (\(unescaped: Self.dealColumns)) VALUES (
                  \(deal.id), \(deal.liveRoomId), \(deal.liveProductId), \(deal.productName), \(deal.originalPrice), \(deal.dealPrice),
                  \(deal.quantity), \(deal.remaining), \(deal.perBuyerLimit), \(deal.startsAtMs), \(deal.endsAtMs), \(deal.status.rawValue),
                  \(deal.createdAtMs))
                """, logger: connection.logger)
            return deal
        }
    }

    public func deals(roomId: String, limit: Int) async throws -> [DealRecord] {
        guard PostgresText.isStorable(roomId) else { return [] }
        return try await database.withStoreConnection { connection in
            try await Self.deals(connection, """
                SELECT \(unescaped: Self.dealColumns) FROM deal WHERE live_room_id = \(roomId)
                ORDER BY created_at DESC, id COLLATE "C" LIMIT \(limit)
                """)
        }
    }

    public func deal(id: String) async throws -> DealRecord? {
        guard PostgresText.isStorable(id) else { return nil }
        return try await database.withStoreConnection { connection in
            try await Self.deals(connection, "SELECT \(unescaped: Self.dealColumns) FROM deal WHERE id = \(id)").first
        }
    }

    public func cancelDeal(id: String, roomId: String, nowMs: Int64) async throws -> DealRecord {
        guard PostgresText.isStorable(id, roomId) else { throw DealRefusal.unknownDeal }
        return try await database.inTransaction { connection in
            guard var deal = try await Self.deals(connection, "SELECT \(unescaped: Self.dealColumns) FROM deal WHERE id = \(id) FOR UPDATE").first,
                deal.liveRoomId == roomId
            else { throw DealRefusal.unknownDeal }
            guard deal.status == .scheduled, nowMs < deal.startsAtMs else {
                if deal.status == .cancelled { return deal }
                throw DealRefusal.alreadyStarted
            }
            try await connection.query("UPDATE deal SET status = 'cancelled' WHERE id = \(id)", logger: connection.logger)
            deal.status = .cancelled
            return deal
        }
    }

    public func claim(
        dealId: String, roomId: String, userId: String, quantity: Int, reservationId: String, nowMs: Int64, expiresAtMs: Int64
    ) async throws -> DealClaim {
        guard PostgresText.isStorable(dealId, roomId) else { throw DealRefusal.unknownDeal }
        guard PostgresText.isStorable(userId) else { throw DomainError.invalid("the user id may not contain U+0000") }
        return try await database.inTransaction { connection in
            // The decrement first: it locks the deal row (claims of this deal on every node wait
            // here), and it happens only when the deal is open and has the units.
            guard let deal = try await Self.deals(connection, """
                UPDATE deal SET remaining = remaining - \(quantity)
                WHERE id = \(dealId) AND live_room_id = \(roomId) AND status IN ('scheduled', 'live')
                  AND starts_at <= \(nowMs) AND ends_at > \(nowMs) AND remaining >= \(quantity)
                RETURNING \(unescaped: Self.dealColumns)
                """).first
            else {
                // Why not: the same rules, on the row as it is (the transaction rolls back).
                guard let deal = try await Self.deals(connection, "SELECT \(unescaped: Self.dealColumns) FROM deal WHERE id = \(dealId)").first,
                    deal.liveRoomId == roomId
                else { throw DealRefusal.unknownDeal }
                try DealRules.checkClaimable(deal, nowMs: nowMs)
                throw DealRefusal.soldOut
            }
            // Under the row lock, the buyer's earlier claims of this deal are all committed: the
            // count is exact; over the limit, the rollback gives the units back.
            var held = 0
            for try await sum in try await connection.query("""
                SELECT COALESCE(SUM(quantity), 0)::bigint FROM deal_reservation
                WHERE deal_id = \(dealId) AND user_id = \(userId) AND status IN ('held', 'confirmed')
                """, logger: connection.logger).decode(Int.self) { held = sum }
            guard held <= deal.perBuyerLimit - quantity else { throw DealRefusal.overLimit(limit: deal.perBuyerLimit, alreadyReserved: held) }
            try await connection.query("""
                INSERT INTO deal_reservation (id, deal_id, user_id, quantity, expires_at, status, created_at)
                VALUES (\(reservationId), \(dealId), \(userId), \(quantity), \(expiresAtMs), 'held', \(nowMs))
                """, logger: connection.logger)
            let reservation = DealReservationRecord(
                id: reservationId, dealId: dealId, userId: userId, quantity: quantity, expiresAtMs: expiresAtMs, status: .held, createdAtMs: nowMs)
            return DealClaim(reservation: reservation, deal: deal)
        }
    }

    public func confirmReservation(id: String, roomId: String, nowMs: Int64) async throws -> DealReservationRecord {
        guard PostgresText.isStorable(id, roomId) else { throw DealRefusal.unknownReservation }
        return try await database.inTransaction { connection in
            var found: DealReservationRecord?
            for try await row in try await connection.query("""
                SELECT r.id, r.deal_id, r.user_id, r.quantity, r.expires_at, r.status, r.created_at FROM deal_reservation r
                JOIN deal d ON d.id = r.deal_id WHERE r.id = \(id) AND d.live_room_id = \(roomId) FOR UPDATE OF r
                """, logger: connection.logger) {
                let cells = row.makeRandomAccess()
                found = DealReservationRecord(
                    id: try cells["id"].decode(String.self), dealId: try cells["deal_id"].decode(String.self),
                    userId: try cells["user_id"].decode(String.self), quantity: try cells["quantity"].decode(Int.self),
                    expiresAtMs: try cells["expires_at"].decode(Int64.self),
                    status: ReservationStatus(rawValue: try cells["status"].decode(String.self)) ?? .expired,
                    createdAtMs: try cells["created_at"].decode(Int64.self))
            }
            guard var reservation = found else { throw DealRefusal.unknownReservation }
            switch reservation.status {
            case .confirmed:
                return reservation
            case .expired:
                throw DealRefusal.reservationExpired
            case .held:
                guard reservation.expiresAtMs >= nowMs else { throw DealRefusal.reservationExpired }
                try await connection.query("UPDATE deal_reservation SET status = 'confirmed' WHERE id = \(id)", logger: connection.logger)
                reservation.status = .confirmed
                return reservation
            }
        }
    }

    public func expireReservations(nowMs: Int64) async throws -> [DealRecord] {
        try await database.inTransaction { connection in
            // Each held row flips once, whichever node runs this: the stock returns once.
            var returned: [String: Int] = [:]
            for try await (dealId, units) in try await connection.query("""
                UPDATE deal_reservation SET status = 'expired' WHERE status = 'held' AND expires_at < \(nowMs) RETURNING deal_id, quantity
                """, logger: connection.logger).decode((String, Int).self) {
                returned[dealId, default: 0] += units
            }
            var deals: [DealRecord] = []
            for (dealId, units) in returned.sorted(by: { $0.key < $1.key }) {
                deals += try await Self.deals(connection, """
                    UPDATE deal SET remaining = LEAST(quantity, remaining + \(units)) WHERE id = \(dealId) RETURNING \(unescaped: Self.dealColumns)
                    """)
            }
            return deals
        }
    }

    public func startDueDeals(nowMs: Int64) async throws -> [DealRecord] {
        try await database.withStoreConnection { connection in
            try await Self.deals(connection, """
                UPDATE deal SET status = 'live' WHERE status = 'scheduled' AND starts_at <= \(nowMs) AND ends_at > \(nowMs)
                RETURNING \(unescaped: Self.dealColumns)
                """)
        }
    }

    public func endDueDeals(nowMs: Int64) async throws -> [DealRecord] {
        try await database.withStoreConnection { connection in
            try await Self.deals(connection, """
                UPDATE deal SET status = 'ended' WHERE status IN ('scheduled', 'live') AND ends_at <= \(nowMs)
                RETURNING \(unescaped: Self.dealColumns)
                """)
        }
    }
}
