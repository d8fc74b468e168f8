import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let base = "/v1/notifications/live"

@Suite struct RecoveryTests {
    /// DESIGN.md: rooms a crash left LIVE are never left lying. The first run leaves a room LIVE in
    /// the SQLite file; the second run over the same file marks it reconnecting and ends it when the
    /// reconnect grace passes without a publisher.
    @Test func aRoomLeftLiveIsRecoveredThenEndedAfterTheGrace() async throws {
        let first = try await TestHub.make()
        let room = try await first.hub.application.test(.live) { client in
            let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(first.ownerToken), body: json(#"{"title":"crash"}"#)) { try decode(RoomView.self, $0) }
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"]) { response in
                #expect(response.status == .ok, "the nginx-rtmp callback with the internal token")
            }
            return room
        }
        let second = try await TestHub.make(directory: first.directory, grace: .milliseconds(600))
        try await second.hub.application.test(.live) { client in
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.status == .live)
                #expect(view.reconnecting)
            }
            try await Task.sleep(for: .milliseconds(1500))
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.status == .ended)
                #expect(!view.reconnecting)
                #expect(view.endedAt != nil)
            }
        }
    }

    @Test func aPublisherReturningWithinTheGraceKeepsTheRoomLive() async throws {
        let t = try await TestHub.make(grace: .milliseconds(800))
        try await t.hub.application.test(.live) { client in
            let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"blip"}"#)) { try decode(RoomView.self, $0) }
            _ = try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"])
            _ = try await client.execute(uri: "\(base)/callback/end?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"])
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.reconnecting)
            }
            _ = try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"])
            try await Task.sleep(for: .milliseconds(1200))
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.status == .live)
                #expect(!view.reconnecting)
            }
        }
    }
}
