import Hub
import Synchronization
import Testing

@testable import Server

@Suite struct ViewerTrackerTests {
    final class Announcements: Sendable {
        let values = Mutex<[Int]>([])
        var all: [Int] { values.withLock { $0 } }
    }

    @Test func aConnectionCountsOnceAndADropLeavesEveryRoom() async throws {
        let seen = Announcements()
        let tracker = ViewerTracker(minimumInterval: .zero) { _, count in seen.values.withLock { $0.append(count) } }
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
            minimumInterval: .seconds(3600),
            sleep: { _ in
                waits.values.withLock { $0.append(0) }
                for await _ in intervalOver { return }
            },
            onChange: { _, count in seen.values.withLock { $0.append(count) } })
        for index in 0..<500 { await tracker.join(roomId: "r", connection: HubConnectionID(rawValue: UInt64(index))) }
        #expect(seen.all == [1])
        over.yield()
        let deadline = ContinuousClock.now + .seconds(10)
        while seen.all.count < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(seen.all == [1, 500])
        #expect(waits.all.count == 1, "one trailing announcement for the whole crowd")
    }
}
