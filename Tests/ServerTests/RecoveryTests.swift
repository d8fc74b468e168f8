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
        let clock = ManualClock()
        let second = try await TestHub.make(directory: first.directory, grace: .seconds(30), clock: clock)
        try await second.hub.application.test(.live) { client in
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.status == .live)
                #expect(view.reconnecting)
            }
            try await clock.waitForSleepers()
            clock.advance(by: .seconds(29))
            #expect(try await second.hub.rooms.room(id: room.id).status == .live, "within the grace")
            clock.advance(by: .seconds(1))
            try await eventually("the room ends") { try await second.hub.rooms.room(id: room.id).status == .ended }
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.status == .ended)
                #expect(!view.reconnecting)
                #expect(view.endedAt != nil)
            }
        }
    }

    @Test func aPublisherReturningWithinTheGraceKeepsTheRoomLive() async throws {
        let clock = ManualClock()
        let t = try await TestHub.make(grace: .seconds(30), clock: clock)
        try await t.hub.application.test(.live) { client in
            let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"blip"}"#)) { try decode(RoomView.self, $0) }
            _ = try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"])
            _ = try await client.execute(uri: "\(base)/callback/end?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"])
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.reconnecting)
            }
            try await clock.waitForSleepers()  // the grace is running
            _ = try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"])
            try await eventually("the grace is cancelled") { clock.sleeperCount == 0 }
            clock.advance(by: .seconds(60))
            try await client.execute(uri: "\(base)/rooms/\(room.id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.status == .live)
                #expect(!view.reconnecting)
            }
        }
    }
}
