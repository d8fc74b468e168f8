import Hub
import NIOCore
import Synchronization
import Testing

@testable import Server

/// Issue 22 §2: reactions are summed per room and window, published once per window with counts,
/// limited per sender, bounded in rooms.
@Suite struct ReactionAggregatorTests {
    final class Published: Sendable {
        let items = Mutex<[(room: String, body: String)]>([])
        func add(_ room: String, _ payload: ByteBuffer) { items.withLock { $0.append((room, String(buffer: payload))) } }
        var all: [(room: String, body: String)] { items.withLock { $0 } }
    }

    func totals(_ published: [(room: String, body: String)], room: String) throws -> [String: Int] {
        var sums: [String: Int] = [:]
        for item in published where item.room == room {
            let json = try JSONValue(parsing: item.body, maxDepth: 4)
            #expect(json["windowMs"]?.intValue == 100)
            guard case .object(let counts)? = json["counts"] else { Issue.record("no counts in \(item.body)"); continue }
            for (k, v) in counts { sums[k, default: 0] += v.intValue ?? 0 }
        }
        return sums
    }

    @Test func aBurstIsSummedIntoOneMessagePerRoomAndWindow() async throws {
        let published = Published()
        let aggregator = ReactionAggregator(window: .milliseconds(100), maxRooms: 10, perSecond: 10_000) { room, payload in published.add(room, payload) }
        for i in 0..<3000 {
            #expect(aggregator.add(roomId: i % 3 == 0 ? "b" : "a", type: ["heart", "fire", "wow"][i % 3 == 0 ? 0 : i % 2], senderKey: "g\(i % 50)") == nil)
        }
        try await Task.sleep(for: .milliseconds(400))
        let items = published.all
        #expect(items.filter { $0.room == "a" }.count == 1 && items.filter { $0.room == "b" }.count == 1)
        #expect(try totals(items, room: "a") == ["heart": 1000, "fire": 1000])
        #expect(try totals(items, room: "b") == ["heart": 1000])
        // A quiet window publishes nothing; the next reaction starts a window again.
        try await Task.sleep(for: .milliseconds(250))
        #expect(published.all.count == 2)
        #expect(aggregator.add(roomId: "a", type: "clap", senderKey: "x") == nil)
        try await Task.sleep(for: .milliseconds(300))
        #expect(published.all.count == 3 && published.all.last?.body == #"{"counts":{"clap":1},"windowMs":100}"#)
    }

    @Test func unknownTypesSendersOverTheirRateAndOneRoomTooManyAreRefused() async throws {
        let aggregator = ReactionAggregator(window: .milliseconds(100), maxRooms: 2, perSecond: 5) { _, _ in }
        #expect(aggregator.add(roomId: "a", type: "poop", senderKey: "u") == .unknownType)
        for _ in 0..<5 { #expect(aggregator.add(roomId: "a", type: "heart", senderKey: "u") == nil) }
        #expect(aggregator.add(roomId: "a", type: "heart", senderKey: "u") == .rateLimited)
        #expect(aggregator.add(roomId: "a", type: "heart", senderKey: "v") == nil)
        #expect(aggregator.add(roomId: "b", type: "heart", senderKey: "v") == nil)
        #expect(aggregator.add(roomId: "c", type: "heart", senderKey: "v") == .tooManyRooms)
    }
}
