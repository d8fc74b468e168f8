import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let base = "/v1/notifications/live"

@Suite struct RoomsAPITests {
    func createRoom(_ client: some TestClientProtocol, _ t: TestHub, title: String = "Spring sale") async throws -> RoomView {
        try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"\#(title)","description":"d","thumbnailUrl":"https://cdn.example.com/t.jpg"}"#)) { response in
            #expect(response.status == .created)
            return try decode(RoomView.self, response)
        }
    }

    @Test func anOwnerCreatesARoomAndGetsItsKeyAndURLs() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let room = try await createRoom(client, t)
            #expect(room.status == .pending)
            #expect(room.shopOwnerId == "owner-1")
            let key = try #require(room.streamKey)
            #expect(key.count >= 22)  // ≥ 128 bits in base64url
            #expect(key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(room.rtmpUrl?.hasPrefix("rtmp://") == true)
            #expect(room.rtmpUrl?.hasSuffix("/live") == true)
            #expect(room.hlsUrl.hasSuffix("/hls/\(room.id)/index.m3u8"))
            #expect(!room.hlsUrl.contains(key))
            #expect(try t.count("room") == 1)
        }
    }

    @Test func streamKeysAreUniqueAndRandom() async throws {
        let keys = Set((0..<1000).map { _ in StreamKey.generate() })
        #expect(keys.count == 1000)
        #expect(keys.allSatisfy { $0.count == 43 })
    }

    @Test func guestsListRoomsWithoutKeysAndWithPagination() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            for index in 0..<3 { _ = try await createRoom(client, t, title: "room \(index)") }
            try await client.execute(uri: "\(base)/rooms?page=0&size=2", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body ?? ByteBuffer())
                #expect(!text.contains("streamKey"))
                #expect(!text.contains("rtmpUrl"))
                let page = try decode(Page<RoomView>.self, response)
                #expect(page.items.count == 2)
                #expect(page.totalElements == 3)
                #expect(page.totalPages == 2)
            }
            // Even the owner's own list view carries no keys; /mine does.
            try await client.execute(uri: "\(base)/rooms?status=PENDING&page=1&size=2", method: .get, headers: bearer(t.ownerToken)) { response in
                let page = try decode(Page<RoomView>.self, response)
                #expect(page.items.count == 1)
                #expect(page.items.allSatisfy { $0.streamKey == nil })
            }
            try await client.execute(uri: "\(base)/rooms?status=LIVE", method: .get) { response in
                let decoded = try decode(Page<RoomView>.self, response)
                #expect(decoded.items.isEmpty)
            }
            try await client.execute(uri: "\(base)/rooms/mine", method: .get, headers: bearer(t.ownerToken)) { response in
                let rooms = try decode([RoomView].self, response)
                #expect(rooms.count == 3)
                #expect(rooms.allSatisfy { $0.streamKey != nil })
            }
            try await client.execute(uri: "\(base)/rooms/mine", method: .get, headers: bearer(t.otherOwnerToken)) { response in
                let decoded = try decode([RoomView].self, response)
                #expect(decoded.isEmpty)
            }
        }
    }

    @Test(arguments: ["status=BOGUS", "page=-1", "size=0", "size=101", "page=abc"])
    func badListParametersAre400(query: String) async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: "\(base)/rooms?\(query)", method: .get) { response in
                try expectError(response, .badRequest, "BAD_REQUEST")
            }
        }
    }

    @Test func theKeyIsShownOnlyToTheOwner() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let room = try await createRoom(client, t)
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get, headers: bearer(t.ownerToken)) { response in
                let decoded = try decode(RoomView.self, response)
                #expect(decoded.streamKey == room.streamKey)
            }
            for headers in [bearer(t.viewerToken), bearer(t.otherOwnerToken), [:]] {
                try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get, headers: headers) { response in
                    #expect(response.status == .ok)
                    #expect(!String(buffer: response.body ?? ByteBuffer()).contains(room.streamKey!))
                }
            }
        }
    }

    @Test func anUnknownRoomIs404() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            for (uri, method) in [("rooms/nope", HTTPRequest.Method.get), ("rooms/nope/stats", .get), ("rooms/nope/start", .put), ("rooms/nope/end", .put), ("rooms/nope/stream-key", .post)] {
                try await client.execute(uri: "\(base)/\(uri)", method: method, headers: bearer(t.ownerToken)) { response in
                    try expectError(response, .notFound, "NOT_FOUND")
                }
            }
            try await client.execute(uri: "/no/such/route", method: .get) { response in
                try expectError(response, .notFound)
            }
        }
    }

    @Test func theLifecycleStartPublishEndReturnsStats() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let room = try await createRoom(client, t)
            try await client.execute(uri: "\(base)/rooms/\(room.id)/start", method: .put, headers: bearer(t.ownerToken)) { response in
                #expect(response.status == .ok)
                let decoded = try decode(RoomView.self, response)
                #expect(decoded.status == .waitingStream)
                // The old service's answer: the room plus a message (README "Differences from the old service").
                let started = try decode(RoomStartedView.self, response)
                #expect(started.room == decoded && started.message == RoomStartedView.startedMessage)
                #expect(try object(response)["message"] as? String == "Live room started. Start streaming with your stream key.")
            }
            try await client.execute(uri: "\(base)/rooms/\(room.id)/start", method: .put, headers: bearer(t.ownerToken)) { response in
                let message = try expectError(response, .conflict, "CONFLICT")
                #expect(message.contains("already"))
            }
            // nginx-rtmp compatible on_publish with the internal token (callers off loopback).
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"]) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let live = try decode(RoomView.self, response)
                #expect(live.status == .live)
                #expect(live.startedAt != nil)
            }
            try await client.execute(uri: "\(base)/rooms/\(room.id)/stream-key", method: .post, headers: bearer(t.ownerToken)) { response in
                try expectError(response, .conflict)
            }
            try await client.execute(uri: "\(base)/rooms/\(room.id)/end", method: .put, headers: bearer(t.ownerToken)) { response in
                #expect(response.status == .ok)
                let stats = try object(response)
                #expect(stats["roomId"] as? String == room.id)
                #expect(stats["id"] as? String == room.id)
                #expect(stats["status"] as? String == "ENDED")
                for field in ["duration", "durationSeconds", "peakViewers", "totalOrders", "totalRevenue", "viewerCount", "startedAt", "endedAt", "message"] {
                    #expect(stats[field] != nil, "missing \(field)")
                }
                #expect(stats["duration"] as? String == "0m", "the old service's text; the test ran for seconds")
                #expect(stats["durationSeconds"] as? Int == 0 || stats["durationSeconds"] as? Int == 1)
                #expect(stats["message"] as? String == RoomEndedView.endedMessage)
            }
            try await client.execute(uri: "\(base)/rooms/\(room.id)/end", method: .put, headers: bearer(t.ownerToken)) { response in
                try expectError(response, .conflict)
            }
            try await client.execute(uri: "\(base)/rooms/\(room.id)/stats", method: .get) { response in
                let stats = try decode(RoomStats.self, response)
                #expect(stats.status == .ended)
            }
            // An ENDED room's key is refused by the publish callback.
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"]) { response in
                try expectError(response, .forbidden)
            }
        }
    }

    @Test func rotatingTheKeyInvalidatesTheOldOne() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let room = try await createRoom(client, t)
            let rotated = try await client.execute(uri: "\(base)/rooms/\(room.id)/stream-key", method: .post, headers: bearer(t.ownerToken)) { response in
                #expect(response.status == .ok)
                return try decode(RoomView.self, response)
            }
            #expect(rotated.streamKey != nil && rotated.streamKey != room.streamKey)
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"]) { response in
                try expectError(response, .forbidden)
            }
            try await client.execute(uri: "\(base)/callback/start", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)", .contentType: "application/x-www-form-urlencoded"], body: json("call=publish&app=live&name=\(rotated.streamKey!)%3Fsecret%3D1")) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func onlyTheOwnerMayActOnARoom() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let room = try await createRoom(client, t)
            let before = try t.snapshot()
            for (path, method) in [("start", HTTPRequest.Method.put), ("end", .put), ("stream-key", .post)] {
                try await client.execute(uri: "\(base)/rooms/\(room.id)/\(path)", method: method, headers: bearer(t.otherOwnerToken)) { response in
                    try expectError(response, .forbidden, "FORBIDDEN")
                }
            }
            #expect(try t.snapshot() == before)
        }
    }

    @Test func theCallbacksRefuseStrangersWithoutTheInternalToken() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let room = try await createRoom(client, t)
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post) { response in
                try expectError(response, .unauthorized)
            }
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer wrong"]) { response in
                try expectError(response, .forbidden)
            }
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let decoded = try decode(RoomView.self, response)
                #expect(decoded.status == .pending)
            }
        }
    }
}
