import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

@Suite struct NotificationAPITests {
    static let internalHeaders: HTTPFields = [.authorization: "Bearer \(TestHub.internalToken)", .contentType: "application/json"]

    func create(_ client: some TestClientProtocol, user: String, title: String) async throws -> NotificationView {
        try await client.execute(uri: "/internal/notifications", method: .post, headers: Self.internalHeaders, body: json(#"{"userId":"\#(user)","type":"ORDER","title":"\#(title)","body":"b"}"#)) { response in
            #expect(response.status == .created)
            return try decode(NotificationView.self, response)
        }
    }

    @Test func theBellListsCountsAndMarksReadIdempotently() async throws {
        let t = try await TestHub.make()
        let user = t.viewerToken
        try await t.hub.application.test(.router) { client in
            var created: [NotificationView] = []
            for index in 0..<5 { created.append(try await create(client, user: "viewer-1", title: "n\(index)")) }
            _ = try await create(client, user: "someone-else", title: "not yours")
            #expect(created[0].readAt == nil && created[0].userId == "viewer-1")
            try await client.execute(uri: "/v1/notifications/unread-count", method: .get, headers: bearer(user)) { response in
                let body = try object(response)
                #expect(body["count"] as? Int == 5)
            }
            let first = try await client.execute(uri: "/v1/notifications?limit=2", method: .get, headers: bearer(user)) { try decode(NotificationPage.self, $0) }
            #expect(first.items.map(\.title) == ["n4", "n3"])
            let cursor = try #require(first.nextCursor)
            let second = try await client.execute(uri: "/v1/notifications?limit=2&cursor=\(cursor)", method: .get, headers: bearer(user)) { try decode(NotificationPage.self, $0) }
            #expect(second.items.map(\.title) == ["n2", "n1"])
            let last = try await client.execute(uri: "/v1/notifications?limit=2&cursor=\(second.nextCursor!)", method: .get, headers: bearer(user)) { try decode(NotificationPage.self, $0) }
            #expect(last.items.map(\.title) == ["n0"])
            #expect(last.nextCursor == nil)

            var headers = bearer(user)
            headers[HTTPField.Name("Idempotency-Key")!] = "k1"
            for attempt in 0..<2 {
                try await client.execute(uri: "/v1/notifications/\(created[0].id)/read", method: .post, headers: headers) { response in
                    #expect(response.status == .ok)
                    let outcome = try decode(NotificationService.ReadOutcome.self, response)
                    #expect(outcome.unreadCount == 4, "attempt \(attempt)")
                    #expect(outcome.changed == 1, "the same Idempotency-Key answers the same")
                }
            }
            try await client.execute(uri: "/v1/notifications/\(created[0].id)/read", method: .post, headers: bearer(user)) { response in
                let outcome = try decode(NotificationService.ReadOutcome.self, response)
                #expect(outcome.changed == 0 && outcome.unreadCount == 4)
            }
            try await client.execute(uri: "/v1/notifications/read-all", method: .post, headers: bearer(user)) { response in
                let outcome = try decode(NotificationService.ReadOutcome.self, response)
                #expect(outcome.changed == 4 && outcome.unreadCount == 0)
            }
            try await client.execute(uri: "/v1/notifications/unread-count", method: .get, headers: bearer(t.token("someone-else"))) { response in
                let body = try object(response)
                #expect(body["count"] as? Int == 1, "other users are untouched")
            }
        }
    }

    @Test func badBellRequestsAreRefused() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let theirs = try await create(client, user: "someone-else", title: "private")
            try await client.execute(uri: "/v1/notifications", method: .get) { response in try expectError(response, .unauthorized) }
            try await client.execute(uri: "/v1/notifications/\(theirs.id)/read", method: .post, headers: bearer(t.viewerToken)) { response in
                try expectError(response, .notFound)
            }
            try await client.execute(uri: "/v1/notifications?cursor=abc", method: .get, headers: bearer(t.viewerToken)) { response in
                try expectError(response, .badRequest)
            }
            for (headers, body, status) in [
                (bearer(t.viewerToken), #"{"userId":"u","type":"T","title":"x"}"#, HTTPResponse.Status.forbidden),
                (Self.internalHeaders, #"{"userId":"u","type":"T"}"#, .badRequest),
                (Self.internalHeaders, #"{"userId":"u","type":"T","title":""}"#, .unprocessableContent),
                (Self.internalHeaders, #"{"userId":"u","type":"T","title":"x""#, .badRequest),
            ] {
                try await client.execute(uri: "/internal/notifications", method: .post, headers: headers, body: json(body)) { response in
                    try expectError(response, status)
                }
            }
            #expect(try t.count("notification") == 1)
        }
    }
}
