import Hub
import NIOCore
import Synchronization
import Testing

@Suite("Hub core")
struct HubCoreTests {
    let counting = CountingEncoder()
    var testFormat: HubWireFormat { HubWireFormat(name: "test", encoder: self.counting, acceptsUserMessages: true) }

    @Test func aPublishIsEncodedOncePerFormatAndVariantAndTheBytesAreShared() throws {
        let hub = Hub()
        let conns = try (0..<10).map { _ in try hub.register(format: testFormat) }
        for c in conns { hub.subscribe(c, topic: "/topic/a", variant: "sub-0") }
        let odd = try hub.register(format: testFormat)
        hub.subscribe(odd, topic: "/topic/a", variant: "sub-7")
        #expect(hub.publish(topic: "/topic/a", json: "{}") == 11)
        #expect(counting.calls == 2)
        #expect(hub.snapshot().encodes == 2)
        let frames = conns.map { c -> HubOutboundFrame? in
            if case .frame(let f) = c.takePendingOutbound().first { return f }
            return nil
        }
        let first = try #require(frames[0])
        #expect(first.string == "sub-0|/topic/a|{}")
        for f in frames { #expect(f.map(first.sharesStorage) == true) }
        #expect(odd.pendingStrings() == ["sub-7|/topic/a|{}"])
    }

    @Test func stompSubscribersWithTheSameSubscriptionIdShareOneEncodedMessage() throws {
        let hub = Hub()
        let a = try hub.register(format: .stomp)
        let b = try hub.register(format: .stomp)
        let c = try hub.register(format: .stompSockJS)
        for x in [a, b, c] { hub.subscribe(x, topic: "/topic/live/1/chat", variant: "sub-0") }
        hub.publish(topic: "/topic/live/1/chat", json: #"{"m":"hi"}"#)
        guard case .frame(let fa) = a.takePendingOutbound().first, case .frame(let fb) = b.takePendingOutbound().first,
            case .frame(let fc) = c.takePendingOutbound().first
        else { Issue.record("missing frames"); return }
        #expect(fa.sharesStorage(with: fb))
        #expect(!fa.sharesStorage(with: fc))
        #expect(hub.snapshot().encodes == 2)  // one per wire format
        var parser = STOMPFrameParser()
        parser.append(fa.bytes)
        guard case .frame(let m) = try parser.next() else { Issue.record("not STOMP"); return }
        #expect(m.command == .message)
        #expect(m.headers["subscription"] == "sub-0")
        #expect(m.headers["destination"] == "/topic/live/1/chat")
        #expect(m.headers["message-id"] != nil)
        #expect(m.headers["content-type"] == "application/json")
        #expect(m.bodyString == #"{"m":"hi"}"#)
        #expect(fc.string.hasPrefix(#"a["MESSAGE\ndestination:/topic/live/1/chat\n"#))
        #expect(fc.string.hasSuffix(#"\u0000"]"#))
    }

    @Test func aSlowClientIsDroppedAndCountedWhileOthersKeepReceiving() throws {
        let hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: 3, maxBytes: 1 << 20)))
        let slow = try hub.register(format: testFormat)
        let fast = try hub.register(format: testFormat)
        hub.subscribe(slow, topic: "t")
        hub.subscribe(fast, topic: "t")
        var fastReceived = 0
        for i in 0..<10 {
            hub.publish(topic: "t", json: "\(i)")
            fastReceived += fast.pendingStrings().count
        }
        #expect(fastReceived == 10)
        #expect(slow.wasDroppedAsSlow)
        #expect(slow.isClosing)
        #expect(slow.takePendingOutbound() == [.close(.slowConsumer)])
        #expect(hub.snapshot().slowClientDrops == 1)
        #expect(!fast.isClosing)
    }

    @Test func theByteLimitAlsoDropsASlowClient() throws {
        let hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: 1000, maxBytes: 100)))
        let c = try hub.register(format: testFormat)
        hub.subscribe(c, topic: "t")
        hub.publish(topic: "t", json: String(repeating: "x", count: 60))
        #expect(!c.isClosing)
        hub.publish(topic: "t", json: String(repeating: "x", count: 60))
        #expect(c.wasDroppedAsSlow)
    }

    @Test func perUserSetsAreEmptiedWhenTheLastConnectionLeaves() throws {
        let hub = Hub()
        let alice = HubIdentity(userId: "alice", username: "Alice")
        let tab1 = try hub.register(format: .socketIO, identity: alice)
        let tab2 = try hub.register(format: .socketIO)
        let change = hub.setIdentity(alice, for: tab2)
        #expect(!change.isFirstConnectionOfUser)
        hub.subscribe(tab1, topic: "x")
        #expect(hub.snapshot().users == 1)
        #expect(hub.snapshot().usersByProtocol["socketio"] == 1)
        #expect(hub.connections(ofUser: "alice").count == 2)
        #expect(hub.sendToUser(userId: "alice", event: "unreadCount:updated", json: #"{"count":3}"#) == 2)
        #expect(tab1.pendingStrings() == [#"42["unreadCount:updated",{"count":3}]"#])
        let first = hub.unregister(tab1)
        #expect(first.wasRegistered && !first.wasLastConnectionOfUser)
        let last = hub.unregister(tab2)
        #expect(last.wasLastConnectionOfUser)
        #expect(last.userId == "alice")
        let snap = hub.snapshot()
        #expect(snap.users == 0)
        #expect(snap.usersByProtocol.isEmpty)
        #expect(snap.connections == 0)
        #expect(snap.topics == 0)
        #expect(snap.subscriptions == 0)
        #expect(hub.unregister(tab2).wasRegistered == false)
    }

    @Test func sendToUserSkipsFormatsThatDoNotAcceptUserMessages() throws {
        let hub = Hub()
        let bob = HubIdentity(userId: "bob", username: "Bob")
        let stomp = try hub.register(format: .stomp, identity: bob)
        let bell = try hub.register(format: .socketIO, identity: bob)
        #expect(hub.sendToUser(userId: "bob", event: "e", json: "1") == 1)
        #expect(stomp.pendingStrings().isEmpty)
        #expect(bell.pendingStrings() == [#"42["e",1]"#])
        #expect(hub.sendToUser(userId: "nobody", event: "e", json: "1") == 0)
    }

    @Test func unsubscribeRemovesOnlyThatSubscription() throws {
        let hub = Hub()
        let c = try hub.register(format: testFormat)
        hub.subscribe(c, topic: "t", variant: "a")
        hub.subscribe(c, topic: "t", variant: "b")
        #expect(!hub.subscribe(c, topic: "t", variant: "a"))
        #expect(hub.subscriberCount(topic: "t") == 2)
        #expect(hub.publish(topic: "t", json: "1") == 2)
        #expect(hub.unsubscribe(c, topic: "t", variant: "a"))
        #expect(hub.publish(topic: "t", json: "2") == 1)
        #expect(hub.unsubscribe(c, topic: "t", variant: "b"))
        #expect(hub.snapshot().topics == 0)
    }

    /// `publish` reuses a topic's recipient list between publishes: every change to the topic's
    /// subscribers (subscribe, a second variant, unsubscribe, unregister) must show in the next one.
    @Test func everySubscriptionChangeReachesTheNextPublish() throws {
        let hub = Hub()
        let a = try hub.register(format: testFormat)
        let b = try hub.register(format: testFormat)
        hub.subscribe(a, topic: "t", variant: "x")
        #expect(hub.publish(topic: "t", json: "1") == 1)
        #expect(hub.publish(topic: "t", json: "2") == 1)
        hub.subscribe(b, topic: "t", variant: "x")
        #expect(hub.publish(topic: "t", json: "3") == 2)
        hub.subscribe(b, topic: "t", variant: "y")
        #expect(hub.publish(topic: "t", json: "4") == 3)
        hub.unsubscribe(b, topic: "t", variant: "x")
        #expect(hub.publish(topic: "t", json: "5") == 2)
        hub.unregister(a)
        #expect(hub.publish(topic: "t", json: "6") == 1)
        hub.unregister(b)
        #expect(hub.publish(topic: "t", json: "7") == 0)
        #expect(a.pendingStrings() == ["x|t|1", "x|t|2", "x|t|3", "x|t|4", "x|t|5"])
        #expect(b.pendingStrings() == ["x|t|3", "x|t|4", "y|t|4", "y|t|5", "y|t|6"])
    }

    @Test func rateLimiterAllowsTheBurstThenRefillsWithTime() {
        let clock = ManualHubClock()
        let limiter = RateLimiter(limit: RateLimit(ratePerSecond: 5), clock: clock.clock)
        #expect((0..<5).allSatisfy { _ in limiter.allow("u1") })
        #expect(!limiter.allow("u1"))
        #expect(limiter.allow("u2"))
        clock.advance(by: .milliseconds(199))
        #expect(!limiter.allow("u1"))
        clock.advance(by: .milliseconds(2))
        #expect(limiter.allow("u1"))
        #expect(!limiter.allow("u1"))
        clock.advance(by: .seconds(10))
        #expect((0..<5).allSatisfy { _ in limiter.allow("u1") })
        #expect(!limiter.allow("u1"))
    }

    /// Issue 17: the rate limiter's table holds the buckets still refilling plus at most one prune
    /// interval of new keys, however many distinct users or guests come and go.
    @Test func rateLimiterBucketsOfIdleKeysAreForgotten() {
        let clock = ManualHubClock()
        let limiter = RateLimiter(limit: RateLimit(ratePerSecond: 5, burst: 10), clock: clock.clock)
        for i in 0..<50_000 {
            _ = limiter.allow("c:\(i)")
            if i % 100 == 0 { clock.advance(by: .seconds(3)) }  // a full refill takes 2 s
            #expect(limiter.trackedKeys <= 1_024 + 100)
        }
        limiter.forget("c:49999")
        #expect(limiter.trackedKeys <= 1_024 + 100)
    }

    /// Issue 17: a user holds at most `maxConnectionsPerUser` connections per protocol; one more is
    /// refused without changing anything, and a connection that closes frees its place.
    @Test func setIdentityRefusesAUserAtTheConnectionLimit() throws {
        let hub = Hub(configuration: .init(maxConnectionsPerUser: 2))
        let alice = HubIdentity(userId: "alice", username: "Alice")
        let tabs = try (0..<3).map { _ in try hub.register(format: .stomp) }
        #expect(!hub.setIdentity(alice, for: tabs[0]).refusedAtUserLimit)
        #expect(!hub.setIdentity(alice, for: tabs[1]).refusedAtUserLimit)
        #expect(!hub.setIdentity(alice, for: tabs[1]).refusedAtUserLimit, "the same identity again is no new connection")
        let refused = hub.setIdentity(alice, for: tabs[2])
        #expect(refused.refusedAtUserLimit)
        #expect(tabs[2].identity == nil)
        #expect(hub.connections(ofUser: "alice").count == 2)
        // Another protocol has its own count (a tab is one STOMP and one Socket.IO socket).
        let bell = try hub.register(format: .socketIO)
        #expect(!hub.setIdentity(alice, for: bell).refusedAtUserLimit)
        // Other users are not affected.
        #expect(!hub.setIdentity(HubIdentity(userId: "bob", username: "Bob"), for: tabs[2]).refusedAtUserLimit)
        hub.unregister(tabs[0])
        let later = try hub.register(format: .stomp)
        #expect(!hub.setIdentity(alice, for: later).refusedAtUserLimit)
        #expect(hub.snapshot().usersByProtocol == ["stomp": 2, "socketio": 1])
    }

    @Test func shutdownClosesEveryConnectionAndRefusesNewOnes() async throws {
        let hub = Hub(configuration: .init(shutdownGracePeriod: .milliseconds(50)))
        let c = try hub.register(format: testFormat)
        await hub.shutdown()
        #expect(c.takePendingOutbound() == [.close(.shutdown)])
        #expect(throws: Hub.RegistrationError.shuttingDown) { try hub.register(format: testFormat) }
    }
}

@Suite("Outbound queue")
struct OutboundQueueTests {
    @Test func aClientThatKeepsUpIsNeverDroppedWhateverTheTotalTraffic() async throws {
        let hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: 4, maxBytes: 1000)))
        let c = try hub.register(format: .socketIO)
        hub.subscribe(c, topic: "t")
        // A transport that takes what is queued after every publish (as a drain does).
        var received = 0
        let payload = "\"" + String(repeating: "x", count: 300) + "\""
        for _ in 1...50 {
            hub.publish(topic: "t", json: payload)
            received += c.takePendingOutbound().count
        }
        #expect(received == 50)
        #expect(!c.wasDroppedAsSlow)
    }

    @Test func sockJSFramesAreMergedIntoOneArray() {
        let a = HubWireFormat.stompSockJS.encoder.encode(HubMessage(destination: "/t", payload: .init(string: "1")), variant: "s")
        let b = HubWireFormat.stompSockJS.encoder.encode(HubMessage(destination: "/t", payload: .init(string: "2")), variant: "s")
        let merged = SockJSFraming.merge([a.buffer, b.buffer])
        let text = String(buffer: merged)
        #expect(text.hasPrefix(#"a["MESSAGE"#))
        #expect(text.contains(#"\u0000","MESSAGE"#))
        #expect(text.hasSuffix(#"\u0000"]"#))
    }
}
