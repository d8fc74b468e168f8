import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

/// Issue 17 §5: what is acknowledged (an order's 201, a broadcast chat line) is committed with
/// `synchronous=FULL` in WAL mode, so it survives a power cut, not only a crash.
@Suite struct DurabilityTests {
    @Test func theWriterCommitsWithSynchronousFullInWALMode() async throws {
        let t = try await TestHub.make()
        #expect(try t.hub.database!.journalMode == "wal")
        #expect(try t.hub.database!.writerSynchronous == SQLiteSynchronous.full.pragmaValue)
        #expect(t.hub.configuration.sqliteSynchronous == .full, "FULL is the default")
        // Through a fresh open of the same file too (the setting is per connection, not stored).
        try t.hub.database!.close()
        let reopened = try AppDatabase.open(path: t.hub.configuration.databasePath)
        #expect(try reopened.writerSynchronous == 2)
        try reopened.close()
    }

    @Test func normalIsAvailableForTheBenchmarkOnly() async throws {
        let t = try await TestHub.make { $0.sqliteSynchronous = .normal }
        #expect(try t.hub.database!.writerSynchronous == SQLiteSynchronous.normal.pragmaValue)
    }

    @Test func theSynchronousVariableIsReadAndCheckedAtStartUp() throws {
        #expect(try LiveHubConfiguration.fromEnvironment([:]).sqliteSynchronous == .full)
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_SQLITE_SYNCHRONOUS": "normal"]).sqliteSynchronous == .normal)
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_SQLITE_SYNCHRONOUS": "FULL"]).sqliteSynchronous == .full)
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_SQLITE_SYNCHRONOUS": "OFF"]) }
    }

    /// `POST /orders` answers 201 only after its transaction committed: a separate connection on
    /// the file sees the order, its chat line and the totals as soon as the answer is there.
    @Test func anOrderIsCommittedBeforeItsAnswer() async throws {
        let t = try await TestHub.make()
        let base = "/v1/notifications/live"
        try await t.hub.application.test(.router) { client in
            let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"t"}"#)) { response in
                try decode(RoomView.self, response)
            }
            let order = #"{"orderId":"o-1","roomId":"\#(room.id)","amount":12.5,"username":"kim"}"#
            let (status, committed) = try await client.execute(
                uri: "\(base)/orders", method: .post, headers: bearer(TestHub.internalToken), body: json(order)
            ) { response in
                (response.status, try (orders: t.count("processed_order"), chats: t.count("live_chat")))
            }
            #expect(status == .created)
            #expect(committed.orders == 1 && committed.chats == 1)
        }
    }
}
