import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import Server

private let base = "/v1/notifications/live"

/// A recording given as a fixed list of segments (wall start, duration), mapped as the contract's
/// `RecordingLibrary.mediaSeconds` says: inside a segment → its media start + offset; in a gap →
/// the next segment's start; before the first → 0; after the last → the duration. It keeps the
/// chapter calls it receives. (Test scaffolding for the recording's input to the timeline; the
/// HLS recording implements the protocol on its branch.)
final class FixedSegmentRecordings: ReplayRecordings {
    struct Segment: Sendable {
        var startMs: Int64
        var durationMs: Int64
    }

    struct State {
        var roomId = ""
        var segments: [Segment] = []
        var calls: [String] = []
        var chapterIds: [String] = []
    }

    let state = Mutex(State())

    func record(roomId: String, segments: [Segment]) {
        state.withLock {
            $0.roomId = roomId
            $0.segments = segments
        }
    }

    var calls: [String] { state.withLock { $0.calls } }

    private func segments(_ roomId: String) -> [Segment]? {
        state.withLock { $0.roomId == roomId && !$0.segments.isEmpty ? $0.segments : nil }
    }

    func mediaSeconds(roomId: String, wallClockMs: Int64) -> Double? {
        guard let segments = segments(roomId) else { return nil }
        var media: Int64 = 0
        for segment in segments {
            if wallClockMs < segment.startMs { return Double(media) / 1000 }
            if wallClockMs < segment.startMs + segment.durationMs { return Double(media + wallClockMs - segment.startMs) / 1000 }
            media += segment.durationMs
        }
        return Double(media) / 1000
    }

    func wallClockMs(roomId: String, mediaSeconds: Double) -> Int64? {
        guard let segments = segments(roomId), mediaSeconds.isFinite else { return nil }
        let target = Int64(min(max(mediaSeconds, 0), 1e9) * 1000)
        var media: Int64 = 0
        for segment in segments {
            if target < media + segment.durationMs { return segment.startMs + target - media }
            media += segment.durationMs
        }
        return segments[segments.count - 1].startMs + segments[segments.count - 1].durationMs
    }

    func startChapter(roomId: String, id: String, atMs: Int64, productId: String, productName: String?) {
        state.withLock {
            $0.calls.append("start \(id) \(productId) \(productName ?? "-")")
            $0.chapterIds.append(id)
        }
    }

    func endChapter(roomId: String, id: String, atMs: Int64) {
        state.withLock { $0.calls.append("end \(id)") }
    }

    func chapterThumbnails(roomId: String) -> [String: String] {
        state.withLock { state in
            Dictionary(uniqueKeysWithValues: state.chapterIds.enumerated().map { ($1, "/hls/\(roomId)/chapter-\($0).jpg") })
        }
    }
}

/// One entry of the timeline as a client reads it.
struct TimelineItem: Equatable {
    var seq: String
    var t: Double
    var at: String
    var type: String
    var data: [String: Any]
    var chapterId: String?

    static func == (a: TimelineItem, b: TimelineItem) -> Bool { a.seq == b.seq && a.t == b.t && a.type == b.type }

    var atMs: Int64 { WallClock.ms(ISOTime.date(at) ?? .distantPast) }
}

/// An API time (ISO-8601) in wall ms.
func wallMs(_ text: String?) throws -> Int64 {
    let text = try #require(text)
    return WallClock.ms(try #require(ISOTime.date(text)))
}

@Suite("Replay timeline (issue 21)")
struct TimelineTests {
    /// A LIVE room with two products; returns (room id, product A's live id, product B's live id).
    func liveRoomWithProducts(_ client: some TestClientProtocol, _ t: TestHub) async throws -> (String, String, String) {
        let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"scarves"}"#)) {
            try decode(RoomView.self, $0)
        }
        try await client.execute(uri: "\(base)/rooms/\(room.id)/start", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
        try await client.execute(
            uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"]
        ) { #expect($0.status == .ok) }
        var ids: [String] = []
        for (productId, name) in [("sku-a", "Scarf"), ("sku-b", "Hat")] {
            let product = try await client.execute(
                uri: "\(base)/rooms/\(room.id)/products", method: .post, headers: bearer(t.ownerToken),
                body: json(#"{"productId":"\#(productId)","livePrice":10,"productName":"\#(name)"}"#)
            ) { try decode(LiveProductView.self, $0) }
            ids.append(product.id)
        }
        return (room.id, ids[0], ids[1])
    }

    /// chats + feature A + feature B (unfeature A) + order + pin + end, a few ms apart.
    func playTheShow(_ client: some TestClientProtocol, _ t: TestHub, room: String, a: String, b: String) async throws {
        let viewer = AuthUser(userId: "viewer-1", username: "Kim")
        let pause: Duration = .milliseconds(15)
        let first = try await t.hub.live.postChat(roomId: room, user: viewer, message: "hello")
        try await Task.sleep(for: pause)
        try await client.execute(uri: "\(base)/rooms/\(room)/products/\(a)/feature", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
        try await Task.sleep(for: pause)
        _ = try await t.hub.live.postChat(roomId: room, user: viewer, message: "nice scarf")
        try await Task.sleep(for: pause)
        try await client.execute(uri: "\(base)/rooms/\(room)/products/\(b)/feature", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
        try await Task.sleep(for: pause)
        try await client.execute(
            uri: "\(base)/orders", method: .post, headers: bearer(TestHub.internalToken),
            body: json(#"{"orderId":"o-1","roomId":"\#(room)","username":"Kim","productId":"sku-b","productName":"Hat","amount":10}"#)
        ) { #expect($0.status == .created) }
        try await Task.sleep(for: pause)
        try await client.execute(uri: "\(base)/rooms/\(room)/chats/\(first.id)/pin", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
        try await Task.sleep(for: pause)
        try await client.execute(uri: "\(base)/rooms/\(room)/end", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
    }

    func page(_ client: some TestClientProtocol, _ uri: String) async throws -> (items: [TimelineItem], body: [String: Any]) {
        try await client.execute(uri: uri, method: .get) { response in
            #expect(response.status == .ok, "\(uri)")
            let body = try object(response)
            let events = try #require(body["events"] as? [[String: Any]])
            let items = try events.map { event in
                TimelineItem(
                    seq: try #require(event["seq"] as? String), t: try #require(event["t"] as? Double), at: try #require(event["at"] as? String),
                    type: try #require(event["type"] as? String), data: try #require(event["data"] as? [String: Any]),
                    chapterId: (event["chapter"] as? [String: Any])?["id"] as? String)
            }
            return (items, body)
        }
    }

    /// Every page from `uri` (with `limit`) until `nextCursor` is null.
    func allPages(_ client: some TestClientProtocol, _ uri: String) async throws -> [TimelineItem] {
        var items: [TimelineItem] = []
        var cursor: String?
        for _ in 0..<500 {
            let (page, body) = try await page(client, uri + (cursor.map { "&cursor=\($0)" } ?? ""))
            items += page
            guard let next = body["nextCursor"] as? String else {
                #expect(body["nextCursor"] is NSNull, "nextCursor is null on the last page")
                return items
            }
            cursor = next
        }
        Issue.record("pagination did not end")
        return items
    }

    @Test func theShowComesBackInOrderWithMediaTimesPagesAndRanges() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.live) { client in
            let (room, a, b) = try await liveRoomWithProducts(client, t)
            try await playTheShow(client, t, room: room, a: a, b: b)
            let view = try await client.execute(uri: "\(base)/rooms/\(room)", method: .get) { try decode(RoomView.self, $0) }
            let startedMs = try wallMs(view.startedAt)
            let endedMs = try wallMs(view.endedAt)

            let (all, body) = try await page(client, "\(base)/rooms/\(room)/timeline?limit=1000")
            #expect(body["roomId"] as? String == room)
            #expect(body["recording"] as? Bool == false)
            #expect(body["nextCursor"] is NSNull)
            #expect(abs((body["durationSeconds"] as? Double ?? -1) - Double(endedMs - startedMs) / 1000) < 0.002)
            // The show, statuses aside; the ORDER chat line and the order toast may share a millisecond.
            let kinds = all.filter { $0.type != "status" }.map(\.type)
            #expect(Array(kinds.prefix(5)) == ["chat", "feature", "chat", "unfeature", "feature"], "\(kinds)")
            #expect(kinds.count == 8 && Set(kinds[5...6]) == ["chat", "order"] && kinds[7] == "pin", "\(kinds)")
            let last = try #require(all.last)
            #expect(last.type == "status" && last.data["status"] as? String == "ENDED")
            // In order: by wall ms, events before chat lines at one ms; `t` is seconds since startedAt.
            for (earlier, later) in zip(all, all.dropFirst()) {
                #expect(earlier.atMs < later.atMs || (earlier.atMs == later.atMs && !(earlier.seq.hasPrefix("c") && later.seq.hasPrefix("e"))))
            }
            for item in all {
                let expected = max(0, Double(item.atMs - startedMs)) / 1000
                #expect(abs(item.t - expected) < 0.0015, "\(item.seq) t \(item.t) vs \(expected)")
            }
            let features = all.filter { $0.type == "feature" }
            #expect(features.map { $0.data["productId"] as? String } == ["sku-a", "sku-b"])
            #expect(features.map(\.chapterId) == features.map { Optional("f\($0.seq.dropFirst())") })
            let unfeature = try #require(all.first { $0.type == "unfeature" })
            #expect(unfeature.data["liveProductId"] as? String == a && unfeature.data["productId"] as? String == "sku-a")
            let order = try #require(all.first { $0.type == "order" })
            #expect(order.data["orderId"] as? String == "o-1" && order.data["productName"] as? String == "Hat" && order.data["amount"] as? Double == 10)
            let orderLine = try #require(all.first { $0.type == "chat" && $0.data["type"] as? String == "ORDER" })
            #expect(orderLine.data["productName"] as? String == "Hat")
            let pin = try #require(all.first { $0.type == "pin" })
            #expect(pin.data["message"] as? String == "hello" && pin.data["isPinned"] as? Bool == true)
            let chapters = try #require(body["chapters"] as? [[String: Any]])
            #expect(chapters.map { $0["id"] as? String } == features.map(\.chapterId))
            #expect(chapters.map { $0["productName"] as? String } == ["Scarf", "Hat"])
            #expect(chapters.map { $0["t"] as? Double } == features.map { Optional($0.t) })

            // Small pages return every entry exactly once, in the same order.
            for limit in [1, 2, 3, 7] {
                let paged = try await allPages(client, "\(base)/rooms/\(room)/timeline?limit=\(limit)")
                #expect(paged.map(\.seq) == all.map(\.seq), "limit \(limit)")
            }
            // from/to: exactly the entries whose t is in [from, to], also when paged.
            let from = all[2].t
            let to = try #require(all.first { $0.type == "pin" }).t
            let expected = all.filter { $0.t >= from && $0.t <= to }.map(\.seq)
            #expect(!expected.isEmpty && expected.count < all.count)
            let (ranged, _) = try await page(client, "\(base)/rooms/\(room)/timeline?from=\(from)&to=\(to)")
            #expect(ranged.map(\.seq) == expected)
            #expect(try await allPages(client, "\(base)/rooms/\(room)/timeline?from=\(from)&to=\(to)&limit=2").map(\.seq) == expected)
            let (late, _) = try await page(client, "\(base)/rooms/\(room)/timeline?from=9999")
            #expect(late.isEmpty)
            try await client.execute(uri: "\(base)/rooms/nope/timeline", method: .get) { try expectError($0, .notFound, "NOT_FOUND") }
        }
    }

    @Test func hostileParametersAreRefusedAndTheServerAnswersAfter() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.live) { client in
            let (room, a, _) = try await liveRoomWithProducts(client, t)
            try await client.execute(uri: "\(base)/rooms/\(room)/products/\(a)/feature", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
            func cursor(_ text: String) -> String { TestBase64URL.encode(text) }
            let hostile = [
                "from=NaN", "from=nan", "to=inf", "to=-inf", "to=1e309", "from=1e309", "from=-1", "to=-0.5", "from=10000001",
                "from=5&to=1", "from=abc", "from=0x", "from=%201", "limit=0", "limit=100000", "limit=-1", "limit=abc",
                "limit=9223372036854775808", "limit=1.5", "cursor=garbage!!", "cursor=\(String(repeating: "A", count: 10_240))",
                "cursor=\(cursor("v1.-5.e.3"))", "cursor=\(cursor("v1.99999999999999999999.e.1"))", "cursor=\(cursor("v1.5.x.1"))",
                "cursor=\(cursor("v1.5.e.-1"))", "cursor=\(cursor("v1.5.e.9223372036854775807"))", "cursor=\(cursor("v2.5.e.1"))",
                "cursor=\(cursor("v1.5.e"))", "cursor=\(cursor("v1.5.e.1.2"))", "cursor=%00", "cursor=A",
                "from=\(String(repeating: "1", count: 400))",
            ]
            for query in hostile {
                try await client.execute(uri: "\(base)/rooms/\(room)/timeline?\(query)", method: .get) { response in
                    try expectError(response, .badRequest, "BAD_REQUEST")
                }
            }
            let (items, body) = try await page(client, "\(base)/rooms/\(room)/timeline?from=0&to=10000000&limit=1000")
            #expect(items.map(\.type).contains("feature") && body["nextCursor"] is NSNull)
            // A well-formed cursor past everything is an empty last page, not an error.
            let (none, rest) = try await page(client, "\(base)/rooms/\(room)/timeline?cursor=\(cursor("v1.253402300799999.c.1"))")
            #expect(none.isEmpty && rest["nextCursor"] is NSNull)
        }
    }

    @Test func withARecordingTIsTheMediaTimeAndFeaturesAreChapters() async throws {
        let recordings = FixedSegmentRecordings()
        let t = try await TestHub.make(replayRecordings: recordings)
        try await t.hub.application.test(.live) { client in
            let (room, a, b) = try await liveRoomWithProducts(client, t)
            // Two segments with a reconnect gap between them: [0, 0.4 s), gap of 0.3 s, then 60 s.
            let zero = WallClock.nowMs - 50
            recordings.record(roomId: room, segments: [.init(startMs: zero, durationMs: 400), .init(startMs: zero + 700, durationMs: 60_000)])
            let viewer = AuthUser(userId: "viewer-1", username: "Kim")
            _ = try await t.hub.live.postChat(roomId: room, user: viewer, message: "in the gap", now: WallClock.date(zero + 500))
            _ = try await t.hub.live.postChat(roomId: room, user: viewer, message: "after it", now: WallClock.date(zero + 800))
            try await playTheShow(client, t, room: room, a: a, b: b)

            let (all, body) = try await page(client, "\(base)/rooms/\(room)/timeline?limit=1000")
            #expect(body["recording"] as? Bool == true)
            for item in all {
                let expected = try #require(recordings.mediaSeconds(roomId: room, wallClockMs: item.atMs))
                #expect(abs(item.t - expected) < 0.0015, "\(item.seq) \(item.t) vs \(expected)")
            }
            let gap = try #require(all.first { $0.data["message"] as? String == "in the gap" })
            #expect(gap.t == 0.4, "an instant in a gap has the next segment's start")
            let after = try #require(all.first { $0.data["message"] as? String == "after it" })
            #expect(after.t == 0.5)
            // Each feature opened a chapter named after its event; the next feature closed it; the end closed the last.
            let features = all.filter { $0.type == "feature" }
            let ids = features.compactMap(\.chapterId)
            #expect(ids.count == 2)
            #expect(recordings.calls == ["start \(ids[0]) sku-a Scarf", "end \(ids[0])", "start \(ids[1]) sku-b Hat", "end \(ids[1])"])
            let chapters = try #require(body["chapters"] as? [[String: Any]])
            #expect(chapters.map { $0["thumbnailUrl"] as? String } == ["/hls/\(room)/chapter-0.jpg", "/hls/\(room)/chapter-1.jpg"])
            let view = try await client.execute(uri: "\(base)/rooms/\(room)", method: .get) { try decode(RoomView.self, $0) }
            let endedMs = try wallMs(view.endedAt)
            #expect(abs((body["durationSeconds"] as? Double ?? 0) - (recordings.mediaSeconds(roomId: room, wallClockMs: endedMs) ?? -1)) < 0.002)
            // from/to in media seconds: the gap line (t 0.4) and the next (0.5), not the earlier statuses at t < 0.4.
            let (ranged, _) = try await page(client, "\(base)/rooms/\(room)/timeline?from=0.4&to=0.5")
            #expect(ranged.map(\.seq) == all.filter { $0.t >= 0.4 && $0.t <= 0.5 }.map(\.seq))
            #expect(ranged.contains(gap) && ranged.contains(after))
        }
    }

    @Test func theFeaturedProductIsReadFromTheStoreAfterARestartAndForgottenWhenTheRoomEnds() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("livehub-tests-\(UUID().uuidString)").path
        let first = try await TestHub.make(directory: directory)
        let (roomId, _, productB) = try await first.hub.application.test(.router) { client in
            let (roomId, productA, productB) = try await liveRoomWithProducts(client, first)
            try await client.execute(uri: "\(base)/rooms/\(roomId)/products/\(productA)/feature", method: .put, headers: bearer(first.ownerToken)) { #expect($0.status == .ok) }
            return (roomId, productA, productB)
        }
        let recordings = FixedSegmentRecordings()
        let t = try await TestHub.make(directory: directory, replayRecordings: recordings)
        try await t.hub.application.test(.router) { client in
            // A fresh process: the featured product is A, as the store says, so featuring B unfeatures A.
            try await client.execute(uri: "\(base)/rooms/\(roomId)/products/\(productB)/feature", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
            try await client.execute(uri: "\(base)/rooms/\(roomId)/products/\(productB)", method: .delete, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
            let (all, _) = try await page(client, "\(base)/rooms/\(roomId)/timeline")
            let products = all.filter { $0.type != "status" }
            #expect(products.map(\.type) == ["feature", "unfeature", "feature", "unfeature"])
            #expect(products.map { $0.data["productId"] as? String } == ["sku-a", "sku-a", "sku-b", "sku-b"])
            #expect(recordings.calls.count == 3 && recordings.calls[0] == "end \(products[0].chapterId ?? "?")")
            #expect(await t.hub.timeline.keptRooms == 1)
            try await client.execute(uri: "\(base)/rooms/\(roomId)/end", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
            #expect(await t.hub.timeline.keptRooms == 0, "an ended room keeps nothing in memory")
        }
    }
}

/// The timeline's store contract, on SQLite and PostgreSQL alike.
@Suite("Timeline store contract (SQLite and PostgreSQL)")
struct TimelineStoreContractTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000.123)

    func makeRoom(_ id: String, in stores: StoreBackend.Stores) async throws {
        try await stores.rooms.insert(RoomRecord(
            id: id, shopOwnerId: "owner-1", shopOwnerName: nil, title: "Room \(id)", description: nil, thumbnailUrl: nil,
            streamKey: "key-\(id)", status: .live, peakViewers: 0, totalOrders: 0, totalRevenue: 0,
            createdAt: Self.t0, updatedAt: Self.t0, startedAt: Self.t0, endedAt: nil))
    }

    @Test(arguments: StoreBackend.available)
    func eventsAreReadByRangeKindAndPositionInOrder(_ backend: StoreBackend) async throws {
        try await backend.withStores { stores in
            try await makeRoom("r", in: stores)
            try await makeRoom("other", in: stores)
            let at = WallClock.ms(Self.t0)
            var saved: [TimelineEventRecord] = []
            // Inserted out of time order; two at one ms.
            for (offset, kind) in [(20, "status"), (10, "feature"), (10, "unfeature"), (30, "order"), (40, "pin")] as [(Int64, String)] {
                saved.append(try await stores.timeline.insert(TimelineEventRecord(liveRoomId: "r", atMs: at + offset, kind: kind, payload: #"{"k":"\#(kind)"}"#)))
            }
            _ = try await stores.timeline.insert(TimelineEventRecord(liveRoomId: "other", atMs: at + 10, kind: "feature", payload: "{}"))
            let seqs = saved.compactMap(\.seq)
            #expect(seqs.count == 5 && seqs == seqs.sorted() && Set(seqs).count == 5)
            let all = try await stores.timeline.events(roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: nil, kinds: nil, limit: 100)
            #expect(all.map(\.kind) == ["feature", "unfeature", "status", "order", "pin"])
            #expect(all[0] == saved[1] && all[0].payload == #"{"k":"feature"}"#)
            let ranged = try await stores.timeline.events(roomId: "r", fromMs: at + 10, toMs: at + 30, after: nil, kinds: nil, limit: 100)
            #expect(ranged.map(\.kind) == ["feature", "unfeature", "status", "order"])
            let afterFirst = try await stores.timeline.events(
                roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: TimelinePosition(atMs: at + 10, seq: all[0].seq!), kinds: nil, limit: 2)
            #expect(afterFirst.map(\.kind) == ["unfeature", "status"])
            let afterTheMs = try await stores.timeline.events(
                roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: TimelinePosition(atMs: at + 10, seq: .max), kinds: nil, limit: 100)
            #expect(afterTheMs.map(\.kind) == ["status", "order", "pin"])
            let features = try await stores.timeline.events(roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: nil, kinds: ["feature", "pin"], limit: 100)
            #expect(features.map(\.kind) == ["feature", "pin"])
            #expect(try await stores.timeline.lastEvent(roomId: "r", kinds: ["feature", "unfeature"])?.kind == "unfeature")
            #expect(try await stores.timeline.lastEvent(roomId: "r", kinds: ["order"])?.seq == saved[3].seq)
            #expect(try await stores.timeline.lastEvent(roomId: "nope", kinds: ["order"]) == nil)
            #expect(try await stores.timeline.lastEvent(roomId: "r", kinds: []) == nil)
        }
    }

    /// Cluster mode: two nodes' recorders feature products of one room in turn; each reads the
    /// featured product from the store, so every unfeature names the product featured before it.
    @Test(arguments: StoreBackend.available)
    func recordersOfTwoNodesUnfeatureWhatTheOtherFeatured(_ backend: StoreBackend) async throws {
        try await backend.withStores { stores in
            try await makeRoom("r", in: stores)
            func products(featuring featured: String?) -> [LiveProductView] {
                let ids: [String] = ["a", "b", "c"]
                return ids.map { id in
                    LiveProductView(LiveProductRecord(
                        id: "lp-\(id)", liveRoomId: "r", productId: "sku-\(id)", productName: nil, productImageUrl: nil, originalPrice: nil,
                        livePrice: 1, discountPercent: nil, quantityLimit: nil, stockAvailable: nil, soldCount: 0, isFeatured: id == featured,
                        displayOrder: 0, createdAt: Self.t0))
                }
            }
            let logger = Logger(label: "test")
            let nodeA = TimelineRecorder(store: stores.timeline, recordings: nil, logger: logger, keepsFeaturedInMemory: false)
            let nodeB = TimelineRecorder(store: stores.timeline, recordings: nil, logger: logger, keepsFeaturedInMemory: false)
            await nodeA.productsChanged(roomId: "r", products: products(featuring: "a"))
            await nodeB.productsChanged(roomId: "r", products: products(featuring: "b"))
            await nodeA.productsChanged(roomId: "r", products: products(featuring: "c"))
            await nodeB.productsChanged(roomId: "r", products: products(featuring: "c"))
            await nodeB.productsChanged(roomId: "r", products: products(featuring: nil))
            let events = try await stores.timeline.events(roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: nil, kinds: nil, limit: 100)
            let named = events.map { event in
                "\(event.kind) \(event.payload.contains("lp-a") ? "a" : event.payload.contains("lp-b") ? "b" : "c")"
            }
            #expect(named == ["feature a", "unfeature a", "feature b", "unfeature b", "feature c", "unfeature c"])
            let kept = (await nodeA.keptRooms, await nodeB.keptRooms)
            #expect(kept == (0, 0))
        }
    }

    /// Events before chat lines at one millisecond, then seq; pages of one cross that ms exactly once.
    @Test(arguments: StoreBackend.available)
    func theReaderPutsEventsBeforeChatLinesOfTheSameMillisecond(_ backend: StoreBackend) async throws {
        try await backend.withStores { stores in
            try await makeRoom("r", in: stores)
            let at = WallClock.ms(Self.t0)
            func line(_ id: String, _ offsetMs: Int64) -> LiveChatRecord {
                LiveChatRecord(
                    seq: nil, id: id, liveRoomId: "r", userId: "u", username: "U", avatarUrl: nil, message: id, type: "CHAT", isPinned: false,
                    productId: nil, productName: nil, createdAt: WallClock.date(at + offsetMs))
            }
            // The chat lines are written first (lower seqs), the events at the same ms after.
            _ = try await stores.live.insertChats([line("a", 5), line("b", 5), line("c", 9)])
            let status = #"{"message":"m","reconnecting":false,"roomId":"r","status":"LIVE"}"#
            for offset: Int64 in [5, 5, 9] {
                _ = try await stores.timeline.insert(TimelineEventRecord(liveRoomId: "r", atMs: at + offset, kind: "status", payload: status))
            }
            let reader = TimelineReader(rooms: stores.rooms, store: stores.timeline, recordings: nil, nowMs: { at + 1000 })
            let whole = try await reader.page(roomId: "r", .init(limit: 100))
            #expect(whole.events.map(\.seq) == ["e1", "e2", "c1", "c2", "e3", "c3"])
            #expect(whole.events.map(\.t) == [0.005, 0.005, 0.005, 0.005, 0.009, 0.009])
            #expect(whole.nextCursor == nil && whole.durationSeconds == 1)
            var paged: [String] = []
            var cursor: TimelineCursor?
            for _ in 0..<20 {
                let page = try await reader.page(roomId: "r", .init(limit: 1, cursor: cursor))
                paged += page.events.map(\.seq)
                guard let next = page.nextCursor else { break }
                cursor = try TimelineCursor(parsing: next)
            }
            #expect(paged == whole.events.map(\.seq))
        }
    }

    @Test(arguments: StoreBackend.available)
    func chatsAreReadByCreatedAtWithTheCursorRule(_ backend: StoreBackend) async throws {
        try await backend.withStores { stores in
            try await makeRoom("r", in: stores)
            try await makeRoom("other", in: stores)
            func line(_ id: String, _ room: String, _ offsetMs: Double) -> LiveChatRecord {
                LiveChatRecord(
                    seq: nil, id: id, liveRoomId: room, userId: "u", username: "U", avatarUrl: nil, message: id, type: "CHAT", isPinned: false,
                    productId: nil, productName: nil, createdAt: Self.t0.addingTimeInterval(offsetMs / 1000))
            }
            // Out of time order, two in one ms, one in another room; a year-2001 time has the same width.
            _ = try await stores.live.insertChats([line("c30", "r", 30), line("c10a", "r", 10), line("c10b", "r", 10), line("x", "other", 10), line("c20", "r", 20)])
            let at = WallClock.ms(Self.t0)
            let all = try await stores.timeline.chats(roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: nil, limit: 100)
            #expect(all.map(\.id) == ["c10a", "c10b", "c20", "c30"])
            #expect(all.map { WallClock.ms($0.createdAt) } == [at + 10, at + 10, at + 20, at + 30])
            #expect(try await stores.timeline.chats(roomId: "r", fromMs: at + 10, toMs: at + 20, after: nil, limit: 100).map(\.id) == ["c10a", "c10b", "c20"])
            #expect(try await stores.timeline.chats(roomId: "r", fromMs: at + 11, toMs: at + 29, after: nil, limit: 100).map(\.id) == ["c20"])
            let first = try #require(all.first?.seq)
            #expect(try await stores.timeline.chats(
                roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: TimelinePosition(atMs: at + 10, seq: first), limit: 2).map(\.id) == ["c10b", "c20"])
            #expect(try await stores.timeline.chats(
                roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: TimelinePosition(atMs: at + 10, seq: -1), limit: 100).map(\.id) == ["c10a", "c10b", "c20", "c30"])
            #expect(try await stores.timeline.chats(
                roomId: "r", fromMs: 0, toMs: WallClock.maxMs, after: TimelinePosition(atMs: at + 20, seq: .max), limit: 100).map(\.id) == ["c30"])
        }
    }
}
