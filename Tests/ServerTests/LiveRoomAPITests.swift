import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let base = "/v1/notifications/live"

@Suite struct LiveRoomAPITests {
    func room(_ client: some TestClientProtocol, _ t: TestHub) async throws -> RoomView {
        try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"shop"}"#)) { try decode(RoomView.self, $0) }
    }

    /// `POST /products` answers 201 and the product it created (the old service's `LiveProductDto`).
    func addProduct(_ client: some TestClientProtocol, _ t: TestHub, room: String, _ body: String) async throws -> LiveProductView {
        try await client.execute(uri: "\(base)/rooms/\(room)/products", method: .post, headers: bearer(t.ownerToken), body: json(body)) { response in
            #expect(response.status == .created)
            return try decode(LiveProductView.self, response)
        }
    }

    func products(_ client: some TestClientProtocol, room: String) async throws -> [LiveProductView] {
        try await client.execute(uri: "\(base)/rooms/\(room)/products", method: .get) { try decode([LiveProductView].self, $0) }
    }

    @Test func productsAreAddedWithADiscountFeaturedOneAtATimeAndRemoved() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let mug = try await addProduct(client, t, room: r.id, #"{"productId": 101, "livePrice": 7500, "originalPrice": 10000, "productName": "Mug", "stockAvailable": 5}"#)
            #expect(mug.productId == "101" && mug.productName == "Mug" && mug.stockAvailable == 5 && mug.displayOrder == 0)
            let second = try await addProduct(client, t, room: r.id, #"{"productId": "sku-2", "livePrice": 50, "originalPrice": 40}"#)
            #expect(second.productId == "sku-2" && second.displayOrder == 1)
            let list = try await products(client, room: r.id)
            #expect(list.map(\.productId) == ["101", "sku-2"])
            #expect(list.map(\.id) == [mug.id, second.id])
            #expect(list.map(\.displayOrder) == [0, 1])
            #expect(list[0].discountPercent == 25)
            #expect(list[1].discountPercent == 0, "a live price above the original is no discount")
            let featured = try await client.execute(uri: "\(base)/rooms/\(r.id)/products/\(list[1].id)/feature", method: .put, headers: bearer(t.ownerToken)) { try decode([LiveProductView].self, $0) }
            #expect(featured.filter(\.isFeatured).map(\.id) == [list[1].id])
            let again = try await client.execute(uri: "\(base)/rooms/\(r.id)/products/\(list[0].id)/feature", method: .put, headers: bearer(t.ownerToken)) { try decode([LiveProductView].self, $0) }
            #expect(again.filter(\.isFeatured).map(\.id) == [list[0].id], "exactly one product is featured")
            let remaining = try await client.execute(uri: "\(base)/rooms/\(r.id)/products/\(list[0].id)", method: .delete, headers: bearer(t.ownerToken)) { try decode([LiveProductView].self, $0) }
            #expect(remaining.map(\.productId) == ["sku-2"])
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .get) { response in
                let public_ = try decode([LiveProductView].self, response)
                #expect(public_.map(\.productId) == ["sku-2"])
            }
        }
    }

    @Test func badProductsAreRefusedAndNothingIsStored() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let cases: [(String, HTTPResponse.Status)] = [
                (#"{"livePrice": 1}"#, .badRequest),
                (#"{"productId": "a", "livePrice": "cheap"}"#, .badRequest),
                (#"{"productId": "a", "livePrice": -1}"#, .unprocessableContent),
                (#"{"productId": "a", "livePrice": 1, "quantityLimit": 0}"#, .unprocessableContent),
                (#"{"productId": "a", "livePrice": 1, "productImageUrl": "ftp://x"}"#, .unprocessableContent),
                (#"{"productId": true, "livePrice": 1}"#, .badRequest),
                // Numbers whose arithmetic would overflow (the next product's order is the largest + 1).
                (#"{"productId": "a", "livePrice": 1, "displayOrder": 9223372036854775807}"#, .unprocessableContent),
                (#"{"productId": "a", "livePrice": 1e300}"#, .unprocessableContent),
                (#"{"productId": "a", "livePrice": 1, "originalPrice": 1e300}"#, .unprocessableContent),
                (#"{"productId": "a", "livePrice": 1, "stockAvailable": 9223372036854775807}"#, .unprocessableContent),
                (#"{"productId": "a", "livePrice": 1, "displayOrder": 99999999999999999999}"#, .badRequest),
            ]
            for (body, status) in cases {
                try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(body)) { response in
                    try expectError(response, status)
                }
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.otherOwnerToken), body: json(#"{"productId":"a","livePrice":1}"#)) { response in
                try expectError(response, .forbidden)
            }
            #expect(try t.count("live_product") == 0)
            _ = try await addProduct(client, t, room: r.id, #"{"productId":"a","livePrice":1}"#)
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId":"a","livePrice":2}"#)) { response in
                try expectError(response, .conflict)
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products/nope/feature", method: .put, headers: bearer(t.ownerToken)) { response in
                try expectError(response, .notFound)
            }
            #expect(try t.count("live_product") == 1)
        }
    }

    @Test func anOrderIsAppliedOnceAndShowsOnTheChatAndTotals() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            _ = try await addProduct(client, t, room: r.id, #"{"productId": 101, "livePrice": 7500, "stockAvailable": 2}"#)
            let order = #"{"orderId": 9001, "roomId": "\#(r.id)", "userId": 5, "username": "kim", "productId": 101, "productName": "Mug", "amount": 7500, "timestamp": "2026-11-25T03:00:00Z"}"#
            let internalHeaders: HTTPFields = [.authorization: "Bearer \(TestHub.internalToken)", .contentType: "application/json"]
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(order)) { response in
                #expect(response.status == .created)
                let outcome = try decode(OrderOutcome.self, response)
                #expect(outcome.applied && outcome.totalOrders == 1 && outcome.totalRevenue == 7500)
            }
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(order)) { response in
                #expect(response.status == .ok)
                let outcome = try decode(OrderOutcome.self, response)
                #expect(!outcome.applied && outcome.totalOrders == 1, "idempotent by orderId")
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .get) { response in
                let products = try decode([LiveProductView].self, response)
                #expect(products[0].soldCount == 1)
                #expect(products[0].stockAvailable == 1)
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/chats", method: .get) { response in
                let chats = try decode([LiveChatView].self, response)
                #expect(chats.count == 1)
                #expect(chats[0].type == "ORDER" && chats[0].productName == "Mug" && chats[0].username == "kim")
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/stats", method: .get) { response in
                let stats = try decode(RoomStats.self, response)
                #expect(stats.totalOrders == 1 && stats.totalRevenue == 7500)
            }
            // Without the internal token, or with bad input, nothing changes.
            try await client.execute(uri: "\(base)/orders", method: .post, headers: bearer(t.ownerToken), body: json(order.replacingOccurrences(of: "9001", with: "9002"))) { response in
                try expectError(response, .forbidden)
            }
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(#"{"orderId": 1, "roomId": "nope", "amount": 1}"#)) { response in
                try expectError(response, .notFound)
            }
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(#"{"orderId": 1, "roomId": "\#(r.id)", "amount": -5}"#)) { response in
                try expectError(response, .unprocessableContent)
            }
            // An integral 1e300 used to trap converting it for the owner's bell text.
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(#"{"orderId": 2, "roomId": "\#(r.id)", "amount": 1e300}"#)) { response in
                try expectError(response, .unprocessableContent)
            }
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(#"{"orderId": 1, "roomId": "#)) { response in
                try expectError(response, .badRequest)
            }
            #expect(try t.count("processed_order") == 1)
            #expect(try t.count("live_chat") == 1)
        }
    }

    @Test func chatIsCommittedInGroupsKeptInOrderAndPagedWithBefore() async throws {
        let t = try await TestHub.make()
        let user = AuthUser(userId: "u", username: "Una")
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            // 150 lines posted concurrently by 3 users: every one committed, ordered by commit.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for sender in 0..<3 {
                    group.addTask {
                        for index in 0..<50 {
                            _ = try await t.hub.live.postChat(roomId: r.id, user: AuthUser(userId: "u\(sender)", username: "U\(sender)"), message: "\(sender)-\(index)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            let commits = await t.hub.live.committer.commits
            #expect(commits < 150, "group commit: \(commits) transactions for 150 lines")
            #expect(try t.count("live_chat") == 150)
            let latest = try await client.execute(uri: "\(base)/rooms/\(r.id)/chats?limit=100", method: .get) { try decode([LiveChatView].self, $0) }
            #expect(latest.count == 100)
            for sender in 0..<3 {
                let mine = latest.filter { $0.userId == "u\(sender)" }.map { Int($0.message.split(separator: "-")[1])! }
                #expect(mine == mine.sorted(), "each sender's lines stay in order")
            }
            let older = try await client.execute(uri: "\(base)/rooms/\(r.id)/chats?limit=100&before=\(latest[0].id)", method: .get) { try decode([LiveChatView].self, $0) }
            #expect(older.count == 50)
            #expect(Set(older.map(\.id)).isDisjoint(with: latest.map(\.id)))
            try await client.execute(uri: "\(base)/rooms/\(r.id)/chats?before=bogus", method: .get) { response in
                try expectError(response, .badRequest)
            }
            let pinned = try await client.execute(uri: "\(base)/rooms/\(r.id)/chats/\(latest[5].id)/pin", method: .put, headers: bearer(t.ownerToken)) { try decode(LiveChatView.self, $0) }
            #expect(pinned.isPinned)
            _ = try await client.execute(uri: "\(base)/rooms/\(r.id)/chats/\(latest[6].id)/pin", method: .put, headers: bearer(t.ownerToken))
            let after = try await client.execute(uri: "\(base)/rooms/\(r.id)/chats?limit=100", method: .get) { try decode([LiveChatView].self, $0) }
            #expect(after.filter(\.isPinned).map(\.id) == [latest[6].id])
        }
        _ = user
    }

    @Test func refusedChatsSayWhyAndStoreNothing() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let user = AuthUser(userId: "u", username: "Una")
            await #expect(throws: ChatRefusal.guest) { try await t.hub.live.postChat(roomId: r.id, user: nil, message: "hi") }
            await #expect(throws: ChatRefusal.tooLong(limit: 500)) { try await t.hub.live.postChat(roomId: r.id, user: user, message: String(repeating: "x", count: 501)) }
            await #expect(throws: ChatRefusal.empty) { try await t.hub.live.postChat(roomId: r.id, user: user, message: "  ") }
            await #expect(throws: ChatRefusal.unknownRoom) { try await t.hub.live.postChat(roomId: "nope", user: user, message: "hi") }
            _ = try await client.execute(uri: "\(base)/rooms/\(r.id)/end", method: .put, headers: bearer(t.ownerToken))
            await #expect(throws: ChatRefusal.roomEnded) { try await t.hub.live.postChat(roomId: r.id, user: user, message: "hi") }
            #expect(try t.count("live_chat") == 0)
        }
    }

    @Test func chatHistorySurvivesARestart() async throws {
        let first = try await TestHub.make()
        let roomId = try await first.hub.application.test(.router) { client in
            let r = try await room(client, first)
            for index in 0..<3 { _ = try await first.hub.live.postChat(roomId: r.id, user: AuthUser(userId: "u", username: "U"), message: "line \(index)") }
            return r.id
        }
        let second = try await TestHub.make(directory: first.directory)
        try await second.hub.application.test(.router) { client in
            let chats = try await client.execute(uri: "\(base)/rooms/\(roomId)/chats", method: .get) { try decode([LiveChatView].self, $0) }
            #expect(chats.map(\.message) == ["line 0", "line 1", "line 2"])
        }
    }
}
