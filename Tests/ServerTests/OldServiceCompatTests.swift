import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let base = "/v1/notifications/live"
private let internalHeaders: HTTPFields = [.authorization: "Bearer \(TestHub.internalToken)", .contentType: "application/json"]

/// Issue 19 items 3 and 5: the old Spring service's REST shapes and its Kafka `LiveOrderEvent`
/// (README "Differences from the old service", "Orders from the old Kafka topic").
@Suite struct OldServiceShapeTests {
    func room(_ client: some TestClientProtocol, _ t: TestHub) async throws -> RoomView {
        try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"shop"}"#)) { try decode(RoomView.self, $0) }
    }

    @Test func durationTextIsHoursAndMinutesLikeTheOldService() {
        let cases: [(Int, String)] = [
            (-5, "0m"), (0, "0m"), (59, "0m"), (60, "1m"), (2700, "45m"), (3599, "59m"), (3600, "1h 0m"), (9000, "2h 30m"),
            (9059, "2h 30m"), (100 * 3600 + 61, "100h 1m"), (Int.max, "\(Int.max / 3600)h \((Int.max % 3600) / 60)m"),
        ]
        for (seconds, text) in cases { #expect(DurationText.format(seconds: seconds) == text, "\(seconds) s") }
    }

    @Test func endAnswersTheOldDTOWithTheDurationAsTextAndSeconds() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            // LIVE 2 h 30 min 10 s ago (the room's stored start moved back).
            try await client.execute(uri: "\(base)/callback/start?name=\(r.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"]) { #expect($0.status == .ok) }
            let startedAt = Date().addingTimeInterval(-(2 * 3600 + 30 * 60 + 10))
            try await t.hub.database!.writer.write { db in
                try db.execute(sql: "UPDATE room SET startedAt = ? WHERE id = ?", arguments: [ISOTime.string(startedAt), r.id])
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/end", method: .put, headers: bearer(t.ownerToken)) { response in
                #expect(response.status == .ok)
                let body = try object(response)
                #expect(body["id"] as? String == r.id && body["roomId"] as? String == r.id)
                #expect(body["duration"] as? String == "2h 30m")
                let seconds = try #require(body["durationSeconds"] as? Int)
                let expected: ClosedRange<Int> = 9010...9050  // 2 h 30 min 10 s, and up to 40 s of a slow test
                #expect(expected.contains(seconds))
                #expect(body["message"] as? String == "Live room ended.")
                #expect(body["startedAt"] as? String == ISOTime.string(startedAt))
                #expect(body["endedAt"] is String)
                for field in ["status", "peakViewers", "totalOrders", "totalRevenue", "viewerCount"] { #expect(body[field] != nil, "\(field)") }
                let ended = try decode(RoomEndedView.self, response)
                #expect(ended.status == .ended && ended.durationSeconds == seconds)
            }
            // `GET /stats` keeps its number.
            try await client.execute(uri: "\(base)/rooms/\(r.id)/stats", method: .get) { response in
                let stats = try object(response)
                #expect(stats["duration"] is Int)
            }
        }
    }

    @Test func discountIsRoundedHalfUpToTwoDecimals() {
        let cases: [(Double?, Double, Double)] = [
            (299_000, 149_000, 50.17), (10_000, 7500, 25), (3, 2, 33.33), (3, 1, 66.67), (200, 197.99, 1.01),
            (1000, 999.995, 0), (1000, 999.94, 0.01), (8, 7, 12.5), (1e12, 0, 100),
            (nil, 5, 0), (0, 5, 0), (40, 50, 0), (50, 50, 0),
        ]
        for (original, live, percent) in cases {
            #expect(DiscountRule.percent(originalPrice: original, livePrice: live) == percent, "\(String(describing: original)) → \(live)")
        }
    }

    @Test func addingAProductAnswersTheCreatedDTOAndTheListIsBroadcast() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let before = Date()
            let product = #"{"productId": 77, "livePrice": 149000, "originalPrice": 299000, "productName": "Coat"}"#
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(product)) { response in
                #expect(response.status == .created)
                let text = String(buffer: response.body)
                #expect(text.contains(#""discountPercent":50.17"#), "\(text)")
                let created = try decode(LiveProductView.self, response)
                #expect(created.productId == "77" && created.liveRoomId == r.id && created.soldCount == 0 && !created.isFeatured)
                let createdAt = try #require(ISOTime.date(created.createdAt))
                #expect(createdAt >= before.addingTimeInterval(-1) && createdAt <= Date().addingTimeInterval(1))
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .get) { response in
                let list = try decode([LiveProductView].self, response)
                #expect(list.count == 1 && list[0].discountPercent == 50.17)
            }
        }
    }

    /// A v1 database (whole-number discounts, no `orderedAt`) opens, is migrated, and its rows read.
    @Test func aDatabaseFromBeforeOpensAndItsRowsRead() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("livehub-v1-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent("livehub.sqlite")
        do {
            let old = try DatabaseQueue(path: path)
            try AppDatabase.migrator.migrate(old, upTo: "v1-rooms-products-chats-notifications-orders")
            try await old.write { db in
                try db.execute(sql: """
                    INSERT INTO room (id, shopOwnerId, title, streamKey, status, createdAt, updatedAt)
                      VALUES ('r1', 'owner-1', 'old', 'k1', 'PENDING', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
                    INSERT INTO live_product (id, liveRoomId, productId, originalPrice, livePrice, discountPercent, displayOrder, createdAt)
                      VALUES ('p1', 'r1', 'coat', 299000, 149000, 50, 0, '2026-01-02T03:04:05.678Z');
                    INSERT INTO processed_order (orderId, liveRoomId, amount, processedAt) VALUES ('o1', 'r1', 5, '2026-01-03T00:00:00.000Z');
                    """)
            }
            try old.close()
        }
        let t = try await TestHub.make(directory: directory)
        try await t.hub.application.test(.router) { client in
            let list = try await client.execute(uri: "\(base)/rooms/r1/products", method: .get) { try decode([LiveProductView].self, $0) }
            #expect(list.count == 1)
            #expect(list[0].discountPercent == 50.17, "derived from the prices, not the stored whole number")
            #expect(list[0].createdAt == "2026-01-02T03:04:05.678Z")
            let order = try await t.hub.database!.writer.read { db in try ProcessedOrderRecord.fetchOne(db, key: "o1") }
            #expect(order?.amount == 5 && order?.orderedAt == nil)
        }
    }

    // MARK: Orders (item 5)

    @Test func orderTimestampsInJacksonsFormsAreRead() throws {
        let valid: [(String, String)] = [
            ("2026-12-07T14:03:22", "2026-12-07T14:03:22"),
            ("2026-12-07T14:03", "2026-12-07T14:03:00"),
            ("2026-12-07T14:03:22.1", "2026-12-07T14:03:22.100000000"),
            ("2026-12-07T14:03:22.123", "2026-12-07T14:03:22.123000000"),
            ("2026-12-07T14:03:22.123456789", "2026-12-07T14:03:22.123456789"),
            ("2024-02-29T00:00:00", "2024-02-29T00:00:00"),
            ("2026-11-25T03:00:00Z", "2026-11-25T03:00:00Z"),
            ("2026-11-25T12:00:00+09:00", "2026-11-25T12:00:00+09:00"),
            ("0001-01-01T00:00:00", "0001-01-01T00:00:00"),
        ]
        for (text, written) in valid { #expect(try OrderTimestamp.parse(text).text == written, "\(text)") }
        let invalid = [
            "", "2026-12-07", "2026-12-07 14:03:22", "2026-12-07T14:03:22.", "2026-12-07T14:03:22.1234567890",
            "2026-13-07T14:03:22", "2026-02-29T00:00:00", "2100-02-29T00:00:00", "2026-12-32T00:00:00", "2026-12-07T24:00:00",
            "2026-12-07T14:60:00", "2026-12-07T14:03:60", "0000-01-01T00:00:00", "+2026-12-07T14:03:22", "2026-12-07T14:03:22+9",
            "2026-12-07T14:03:22+19:00", "2026-12-07t14:03:22", "２０２６-12-07T14:03:22", "2026-12-07T14:03:22Z ",
            String(repeating: "9", count: 10_000),
        ]
        for text in invalid { #expect(throws: OrderTimestampError.self, "\(text)") { try OrderTimestamp.parse(text) } }

        #expect(try OrderTimestamp.parse(array: [2026, 12, 7, 14, 3, 22, 123_000_000]).text == "2026-12-07T14:03:22.123000000")
        #expect(try OrderTimestamp.parse(array: [2026, 12, 7, 14, 3]).text == "2026-12-07T14:03:00")
        #expect(try OrderTimestamp.parse(array: [2026, 12, 7, 14, 3, 22]).text == "2026-12-07T14:03:22")
        for array: [Double] in [[2026, 12, 7, 14], [2026, 12, 7, 14, 3, 22, 1, 0], [2026, 12, 7, 14, 3.5], [1e300, 1, 1, 0, 0], [2026, 12, 7, 14, 3, 22, 1e9], [-1, 1, 1, 0, 0], [.infinity, 1, 1, 0, 0]] {
            #expect(throws: OrderTimestampError.self, "\(array)") { try OrderTimestamp.parse(array: array) }
        }
    }

    @Test func aZoneLessTimestampIsReadInTheConfiguredZone() throws {
        let utc = try #require(TimeZone(identifier: "UTC"))
        let seoul = try #require(TimeZone(identifier: "Asia/Seoul"))
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        let local = try OrderTimestamp.parse("2026-12-07T14:03:22.5")
        #expect(ISOTime.string(local.date(in: utc)) == "2026-12-07T14:03:22.500Z")
        #expect(ISOTime.string(local.date(in: seoul)) == "2026-12-07T05:03:22.500Z")
        #expect(ISOTime.string(local.date(in: newYork)) == "2026-12-07T19:03:22.500Z")
        #expect(ISOTime.string(try OrderTimestamp.parse("2026-07-01T12:00:00").date(in: newYork)) == "2026-07-01T16:00:00.000Z", "daylight-saving time")
        // A text with its own zone keeps it, whatever the setting.
        #expect(ISOTime.string(try OrderTimestamp.parse("2026-12-07T14:03:22+09:00").date(in: newYork)) == "2026-12-07T05:03:22.000Z")
        #expect(ISOTime.string(try OrderTimestamp.parse("1970-01-01T00:00:00").date(in: utc)) == "1970-01-01T00:00:00.000Z")
        #expect(try OrderTimestamp.parse("9999-12-31T23:59:59.999999999").date(in: seoul).timeIntervalSince1970 > 2.5e11)
        #expect(try OrderTimestamp.parse("0001-01-01T00:00:00").date(in: newYork).timeIntervalSince1970 < -6.2e10)
    }

    @Test func theKafkaEventIsAcceptedAsJacksonWroteIt() async throws {
        let t = try await TestHub.make { $0.orderEventTimeZone = TimeZone(identifier: "Asia/Seoul")! }
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            _ = try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId": 101, "livePrice": 149000}"#))
            // As Spring Kafka's JsonSerializer (Jackson, WRITE_DATES_AS_TIMESTAMPS off) put it on the topic.
            let iso = #"{"orderId":9001,"roomId":"\#(r.id)","userId":5,"username":"kim","productId":101,"productName":"Coat","amount":149000.0,"timestamp":"2026-12-07T14:03:22.123"}"#
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(iso)) { response in
                #expect(response.status == .created)
                let outcome = try decode(OrderOutcome.self, response)
                #expect(outcome.orderId == "9001" && outcome.applied && outcome.totalRevenue == 149_000)
                #expect(outcome.orderedAt == "2026-12-07T05:03:22.123Z", "read in LIVEHUB_ORDER_EVENT_TIMEZONE")
            }
            // Jackson's default (array) form, amount in exponent notation.
            let array = #"{"orderId":9002,"roomId":"\#(r.id)","userId":5,"username":"kim","productId":101,"productName":"Coat","amount":1.49E5,"timestamp":[2026,12,7,14,3,22,123000000]}"#
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(array)) { response in
                #expect(response.status == .created)
                let outcome = try decode(OrderOutcome.self, response)
                #expect(outcome.totalOrders == 2 && outcome.totalRevenue == 298_000 && outcome.orderedAt == "2026-12-07T05:03:22.123Z")
            }
            let stored = try await t.hub.database!.writer.read { db in try ProcessedOrderRecord.fetchOne(db, key: "9002") }
            #expect(stored.flatMap { $0.orderedAt.map(ISOTime.string) } == "2026-12-07T05:03:22.123Z")
            let products = try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .get) { try decode([LiveProductView].self, $0) }
            #expect(products[0].soldCount == 2)
        }
    }

    @Test func withoutAnOrderIdTheIdempotencyKeyNamesTheOrder() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let event = #"{"roomId":"\#(r.id)","amount":10,"timestamp":"2026-12-07T14:03:22"}"#
            var headers = internalHeaders
            headers[HTTPField.Name("Idempotency-Key")!] = "kafka-offset-7"
            try await client.execute(uri: "\(base)/orders", method: .post, headers: headers, body: json(event)) { response in
                #expect(response.status == .created)
                let outcome = try decode(OrderOutcome.self, response)
                #expect(outcome.orderId == "kafka-offset-7")
            }
            try await client.execute(uri: "\(base)/orders", method: .post, headers: headers, body: json(event)) { response in
                #expect(response.status == .ok, "the same key again changes nothing")
                let outcome = try decode(OrderOutcome.self, response)
                #expect(!outcome.applied)
            }
            // orderId in the body wins over the header.
            try await client.execute(uri: "\(base)/orders", method: .post, headers: headers, body: json(#"{"orderId":"o-2","roomId":"\#(r.id)","amount":1}"#)) { response in
                #expect(response.status == .created)
                let outcome = try decode(OrderOutcome.self, response)
                #expect(outcome.orderId == "o-2")
            }
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(event)) { response in
                let message = try expectError(response, .badRequest, "BAD_REQUEST")
                #expect(message.contains("orderId") && message.contains("Idempotency-Key"))
            }
            #expect(try t.count("processed_order") == 2)
        }
    }

    @Test func aMalformedEventIsRefusedWith400AndNothingIsApplied() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            _ = try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId": "p", "livePrice": 5}"#))
            func event(_ fields: String) -> String { #"{"orderId":"bad","roomId":"\#(r.id)","productId":"p",\#(fields)}"# }
            let malformed: [(String, String)] = [
                (event(#""amount":5,"timestamp":"07/12/2026 14:03""#), "timestamp"),
                (event(#""amount":5,"timestamp":"2026-02-30T10:00:00""#), "timestamp"),
                (event(#""amount":5,"timestamp":"2026-12-07T14:03:22.1234567891""#), "timestamp"),
                (event(#""amount":5,"timestamp":[2026,12,7]"#), "timestamp"),
                (event(#""amount":5,"timestamp":[2026,12,7,14,3,1e300]"#), "timestamp"),
                (event(#""amount":5,"timestamp":1765116202000"#), "timestamp"),
                (event(#""amount":5,"timestamp":{"year":2026}"#), "timestamp"),
                (event(#""amount":"149000.0""#), "amount"),
                (event(#""amount":1e400"#), "JSON"),  // Foundation's parser refuses it as a whole
                (event(#""amount":null"#), "amount"),
                (event(#""timestamp":"2026-12-07T14:03:22""#), "amount"),
                (#"{"orderId":"bad","amount":5}"#, "roomId"),
                (#"{"orderId":true,"roomId":"\#(r.id)","amount":5}"#, "orderId"),
                (#"{"orderId":"bad","roomId":"\#(r.id)","amount":5"#, "JSON"),
            ]
            for (body, field) in malformed {
                try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(body)) { response in
                    let message = try expectError(response, .badRequest, "BAD_REQUEST")
                    #expect(message.contains(field), "\(body): \(message)")
                }
            }
            // Out-of-range values stay 422 as everywhere in the API; also nothing applied.
            for amount in ["-0.01", "1.07e308", "1000000000000.5"] {
                try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(event(#""amount":\#(amount)"#))) { response in
                    try expectError(response, .unprocessableContent, "VALIDATION_FAILED")
                }
            }
            #expect(try t.count("processed_order") == 0)
            #expect(try t.count("live_chat") == 0)
            let products = try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .get) { try decode([LiveProductView].self, $0) }
            #expect(products[0].soldCount == 0)
            let stats = try await client.execute(uri: "\(base)/rooms/\(r.id)/stats", method: .get) { try decode(RoomStats.self, $0) }
            #expect(stats.totalOrders == 0 && stats.totalRevenue == 0)
            // The room is healthy: a good event is applied.
            try await client.execute(uri: "\(base)/orders", method: .post, headers: internalHeaders, body: json(event(#""amount":5,"timestamp":"2026-12-07T14:03:22""#))) { response in
                #expect(response.status == .created)
            }
            #expect(try t.count("processed_order") == 1 && t.count("live_chat") == 1)
        }
    }

    @Test func theOrderEventTimezoneSettingIsChecked() throws {
        #expect(try LiveHubConfiguration.fromEnvironment([:]).orderEventTimeZone.secondsFromGMT(for: Date()) == 0, "UTC")
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_ORDER_EVENT_TIMEZONE": "Asia/Seoul"]).orderEventTimeZone.identifier == "Asia/Seoul")
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_ORDER_EVENT_TIMEZONE": "Mars/Olympus"]) }
    }
}
