import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import Server

/// Flash deals (issue 22 §1): the `DealStore` contract on both backends (SQLite in memory and,
/// with `LIVEHUB_TEST_DATABASE_URL`, a fresh PostgreSQL), then the REST API on a real LiveHub.
extension StoreBackend {
    func withDealStores<T: Sendable>(_ body: (any RoomStore, any DealStore) async throws -> T) async throws -> T {
        switch self {
        case .sqlite:
            let database = try AppDatabase.inMemory()
            return try await body(SQLiteRoomStore(database: database), SQLiteDealStore(database: database))
        case .postgres:
            return try await TestPostgres.withDatabase { database in
                try await body(PostgresRoomStore(database: database), PostgresDealStore(database: database))
            }
        }
    }
}

private let t0: Int64 = 1_800_000_000_123

private func dealRoom(_ id: String) -> RoomRecord {
    let at = DealTime.date(t0)
    return RoomRecord(
        id: id, shopOwnerId: "owner-1", shopOwnerName: "Shop", title: "Room \(id)", description: nil, thumbnailUrl: nil,
        streamKey: "key-\(id)", status: .live, peakViewers: 0, totalOrders: 0, totalRevenue: 0,
        createdAt: at, updatedAt: at, startedAt: nil, endedAt: nil)
}

private func deal(
    _ id: String, room: String = "r1", quantity: Int = 10, perBuyer: Int = 2, startsIn: Int64 = 0, duration: Int64 = 60_000
) -> DealRecord {
    DealRecord(
        id: id, liveRoomId: room, liveProductId: "p1", productName: "Mug", originalPrice: 100, dealPrice: 49.5, quantity: quantity,
        remaining: quantity, perBuyerLimit: perBuyer, startsAtMs: t0 + startsIn, endsAtMs: t0 + startsIn + duration, status: .scheduled,
        createdAtMs: t0)
}

/// Runs `body` for 0..<count at once; answers the results in index order.
private func concurrently<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) async -> T) async -> [T] {
    await withTaskGroup(of: (Int, T).self) { group in
        for index in 0..<count { group.addTask { (index, await body(index)) } }
        var results = [(Int, T)]()
        for await result in group { results.append(result) }
        return results.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

private enum ClaimResult: Sendable, Equatable {
    case reserved(Int)
    case refused(String)
    case failed(String)
}

@Suite("Deal store contract (SQLite and PostgreSQL)")
struct DealStoreContractTests {
    @Test(arguments: StoreBackend.available)
    func concurrentClaimsNeverOversellAndRespectThePerBuyerLimit(_ backend: StoreBackend) async throws {
        try await backend.withDealStores { rooms, deals in
            try await rooms.insert(dealRoom("r1"))
            _ = try await deals.insertDeal(deal("d1", quantity: 25, perBuyer: 3), maxActive: 20)
            // 200 claims by 40 buyers (5 each, 1 or 2 units): far more asked than the 25 units.
            let results = await concurrently(200) { index -> (String, ClaimResult) in
                let buyer = "u\(index % 40)"
                let quantity = index % 3 == 0 ? 2 : 1
                do {
                    let claim = try await deals.claim(
                        dealId: "d1", roomId: "r1", userId: buyer, quantity: quantity, reservationId: "res-\(index)", nowMs: t0 + 10,
                        expiresAtMs: t0 + 600_000)
                    return (buyer, .reserved(claim.reservation.quantity))
                } catch let refusal as DealRefusal {
                    return (buyer, .refused(refusal.code))
                } catch {
                    return (buyer, .failed("\(error)"))
                }
            }
            var perBuyer: [String: Int] = [:]
            var sold = 0
            for (buyer, result) in results {
                switch result {
                case .reserved(let units):
                    perBuyer[buyer, default: 0] += units
                    sold += units
                case .refused(let code):
                    #expect(code == "SOLD_OUT" || code == "OVER_LIMIT")
                case .failed(let error):
                    Issue.record("a claim failed: \(error)")
                }
            }
            #expect(sold == 25, "exactly the deal's quantity is reserved")
            #expect(perBuyer.values.allSatisfy { $0 <= 3 }, "no buyer holds more than perBuyerLimit: \(perBuyer)")
            #expect(try await deals.deal(id: "d1")?.remaining == 0)
        }
    }

    @Test(arguments: StoreBackend.available)
    func oneBuyerClaimingManyTimesAtOnceGetsExactlyTheLimit(_ backend: StoreBackend) async throws {
        try await backend.withDealStores { rooms, deals in
            try await rooms.insert(dealRoom("r1"))
            _ = try await deals.insertDeal(deal("d1", quantity: 100, perBuyer: 3), maxActive: 20)
            let results = await concurrently(40) { index -> String in
                do {
                    _ = try await deals.claim(
                        dealId: "d1", roomId: "r1", userId: "greedy", quantity: 1, reservationId: "g-\(index)", nowMs: t0, expiresAtMs: t0 + 1000)
                    return "ok"
                } catch let refusal as DealRefusal {
                    return refusal.code
                } catch {
                    return "\(error)"
                }
            }
            #expect(results.filter { $0 == "ok" }.count == 3)
            #expect(results.filter { $0 == "OVER_LIMIT" }.count == 37)
            #expect(try await deals.deal(id: "d1")?.remaining == 97)
        }
    }

    @Test(arguments: StoreBackend.available)
    func claimsAreRefusedBeforeTheStartAfterTheEndAndOnUnknownDeals(_ backend: StoreBackend) async throws {
        try await backend.withDealStores { rooms, deals in
            try await rooms.insert(dealRoom("r1"))
            try await rooms.insert(dealRoom("r2"))
            _ = try await deals.insertDeal(deal("later", startsIn: 5000, duration: 10_000), maxActive: 20)
            func refusal(_ dealId: String, room: String = "r1", at: Int64, quantity: Int = 1) async -> DealRefusal? {
                do {
                    _ = try await deals.claim(
                        dealId: dealId, roomId: room, userId: "u", quantity: quantity, reservationId: UUID().uuidString, nowMs: at,
                        expiresAtMs: at + 1000)
                    return nil
                } catch {
                    return error as? DealRefusal
                }
            }
            #expect(await refusal("later", at: t0 + 4999) == .notStarted)
            #expect(await refusal("later", at: t0 + 15_000) == .ended)
            #expect(await refusal("later", room: "r2", at: t0 + 6000) == .unknownDeal, "a deal of another room is unknown here")
            #expect(await refusal("nope", at: t0) == .unknownDeal)
            #expect(await refusal("later", at: t0 + 6000, quantity: 3) == .overLimit(limit: 2, alreadyReserved: 0))
            #expect(await refusal("later", at: t0 + 6000, quantity: 2) == nil, "between start and end, even before the scheduler ran")
            // Cancelling: only before the start.
            _ = try await deals.insertDeal(deal("c", startsIn: 5000), maxActive: 20)
            await #expect(throws: DealRefusal.alreadyStarted) { try await deals.cancelDeal(id: "c", roomId: "r1", nowMs: t0 + 5000) }
            await #expect(throws: DealRefusal.unknownDeal) { try await deals.cancelDeal(id: "c", roomId: "r2", nowMs: t0) }
            #expect(try await deals.cancelDeal(id: "c", roomId: "r1", nowMs: t0).status == .cancelled)
            #expect(await refusal("c", at: t0 + 6000) == .ended, "a cancelled deal takes no claim")
        }
    }

    @Test(arguments: StoreBackend.available)
    func aRoomHoldsAtMostMaxActiveDeals(_ backend: StoreBackend) async throws {
        try await backend.withDealStores { rooms, deals in
            try await rooms.insert(dealRoom("r1"))
            for index in 0..<3 { _ = try await deals.insertDeal(deal("d\(index)"), maxActive: 3) }
            await #expect(throws: DomainError.self) { try await deals.insertDeal(deal("d3"), maxActive: 3) }
            _ = try await deals.cancelDeal(id: "d0", roomId: "r1", nowMs: t0 - 1)
            _ = try await deals.insertDeal(deal("d3"), maxActive: 3)
            #expect(try await deals.deals(roomId: "r1", limit: 10).count == 4)
        }
    }

    @Test(arguments: StoreBackend.available)
    func transitionsAndExpiriesHappenOnceWhateverTheNumberOfSweepers(_ backend: StoreBackend) async throws {
        try await backend.withDealStores { rooms, deals in
            try await rooms.insert(dealRoom("r1"))
            _ = try await deals.insertDeal(deal("d1", quantity: 10, perBuyer: 5, startsIn: 1000, duration: 10_000), maxActive: 20)
            #expect(try await deals.startDueDeals(nowMs: t0 + 999).isEmpty)
            let started = await concurrently(8) { _ in (try? await deals.startDueDeals(nowMs: t0 + 1000).count) ?? -1 }
            #expect(started.reduce(0, +) == 1, "exactly one sweeper starts the deal: \(started)")
            #expect(try await deals.deal(id: "d1")?.status == .live)
            _ = try await deals.claim(dealId: "d1", roomId: "r1", userId: "a", quantity: 4, reservationId: "ra", nowMs: t0 + 1000, expiresAtMs: t0 + 2000)
            _ = try await deals.claim(dealId: "d1", roomId: "r1", userId: "b", quantity: 3, reservationId: "rb", nowMs: t0 + 1000, expiresAtMs: t0 + 2000)
            _ = try await deals.claim(dealId: "d1", roomId: "r1", userId: "c", quantity: 2, reservationId: "rc", nowMs: t0 + 1000, expiresAtMs: t0 + 9000)
            #expect(try await deals.deal(id: "d1")?.remaining == 1)
            // "rb" is paid before it expires; "ra" is not.
            #expect(try await deals.confirmReservation(id: "rb", roomId: "r1", nowMs: t0 + 1500).status == .confirmed)
            #expect(try await deals.confirmReservation(id: "rb", roomId: "r1", nowMs: t0 + 5000).status == .confirmed, "confirming is idempotent")
            let sweeps = await concurrently(8) { _ in (try? await deals.expireReservations(nowMs: t0 + 2001)) ?? [] }
            #expect(sweeps.map(\.count).reduce(0, +) == 1, "one sweeper returns the expired units")
            #expect(sweeps.flatMap { $0 }.first?.remaining == 5)
            #expect(try await deals.deal(id: "d1")?.remaining == 5, "4 units came back once, the confirmed 3 did not")
            await #expect(throws: DealRefusal.reservationExpired) { try await deals.confirmReservation(id: "ra", roomId: "r1", nowMs: t0 + 2002) }
            await #expect(throws: DealRefusal.reservationExpired, "held but past its expiry") {
                try await deals.confirmReservation(id: "rc", roomId: "r1", nowMs: t0 + 9001)
            }
            await #expect(throws: DealRefusal.unknownReservation) { try await deals.confirmReservation(id: "zz", roomId: "r1", nowMs: t0) }
            await #expect(throws: DealRefusal.unknownReservation) { try await deals.confirmReservation(id: "rb", roomId: "other", nowMs: t0) }
            // Buyer "a" may claim again (expired units no longer count); "b" holds 3 confirmed of 5.
            await #expect(throws: DealRefusal.overLimit(limit: 5, alreadyReserved: 3)) {
                try await deals.claim(dealId: "d1", roomId: "r1", userId: "b", quantity: 3, reservationId: "rb2", nowMs: t0 + 3000, expiresAtMs: t0 + 4000)
            }
            _ = try await deals.claim(dealId: "d1", roomId: "r1", userId: "a", quantity: 5, reservationId: "ra2", nowMs: t0 + 3000, expiresAtMs: t0 + 4000)
            let ended = await concurrently(8) { _ in (try? await deals.endDueDeals(nowMs: t0 + 11_000).count) ?? -1 }
            #expect(ended.reduce(0, +) == 1)
            #expect(try await deals.deal(id: "d1")?.status == .ended)
        }
    }
}

private let base = "/v1/notifications/live"

@Suite struct DealAPITests {
    func setUp(_ client: some TestClientProtocol, _ t: TestHub) async throws -> (room: String, product: String) {
        let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"deals"}"#)) {
            try decode(RoomView.self, $0)
        }
        let product = try await client.execute(
            uri: "\(base)/rooms/\(room.id)/products", method: .post, headers: bearer(t.ownerToken),
            body: json(#"{"productId": "mug", "livePrice": 80, "originalPrice": 100, "productName": "Mug"}"#)
        ) { try decode(LiveProductView.self, $0) }
        return (room.id, product.id)
    }

    @Test func hostileNumbersAreRefusedWith400AndNothingIsStored() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let (room, product) = try await setUp(client, t)
            let good = #""liveProductId": "\#(product)", "dealPrice": 10, "quantity": 5, "perBuyerLimit": 1, "durationSeconds": 60"#
            let hostile = [
                #"{"liveProductId": "\#(product)", "dealPrice": NaN, "quantity": 5, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 1e309, "quantity": 5, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": -1, "quantity": 5, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 1e13, "quantity": 5, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 2.5, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 0, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": -3, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 1e300, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 9223372036854775808, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 5, "perBuyerLimit": 6, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 5, "perBuyerLimit": 0.5, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 5, "startsInSeconds": 3601, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 5, "startsInSeconds": -1, "durationSeconds": 60}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 5, "durationSeconds": 9}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 5, "durationSeconds": 3600.5}"#,
                #"{"liveProductId": "\#(product)", "dealPrice": "10", "quantity": 5, "durationSeconds": 60}"#,
                #"{"liveProductId": "", "dealPrice": 10, "quantity": 5, "durationSeconds": 60}"#,
                #"{"dealPrice": 10, "quantity": 5, "durationSeconds": 60}"#,
                #"[1, 2]"#,
            ]
            for body in hostile {
                try await client.execute(uri: "\(base)/rooms/\(room)/deals", method: .post, headers: bearer(t.ownerToken), body: json(body)) { response in
                    #expect(response.status == .badRequest, "\(body) → \(response.status)")
                    #expect(String(buffer: response.body).contains("\"error\""))
                }
            }
            try await client.execute(
                uri: "\(base)/rooms/\(room)/deals", method: .post, headers: bearer(t.ownerToken),
                body: json(#"{"liveProductId": "nope", "dealPrice": 10, "quantity": 5, "durationSeconds": 60}"#)
            ) { #expect($0.status == .notFound) }
            try await client.execute(uri: "\(base)/rooms/\(room)/deals", method: .post, headers: bearer(t.otherOwnerToken), body: json("{\(good)}")) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "\(base)/rooms/\(room)/deals", method: .post, body: json("{\(good)}")) { #expect($0.status == .unauthorized) }
            let none = try await client.execute(uri: "\(base)/rooms/\(room)/deals", method: .get) { try decode([DealView].self, $0) }
            #expect(none.isEmpty)
            // The healthy path next to them.
            let created = try await client.execute(uri: "\(base)/rooms/\(room)/deals", method: .post, headers: bearer(t.ownerToken), body: json("{\(good)}")) {
                #expect($0.status == .created)
                return try decode(DealView.self, $0)
            }
            #expect(created.dealPrice == 10 && created.originalPrice == 100 && created.productName == "Mug" && created.remaining == 5)
            #expect(created.status == "live", "startsInSeconds 0 starts at once")
            for body in [#"{"quantity": 0}"#, #"{"quantity": 1.5}"#, #"{"quantity": 1e309}"#, #"{"quantity": -1}"#, #"{"quantity": "1"}"#] {
                try await client.execute(
                    uri: "\(base)/rooms/\(room)/deals/\(created.id)/claims", method: .post, headers: bearer(t.viewerToken), body: json(body)
                ) { #expect($0.status == .badRequest, "\(body)") }
            }
            try await client.execute(uri: "\(base)/rooms/\(room)/deals/\(created.id)/claims", method: .post, body: json("{}")) {
                #expect($0.status == .unauthorized, "guests may not claim")
            }
        }
    }

    @Test func aClaimReservesAndTheOrderConfirmsIt() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let (room, product) = try await setUp(client, t)
            let deal = try await client.execute(
                uri: "\(base)/rooms/\(room)/deals", method: .post, headers: bearer(t.ownerToken),
                body: json(#"{"liveProductId": "\#(product)", "dealPrice": 10, "quantity": 2, "perBuyerLimit": 1, "durationSeconds": 60}"#)
            ) { try decode(DealView.self, $0) }
            let claim = try await client.execute(
                uri: "\(base)/rooms/\(room)/deals/\(deal.id)/claims", method: .post, headers: bearer(t.viewerToken), body: json(#"{"quantity": 1}"#)
            ) { response in
                #expect(response.status == .created)
                return try decode(DealClaimResponse.self, response)
            }
            #expect(claim.remaining == 1 && claim.quantity == 1 && claim.dealId == deal.id)
            try await client.execute(
                uri: "\(base)/rooms/\(room)/deals/\(deal.id)/claims", method: .post, headers: bearer(t.viewerToken), body: json(#"{"quantity": 1}"#)
            ) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body).contains("OVER_LIMIT"))
            }
            try await client.execute(uri: "\(base)/rooms/\(room)/deals/\(deal.id)", method: .delete, headers: bearer(t.ownerToken)) { response in
                #expect(response.status == .conflict, "a started deal cannot be cancelled")
            }
            let internalHeaders: HTTPFields = [.authorization: "Bearer \(TestHub.internalToken)", .contentType: "application/json"]
            let order = #"{"orderId": "o1", "roomId": "\#(room)", "amount": 10, "productId": "mug", "reservationId": "\#(claim.reservationId)"}"#
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(order)) { #expect($0.status == .created) }
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(order)) {
                #expect($0.status == .ok, "a retry is idempotent: the reservation stays confirmed, the order is not applied twice")
            }
            let unknown = #"{"orderId": "o2", "roomId": "\#(room)", "amount": 10, "reservationId": "no-such"}"#
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(unknown)) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body).contains("RESERVATION_NOT_FOUND"))
            }
            let r = try await client.execute(uri: "\(base)/rooms/\(room)", method: .get) { try decode(RoomView.self, $0) }
            #expect(r.totalOrders == 1, "the refused order was not applied")
        }
    }

    @Test func dealSettingsAreReadFromTheEnvironmentAndRangeChecked() throws {
        let defaults = LiveHubConfiguration()
        #expect(defaults.dealReservation == .seconds(600) && defaults.dealSweep == .seconds(1) && defaults.dealsMaxPerRoom == 20)
        let c = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_DEAL_RESERVATION_SECONDS": "2", "LIVEHUB_DEAL_SWEEP_SECONDS": "0.2", "LIVEHUB_DEALS_MAX_PER_ROOM": "3",
        ])
        #expect(c.dealReservation == .seconds(2) && c.dealSweep == .milliseconds(200) && c.dealsMaxPerRoom == 3)
        for (name, value) in [
            ("LIVEHUB_DEAL_RESERVATION_SECONDS", "0"), ("LIVEHUB_DEAL_RESERVATION_SECONDS", "1e300"), ("LIVEHUB_DEAL_SWEEP_SECONDS", "nan"),
            ("LIVEHUB_DEALS_MAX_PER_ROOM", "0"), ("LIVEHUB_DEALS_MAX_PER_ROOM", "99999999999999999999"),
        ] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
    }
}

/// What `DealService` announced, with when.
private actor EventLog {
    var events: [(at: ContinuousClock.Instant, message: DealMessage)] = []
    func add(_ message: DealMessage) { events.append((ContinuousClock.now, message)) }
}

@Suite struct DealServiceTests {
    @Test func stockEventsAreCoalescedToTenASecondAndSoldOutGoesAtOnce() async throws {
        let database = try AppDatabase.inMemory()
        let rooms = SQLiteRoomStore(database: database)
        let products = SQLiteLiveRoomStore(database: database)
        try await rooms.insert(dealRoom("r1"))
        _ = try await products.addProduct(
            LiveProductRecord(
                id: "p1", liveRoomId: "r1", productId: "sku", productName: "Mug", productImageUrl: nil, originalPrice: 100, livePrice: 80,
                discountPercent: nil, quantityLimit: nil, stockAvailable: nil, soldCount: 0, isFeatured: true, displayOrder: 0, createdAt: Date()),
            defaultOrder: true)
        let log = EventLog()
        var events = DealEvents()
        events.publish = { _, message in await log.add(message) }
        let service = DealService(rooms: rooms, products: products, store: SQLiteDealStore(database: database), events: events, logger: Logger(label: "test"))
        let owner = AuthUser(userId: "owner-1", username: "Shop", roles: ["SHOP_OWNER"])
        let deal = try await service.create(
            roomId: "r1", CreateDealRequest(liveProductId: "p1", dealPrice: 10, quantity: 300, perBuyerLimit: 1, durationSeconds: 60), by: owner)
        #expect(deal.status == "live")
        let began = ContinuousClock.now
        for index in 0..<300 {
            _ = try await service.claim(roomId: "r1", dealId: deal.id, ClaimDealRequest(), by: AuthUser(userId: "u\(index)", username: "u", roles: []))
            if index % 30 == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        await #expect(throws: DealRefusal.soldOut) {
            try await service.claim(roomId: "r1", dealId: deal.id, ClaimDealRequest(), by: AuthUser(userId: "late", username: "u", roles: []))
        }
        try await Task.sleep(for: .milliseconds(250))
        let elapsed = ContinuousClock.now - began
        let all = await log.events
        #expect(all.map(\.message.type).prefix(2) == ["scheduled", "started"])
        #expect(all.filter { $0.message.type == "sold-out" }.count == 1)
        let stock = all.filter { $0.message.type == "stock" }
        #expect(!stock.isEmpty)
        #expect(Double(stock.count) <= elapsed / .milliseconds(100) + 1, "\(stock.count) stock events in \(elapsed)")
        for (previous, next) in zip(stock, stock.dropFirst()) {
            #expect(next.at - previous.at >= .milliseconds(95), "stock events at most one per 100 ms")
        }
        #expect(stock.map(\.message.deal.remaining) == stock.map(\.message.deal.remaining).sorted(by: >), "latest value wins, in order")
    }
}
