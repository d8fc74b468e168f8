import Hub
import NIOCore
import Synchronization
import Testing

/// An encoder that shows the offset, epoch and recovered flag of each message.
struct PositionEncoder: HubMessageEncoder {
    func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame {
        let offset = message.position.map { String($0.offset) } ?? "-"
        let recovered = message.recovered.map { $0 ? "R" : "F" } ?? ""
        return .text(ByteBuffer(string: "\(offset)\(recovered)|\(message.payloadString)"))
    }
}

/// A topic log (the chat rows) kept in memory.
struct ArrayTopicLog: HubTopicLog {
    let rows: [(UInt64, String)]
    func messages(after offset: UInt64, limit: Int) async -> HubTopicLogRead {
        let missed = rows.filter { $0.0 > offset }
        guard missed.count <= limit else { return .tooMany }
        return .messages(missed.map { HubStreamPosition.Offset(offset: $0.0, payload: ByteBuffer(string: $0.1)) })
    }
}

@Suite("Hub history and recovery")
struct HubHistoryTests {
    let format = HubWireFormat(name: "pos", encoder: PositionEncoder(), acceptsUserMessages: false)

    func hub(size: Int = 100, ttl: Duration = .seconds(300), maxTopics: Int = 100, maxBytes: Int = 1 << 20, clock: HubClock = .system) -> Hub {
        Hub(configuration: HubConfiguration(history: HubHistoryConfiguration(maxEntriesPerTopic: size, ttl: ttl, maxTopics: maxTopics, maxBytes: maxBytes, epoch: "e1")), clock: clock)
    }

    @Test func roomTopicMessagesCarryIncreasingOffsetsAndTheEpoch() throws {
        let hub = self.hub()
        let c = try hub.register(format: .stomp)
        hub.subscribe(c, topic: "/topic/live/1/status", variant: "sub-0")
        hub.publish(topic: "/topic/live/1/status", json: "{}")
        hub.publish(topic: "/topic/live/2/status", json: "{}")
        hub.publish(topic: "/topic/live/1/status", json: "{}")
        var parser = STOMPFrameParser()
        var offsets: [UInt64] = []
        for s in c.pendingStrings() {
            parser.append(Array(s.utf8))
            guard case .frame(let m) = try parser.next() else { continue }
            #expect(m.headers["epoch"] == "e1")
            offsets.append(UInt64(m.headers["offset"] ?? "") ?? 0)
        }
        #expect(offsets == [1, 3])
        #expect(hub.position(topic: "/topic/live/1/status") == HubStreamPosition(offset: 3, epoch: "e1"))
    }

    @Test func aRecoveringSubscriberGetsTheMissedMessagesInOrderThenTheMarkerThenLiveOnes() async throws {
        let hub = self.hub()
        let t = "/topic/live/1/product"
        for i in 1...5 { hub.publish(topic: t, json: "m\(i)") }
        let c = try hub.register(format: format)
        let outcome = try #require(await hub.recover(c, topic: t, variant: "s", since: HubStreamPosition(offset: 2, epoch: "e1")))
        #expect(outcome.recovered && outcome.missed == 3)
        hub.publish(topic: t, json: "m6")
        #expect(c.pendingStrings() == ["3|m3", "4|m4", "5|m5", #"5R|{"type":"RECOVERY","recovered":true,"missed":3,"offset":"5","epoch":"e1"}"#, "6|m6"])
    }

    @Test func anotherEpochOrAGapOlderThanTheRingIsNotRecovered() async throws {
        let hub = self.hub(size: 3)
        let t = "/topic/live/1/status"
        for i in 1...10 { hub.publish(topic: t, json: "m\(i)") }
        let a = try hub.register(format: format)
        let wrongEpoch = try #require(await hub.recover(a, topic: t, since: HubStreamPosition(offset: 9, epoch: "other")))
        #expect(!wrongEpoch.recovered && wrongEpoch.missed == 0 && wrongEpoch.position.offset == 10)
        let b = try hub.register(format: format)
        let tooOld = try #require(await hub.recover(b, topic: t, since: HubStreamPosition(offset: 6, epoch: "e1")))
        #expect(!tooOld.recovered)
        // The ring holds 8, 9, 10: complete above 7.
        let c = try hub.register(format: format)
        let edge = try #require(await hub.recover(c, topic: t, since: HubStreamPosition(offset: 7, epoch: "e1")))
        #expect(edge.recovered && edge.missed == 3)
        #expect(c.pendingStrings().prefix(3) == ["8|m8", "9|m9", "10|m10"])
    }

    @Test func entriesOlderThanTheTTLAreEvictedAndRaiseTheFloor() async throws {
        let clock = ManualHubClock()
        let hub = self.hub(ttl: .seconds(10), clock: clock.clock)
        let t = "/topic/live/1/status"
        hub.publish(topic: t, json: "old")
        clock.advance(by: .seconds(11))
        hub.publish(topic: t, json: "new")
        let c = try hub.register(format: format)
        #expect(try #require(await hub.recover(c, topic: t, since: HubStreamPosition(offset: 0, epoch: "e1"))).recovered == false)
        let d = try hub.register(format: format)
        let ok = try #require(await hub.recover(d, topic: t, since: HubStreamPosition(offset: 1, epoch: "e1")))
        #expect(ok.recovered && ok.missed == 1)
    }

    @Test func droppingATopicForTheTopicLimitNeverClaimsMessagesItLost() async throws {
        let clock = ManualHubClock()
        let hub = self.hub(maxTopics: 2, clock: clock.clock)
        hub.publish(topic: "/topic/live/a/status", json: "a1")  // 1
        clock.advance(by: .seconds(1))
        hub.publish(topic: "/topic/live/b/status", json: "b1")  // 2
        clock.advance(by: .seconds(1))
        hub.publish(topic: "/topic/live/c/status", json: "c1")  // 3: a's ring is dropped
        clock.advance(by: .seconds(1))
        hub.publish(topic: "/topic/live/a/status", json: "a2")  // 4: a new ring, complete only above 1
        let c = try hub.register(format: format)
        let fromZero = try #require(await hub.recover(c, topic: "/topic/live/a/status", since: HubStreamPosition(offset: 0, epoch: "e1")))
        #expect(!fromZero.recovered)
        let d = try hub.register(format: format)
        let fromOne = try #require(await hub.recover(d, topic: "/topic/live/a/status", since: HubStreamPosition(offset: 1, epoch: "e1")))
        #expect(fromOne.recovered && fromOne.missed == 1)
        // A topic never published since the position: nothing missed.
        let e = try hub.register(format: format)
        let quiet = try #require(await hub.recover(e, topic: "/topic/live/z/status", since: HubStreamPosition(offset: 3, epoch: "e1")))
        #expect(quiet.recovered && quiet.missed == 0)
    }

    @Test func theByteLimitBoundsTheWholeHistory() async throws {
        let hub = self.hub(maxTopics: 1000, maxBytes: 1000)
        for i in 0..<200 { hub.publish(topic: "/topic/live/\(i)/status", json: String(repeating: "x", count: 50)) }
        let c = try hub.register(format: format)
        // The oldest topics went; the newest is still recoverable.
        #expect(try #require(await hub.recover(c, topic: "/topic/live/199/status", since: HubStreamPosition(offset: 199, epoch: "e1"))).missed == 1)
        let d = try hub.register(format: format)
        #expect(try #require(await hub.recover(d, topic: "/topic/live/0/status", since: HubStreamPosition(offset: 0, epoch: "e1"))).recovered == false)
    }

    @Test func aTopicLogIsReadInsteadOfTheRingAndLiveMessagesAreNotDuplicated() async throws {
        let hub = self.hub()
        let t = "/topic/live/1/chat"
        hub.publish(topic: t, payload: ByteBuffer(string: "c40"), offset: HubPublishOffset(40))
        let c = try hub.register(format: format)
        let log = ArrayTopicLog(rows: [(10, "c10"), (20, "c20"), (40, "c40")])
        let outcome = try #require(await hub.recover(c, topic: t, since: HubStreamPosition(offset: 10, epoch: "e1"), log: log))
        #expect(outcome.recovered && outcome.missed == 2)
        hub.publish(topic: t, payload: ByteBuffer(string: "c41"), offset: HubPublishOffset(41))
        #expect(c.pendingStrings() == ["20|c20", "40|c40", #"40R|{"type":"RECOVERY","recovered":true,"missed":2,"offset":"40","epoch":"e1"}"#, "41|c41"])
        // More than the limit: not recovered.
        let d = try hub.register(format: format)
        #expect(try #require(await hub.recover(d, topic: t, since: HubStreamPosition(offset: 0, epoch: "e1"), log: log, maxMessages: 2)).recovered == false)
    }

    @Test func aGapLongerThanTheOutboundQueueIsHandedInStepsAsTheClientReads() async throws {
        let hub = Hub(configuration: HubConfiguration(
            outboundQueue: .init(maxFrames: 16, maxBytes: 1 << 20),
            history: HubHistoryConfiguration(maxEntriesPerTopic: 500, epoch: "e1")))
        let t = "/topic/live/1/status"
        for i in 1...300 { hub.publish(topic: t, json: "m\(i)") }
        let c = try hub.register(format: format)
        // The client reads a few frames every millisecond.
        let reader = Task {
            var got: [String] = []
            while !got.contains(where: { $0.contains("RECOVERY") }) && !Task.isCancelled {
                got += c.pendingStrings()
                try? await Task.sleep(for: .milliseconds(1))
            }
            return got
        }
        let outcome = try #require(await hub.recover(c, topic: t, since: HubStreamPosition(offset: 0, epoch: "e1"), maxMessages: 1000))
        #expect(outcome.recovered && outcome.missed == 300)
        let got = await reader.value
        #expect(!c.wasDroppedAsSlow)
        #expect(got.count == 301 && got.prefix(300) == ArraySlice((1...300).map { "\($0)|m\($0)" }))
    }

    @Test func recoverHeadersAreValidatedWithoutTrapping() {
        func parse(_ offset: String?, _ epoch: String?) -> STOMPSession.RecoverHeaders {
            var h: STOMPHeaders = [:]
            if let offset { h.append("recover-offset", offset) }
            if let epoch { h.append("recover-epoch", epoch) }
            return STOMPSession.recoverPosition(h)
        }
        #expect(parse(nil, nil) == .none)
        #expect(parse("12", "ab-C_9") == .position(HubStreamPosition(offset: 12, epoch: "ab-C_9")))
        #expect(parse("9223372036854775807", "e") == .position(HubStreamPosition(offset: UInt64(Int64.max), epoch: "e")))
        for hostile in ["9223372036854775808", "18446744073709551616", "99999999999999999999999", "-1", "+1", "1e3", "", " 1", "0x10", "١٢"] {
            guard case .invalid = parse(hostile, "e") else { Issue.record("accepted offset \(hostile)"); continue }
        }
        for hostile in ["", String(repeating: "a", count: 65), "a b", "é", "a:b", "a\nb"] {
            guard case .invalid = parse("1", hostile) else { Issue.record("accepted epoch \(hostile)"); continue }
        }
        guard case .invalid = parse("1", nil), case .invalid = parse(nil, "e") else { Issue.record("accepted half a position"); return }
    }
}
