import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let rooms = "/v1/notifications/live/rooms"

/// Bad input is refused with the right status and a clear message, and the database is unchanged
/// (asserted by reading the SQLite file).
@Suite struct BadInputTests {
    static let badBodies: [(name: String, body: String, status: Int)] = [
        ("malformed JSON", #"{"title": "oops""#, 400),
        ("not an object", #"["title"]"#, 400),
        ("empty body", "", 400),
        ("missing title", #"{"description":"x"}"#, 400),
        ("title of the wrong type", #"{"title": 42}"#, 400),
        ("null title", #"{"title": null}"#, 400),
        ("600-char title", #"{"title":"\#(String(repeating: "a", count: 600))"}"#, 422),
        ("blank title", #"{"title":"   "}"#, 422),
        ("thumbnailUrl not a URL", #"{"title":"ok","thumbnailUrl":"not a url"}"#, 422),
        ("thumbnailUrl with a javascript scheme", #"{"title":"ok","thumbnailUrl":"javascript:alert(1)"}"#, 422),
    ]

    @Test(arguments: badBodies.indices)
    func aBadCreateBodyIsRefusedAndNothingIsStored(index: Int) async throws {
        let (name, body, status) = Self.badBodies[index]
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: rooms, method: .post, headers: bearer(t.ownerToken), body: json(body)) { response in
                let message = try expectError(response, HTTPResponse.Status(code: status))
                #expect(!message.isEmpty, "\(name)")
            }
            #expect(try t.count("room") == 0, "\(name) stored a room")
        }
    }

    @Test func unknownFieldsAreIgnored() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: rooms, method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"ok","status":"LIVE","streamKey":"mine","extra":{"a":1}}"#)) { response in
                #expect(response.status == .created)
                let room = try decode(RoomView.self, response)
                #expect(room.status == .pending)
                #expect(room.streamKey != "mine")
            }
        }
    }

    @Test func anOversizedBodyIs413() async throws {
        let t = try await TestHub.make { $0.maxRequestBodyBytes = 4096 }
        try await t.hub.application.test(.router) { client in
            let big = #"{"title":"ok","description":"\#(String(repeating: "x", count: 10_000))"}"#
            try await client.execute(uri: rooms, method: .post, headers: bearer(t.ownerToken), body: json(big)) { response in
                try expectError(response, .contentTooLarge)
            }
            #expect(try t.count("room") == 0)
        }
    }

    static func badTokens(_ t: TestHub) async throws -> [(String, HTTPFields)] {
        let expired = try await t.token("owner-1", roles: ["SHOP_OWNER"], lifetime: -100)
        let forged = try await DevTokenIssuer(secret: "not-the-server-secret-not-the-server-secret").sign(AuthUser(userId: "owner-1", username: "x", roles: ["SHOP_OWNER"]), lifetime: 600)
        let header = TestBase64URL.encode(#"{"alg":"none"}"#)
        let payload = TestBase64URL.encode(#"{"sub":"owner-1","roles":["SHOP_OWNER"],"exp":9999999999}"#)
        return [
            ("no token", [.contentType: "application/json"]),
            ("expired", bearer(expired)),
            ("forged", bearer(forged)),
            ("alg none", bearer("\(header).\(payload).")),
            ("garbage", bearer("garbage")),
            ("Basic scheme", [.authorization: "Basic dXNlcjpwYXNz", .contentType: "application/json"]),
        ]
    }

    @Test func missingForgedAndExpiredTokensAre401AndChangeNothing() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let room = try await client.execute(uri: rooms, method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"kept"}"#)) { try decode(RoomView.self, $0) }
            let before = try t.snapshot()
            for (name, headers) in try await Self.badTokens(t) {
                try await client.execute(uri: rooms, method: .post, headers: headers, body: json(#"{"title":"new"}"#)) { response in
                    #expect(response.status == .unauthorized, "\(name)")
                    try expectError(response, .unauthorized, "UNAUTHORIZED")
                }
                for (path, method) in [("start", HTTPRequest.Method.put), ("end", .put), ("stream-key", .post)] {
                    try await client.execute(uri: "\(rooms)/\(room.id)/\(path)", method: method, headers: headers) { response in
                        #expect(response.status == .unauthorized, "\(name) \(path)")
                    }
                }
            }
            // A present but bad token on a public endpoint is still refused (never silently a guest).
            try await client.execute(uri: rooms, method: .get, headers: bearer("garbage")) { response in
                try expectError(response, .unauthorized)
            }
            #expect(try t.snapshot() == before)
        }
    }

    @Test func aViewerCannotCreateARoom() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: rooms, method: .post, headers: bearer(t.viewerToken), body: json(#"{"title":"mine"}"#)) { response in
                let message = try expectError(response, .forbidden, "FORBIDDEN")
                #expect(message.contains("SHOP_OWNER"))
            }
            #expect(try t.count("room") == 0)
        }
    }
}
