import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let base = "/v1/notifications/live"

/// Issue 17 §6: what fuzzing the server from `/openapi.json` turned up, one regression test each.
/// Numbers from outside never trap and never become a value JSON cannot carry.
@Suite struct OpenAPIFuzzRegressionTests {
    func room(_ client: some TestClientProtocol, _ t: TestHub) async throws -> RoomView {
        try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"fuzz"}"#)) { try decode(RoomView.self, $0) }
    }

    func order(_ client: some TestClientProtocol, room: String, id: String, amount: String) async throws -> TestResponse {
        try await client.execute(
            uri: "\(base)/orders", method: .post, headers: bearer(TestHub.internalToken),
            body: json(#"{"orderId":"\#(id)","roomId":"\#(room)","amount":\#(amount),"username":"kim"}"#)) { $0 }
    }

    /// schemathesis: `POST /orders` with `amount` 1.07e308 ended the process: the owner's bell text
    /// converted the whole amount with `Int64(_:)`, which traps above 2^63. Two such orders would
    /// also have made the room's revenue infinite (every later `GET` of the room a 500).
    @Test func anOrderAmountBeyondTheBoundIsRefusedAndTheBellTextNeverTraps() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            for amount in ["1.0750995423106225e+308", "9223372036854775808", "1000000000000.5", "-1"] {
                try expectError(try await order(client, room: r.id, id: "o-\(amount)", amount: amount), .unprocessableContent, "VALIDATION_FAILED")
            }
            let largest = try await order(client, room: r.id, id: "o-max", amount: "1000000000000")
            #expect(largest.status == .created)
            let twice = try await order(client, room: r.id, id: "o-max-2", amount: "1e12")
            #expect(twice.status == .created)
            try await client.execute(uri: "\(base)/rooms/\(r.id)/stats", method: .get) { response in
                #expect(response.status == .ok)
                let stats = try decode(RoomStats.self, response)
                #expect(stats.totalRevenue == 2e12)
            }
            let bell = try await t.hub.notifications.list(userId: "owner-1", limit: 5, cursor: nil)
            #expect(bell.items.first?.body == "kim bought a product (1000000000000).")
        }
        #expect(RealtimeWiring.amountText(1e19) == "1e+19")
        #expect(RealtimeWiring.amountText(.greatestFiniteMagnitude) == "1.7976931348623157e+308")
        #expect(RealtimeWiring.amountText(900) == "900")
        #expect(RealtimeWiring.amountText(12.5) == "12.5")
    }

    /// `displayOrder` was any integer, and the next product without one got `MAX + 1`: after a
    /// product at `Int.max`, the next add trapped. Now bounded (0...1,000,000) and the default is
    /// computed clamped, even over a row stored before the bound.
    @Test func displayOrderIsBoundedAndTheDefaultNeverOverflows() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let refused = [
                #"{"productId":"a","livePrice":1,"displayOrder":9223372036854775807}"#,
                #"{"productId":"a","livePrice":1,"displayOrder":1000001}"#,
                #"{"productId":"a","livePrice":1,"quantityLimit":1000000001}"#,
                #"{"productId":"a","livePrice":1,"stockAvailable":9223372036854775807}"#,
                #"{"productId":"a","livePrice":1e13}"#,
                #"{"productId":"a","livePrice":1,"originalPrice":1.7976931348623157e308}"#,
            ]
            for body in refused {
                try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(body)) { response in
                    try expectError(response, .unprocessableContent, "VALIDATION_FAILED")
                }
            }
            // A row as an older version could store it.
            try await t.hub.database!.writer.write { db in
                try db.execute(
                    sql: "INSERT INTO live_product (id, liveRoomId, productId, livePrice, displayOrder, createdAt) VALUES ('legacy', ?, 'legacy', 1, ?, '2026-01-01T00:00:00.000Z')",
                    arguments: [r.id, Int.max])
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId":"next","livePrice":1}"#)) { response in
                #expect(response.status == .created)
                let created = try decode(LiveProductView.self, response)
                #expect(created.productId == "next" && created.displayOrder == ProductValidation.maxDisplayOrder)
            }
        }
    }

    /// Query numbers of any size are refused with 400 naming the parameter; an empty value is the
    /// default (as Spring's `defaultValue`, and as openapi.json's `allowEmptyValue` says).
    @Test func hugeQueryNumbersAreRefusedAndEmptyOnesAreTheDefault() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let refused = [
                "\(base)/rooms?page=99999999999999999999999", "\(base)/rooms?size=9223372036854775808",
                "\(base)/rooms?page=1e3", "\(base)/rooms?size=-9223372036854775809",
                "\(base)/rooms/\(r.id)/chats?limit=18446744073709551616", "\(base)/rooms/\(r.id)/chats?limit=-1",
                "/v1/notifications?limit=99999999999999999999", "/v1/notifications?cursor=99999999999999999999",
                "/v1/notifications?cursor=-5",
            ]
            for uri in refused {
                try await client.execute(uri: uri, method: .get, headers: bearer(t.viewerToken)) { response in
                    try expectError(response, .badRequest, "BAD_REQUEST")
                }
            }
            try await client.execute(uri: "\(base)/rooms?status=&page=&size=", method: .get) { response in
                let page = try decode(Page<RoomView>.self, response)
                #expect(page.page == 0 && page.size == 20 && page.totalElements == 1)
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/chats?limit=&before=", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/v1/notifications?limit=&cursor=", method: .get, headers: bearer(t.viewerToken)) { response in
                #expect(response.status == .ok)
            }
        }
    }
}
