import Hub
import Synchronization
import Testing

@testable import Server

/// A room store with no rooms: counts are kept, no peak is (there is no room to hold it).
func noRooms() throws -> SQLiteRoomStore { SQLiteRoomStore(database: try AppDatabase.inMemory()) }

@Suite struct ViewerTrackerTests {
    final class Announcements: Sendable {
        let values = Mutex<[Int]>([])
        var all: [Int] { values.withLock { $0 } }
    }

    @Test func aConnectionCountsOnceAndADropLeavesEveryRoom() async throws {
        let seen = Announcements()
        let tracker = ViewerTracker(store: try noRooms(), minimumInterval: .zero) { _, count, _ in seen.values.withLock { $0.append(count) } }
        let a = HubConnectionID(rawValue: 1), b = HubConnectionID(rawValue: 2)
        await tracker.join(roomId: "r", connection: a)
        await tracker.join(roomId: "r", connection: a)
        await tracker.join(roomId: "r", connection: b)
        await tracker.join(roomId: "other", connection: b)
        #expect(await tracker.count(roomId: "r") == 2)
        await tracker.leaveAll(connection: b)
        #expect(await tracker.count(roomId: "r") == 1)
        #expect(await tracker.count(roomId: "other") == 0)
        await tracker.leave(roomId: "r", connection: a)
        #expect(await tracker.trackedConnections == 0, "no per-connection state is left behind")
        // join r, join r (ignored), join r, join other, leaveAll (both rooms, any order), leave r.
        let all = seen.all
        #expect(Array(all.prefix(3)) == [1, 2, 1])
        #expect(all[3...4].sorted() == [0, 1])
        #expect(all.last == 0 && all.count == 6)
    }

    @Test func aCrowdJoiningIsAnnouncedOnceAtOnceAndOnceAfterTheInterval() async throws {
        let seen = Announcements()
        // The trailing announcement's wait is held open by the test, so however slowly the 500
        // joins run they all fall inside the interval.
        let (intervalOver, over) = AsyncStream<Void>.makeStream()
        let waits = Announcements()
        let tracker = ViewerTracker(
            store: try noRooms(),
            minimumInterval: .seconds(3600),
            sleep: { _ in
                waits.values.withLock { $0.append(0) }
                for await _ in intervalOver { return }
            },
            announce: { _, count, _ in seen.values.withLock { $0.append(count) } })
        for index in 0..<500 { await tracker.join(roomId: "r", connection: HubConnectionID(rawValue: UInt64(index))) }
        #expect(seen.all == [1])
        over.yield()
        let deadline = ContinuousClock.now + .seconds(10)
        while seen.all.count < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(seen.all == [1, 500])
        #expect(waits.all.count == 1, "one trailing announcement for the whole crowd")
    }

    @Test func thePeakIsPersistedWhenItGrowsAndAnnouncedWithTheCount() async throws {
        let t = try await TestHub.make()
        let owner = AuthUser(userId: "owner-1", username: "O", roles: ["SHOP_OWNER"])
        let room = try await t.hub.rooms.create(CreateRoomRequest(title: "r"), owner: owner)
        let viewers = t.hub.rooms.viewers
        for i in 0..<3 { await viewers.join(roomId: room.id, connection: HubConnectionID(rawValue: UInt64(i))) }
        await viewers.leave(roomId: room.id, connection: HubConnectionID(rawValue: 0))
        #expect(await t.hub.rooms.viewerCount(room.id) == 2)
        // Persisted when announced: at once for the first join, after the interval for the rest.
        let deadline = ContinuousClock.now + .seconds(10)
        while try await t.hub.rooms.room(id: room.id).peakViewers < 3 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await t.hub.rooms.stats(id: room.id).peakViewers == 3, "the peak, though only 2 watch at the announcement")
        #expect(try await t.hub.rooms.stats(id: room.id).viewerCount == 2)
    }
}
