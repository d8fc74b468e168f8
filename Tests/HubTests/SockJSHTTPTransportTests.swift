@testable import Hub
import NIOCore
import Synchronization
import Testing

/// SockJS's HTTP transports (`xhr`, `xhr_streaming`, `xhr_send`) on the hub, without HTTP: what each
/// receiving request gets, in order; the one-receiver rule; the disconnect delay; the limits.
@Suite("SockJS HTTP transports")
struct SockJSHTTPTransportTests {
    static let connect = #"["CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u0000"]"#
    static func subscribe(_ topic: String, id: String = "sub-0") -> String {
        #"["SUBSCRIBE\nid:\#(id)\ndestination:\#(topic)\nreceipt:r-\#(id)\n\n\u0000"]"#
    }

    struct Setup {
        let hub: Hub
        let backend: TestLiveRoomBackend
        let transport: SockJSHTTPTransport
    }

    static func make(
        hub: Hub = Hub(), stomp: STOMPConfiguration = STOMPConfiguration(tickInterval: .milliseconds(20)),
        configuration: SockJSHTTPConfiguration = .init(), admission: SockJSHTTPAdmission? = nil
    ) -> Setup {
        let backend = TestLiveRoomBackend()
        let endpoint = STOMPEndpoint(hub: hub, backend: backend, authenticator: TestAuthenticator(), configuration: stomp)
        return Setup(hub: hub, backend: backend, transport: SockJSHTTPTransport(endpoint: endpoint, configuration: configuration, admission: admission, logger: testLogger))
    }

    /// One `xhr` request (its HTTP connection stays open unless `connected` says otherwise).
    static func poll(_ transport: SockJSHTTPTransport, _ session: String, connected: Flag? = nil) async throws -> String {
        let receiving = try transport.open(server: "000", session: session, peer: nil, queryToken: nil).get()
        let body = await transport.poll(receiving, isConnected: { connected?.value.load(ordering: .relaxed) ?? true }, abort: {})
        return String(buffer: body)
    }

    /// Polls until a response ends with the close frame; what the responses held, joined.
    static func pollUntilClosed(_ transport: SockJSHTTPTransport, _ session: String) async throws -> String {
        var all = ""
        for _ in 0..<10 {
            all += try await poll(transport, session)
            if all.hasSuffix(#"c[3000,"Go away!"]"# + "\n") { return all }
        }
        Issue.record("no close frame in 10 polls: \(all)")
        return all
    }

    static func send(_ transport: SockJSHTTPTransport, _ session: String, _ body: String) -> SockJSHTTPTransport.SendOutcome {
        transport.send(server: "000", session: session, body: ByteBuffer(string: body))
    }

    /// Opens a session by polling, CONNECTs and subscribes to `topic`.
    static func connected(_ setup: Setup, _ session: String, topic: String) async throws {
        #expect(try await poll(setup.transport, session) == "o\n")
        #expect(send(setup.transport, session, connect) == .accepted)
        #expect(try await poll(setup.transport, session).hasPrefix(#"a["CONNECTED\nversion:1.2\n"#))
        #expect(send(setup.transport, session, subscribe(topic)) == .accepted)
        #expect(try await poll(setup.transport, session) == #"a["RECEIPT\nreceipt-id:r-sub-0\n\n\u0000"]"# + "\n")
    }

    @Test func pollingOpensWithOAndAnswersWithWhatIsQueuedInOrderAsOneLine() async throws {
        let setup = Self.make()
        try await Self.connected(setup, "s1", topic: "/topic/live/1/chat")
        for n in 1...3 { #expect(setup.hub.publish(topic: "/topic/live/1/chat", json: #"{"n":\#(n)}"#) == 1) }
        let body = try await Self.poll(setup.transport, "s1")
        // one a[…] frame holding the three MESSAGEs, in publish order
        #expect(body.hasPrefix(#"a["MESSAGE\n"#) && body.hasSuffix("\"]\n"))
        #expect(body.split(separator: "\n", omittingEmptySubsequences: false).count == 2)
        let n1 = try #require(body.firstRange(of: #"{\"n\":1}"#)), n2 = try #require(body.firstRange(of: #"{\"n\":2}"#))
        let n3 = try #require(body.firstRange(of: #"{\"n\":3}"#))
        #expect(n1.lowerBound < n2.lowerBound && n2.lowerBound < n3.lowerBound)
    }

    @Test func aHeldPollIsAnsweredWhenSomethingArrives() async throws {
        let setup = Self.make()
        try await Self.connected(setup, "s1", topic: "/topic/live/1/chat")
        let held = Task { try await Self.poll(setup.transport, "s1") }
        #expect(await eventually { setup.transport.hasReceiver(session: "s1") })
        #expect(setup.hub.publish(topic: "/topic/live/1/chat", json: #"{"late":true}"#) == 1)
        let body = try await held.value
        #expect(body.contains(#"{\"late\":true}"#))
    }

    @Test func aSecondReceiverGetsAnotherConnectionStillOpenAndTheFirstKeepsTheSession() async throws {
        let setup = Self.make()
        try await Self.connected(setup, "s1", topic: "/topic/live/1/chat")
        let held = Task { try await Self.poll(setup.transport, "s1") }
        #expect(await eventually { setup.transport.hasReceiver(session: "s1") })
        #expect(try await Self.poll(setup.transport, "s1") == #"c[2010,"Another connection still open"]"# + "\n")
        #expect(setup.hub.publish(topic: "/topic/live/1/chat", json: #"{"x":1}"#) == 1)
        #expect(try await held.value.contains(#"{\"x\":1}"#))
        #expect(setup.transport.sessionCount == 1)
    }

    @Test func streamingSendsThePreludeThenFramesAsLinesAndEndsAfterTheByteLimit() async throws {
        let setup = Self.make(configuration: SockJSHTTPConfiguration(streamBytesLimit: 4096))
        let chunks = Mutex<[String]>([])
        let receiving = try setup.transport.open(server: "000", session: "st", peer: nil, queryToken: nil).get()
        #expect(receiving.isNew)
        let ended = Flag(false)
        let streaming = Task {
            await setup.transport.stream(receiving, isConnected: { true }, abort: {}) { chunk in
                chunks.withLock { $0.append(String(buffer: chunk)) }
            }
            ended.value.store(true, ordering: .relaxed)
        }
        #expect(await eventually { chunks.withLock { $0.count } == 2 })
        #expect(chunks.withLock { $0[0] } == String(repeating: "h", count: 2048) + "\n")
        #expect(chunks.withLock { $0[1] } == "o\n")
        #expect(Self.send(setup.transport, "st", Self.connect) == .accepted)
        #expect(Self.send(setup.transport, "st", Self.subscribe("/topic/live/1/chat")) == .accepted)
        #expect(await eventually { chunks.withLock { $0.joined().contains("RECEIPT") } })
        // 200-byte payloads until the response passes 4096 bytes after its prelude
        let payload = #"{"m":""# + String(repeating: "x", count: 200) + #""}"#
        var published = 0
        while !ended.value.load(ordering: .relaxed) && published < 100 {
            #expect(setup.hub.publish(topic: "/topic/live/1/chat", json: payload) == 1)
            published += 1
            try await Task.sleep(for: .milliseconds(5))
        }
        await streaming.value
        let body = chunks.withLock { $0.dropFirst().joined() }
        #expect(body.utf8.count >= 4096 && body.utf8.count < 4096 + 2048)
        #expect(body.hasSuffix("\n"))
        for line in body.split(separator: "\n") { #expect(line == "o" || line.hasPrefix("a[")) }
        // the session lives on: the next streaming request carries on with what came after
        #expect(setup.transport.sessionCount == 1)
        let next = try setup.transport.open(server: "000", session: "st", peer: nil, queryToken: nil).get()
        #expect(!next.isNew)
        #expect(setup.hub.publish(topic: "/topic/live/1/chat", json: #"{"after":1}"#) == 1)
        let more = Mutex<[String]>([])
        let again = Task {
            await setup.transport.stream(next, isConnected: { true }, abort: {}) { chunk in more.withLock { $0.append(String(buffer: chunk)) } }
        }
        #expect(await eventually { more.withLock { $0.joined().contains(#"{\"after\":1}"#) } })
        again.cancel()
        await again.value
    }

    @Test func aSessionWithNoReceiverForTheDisconnectDelayIsClosedAndItsSTOMPSessionEnds() async throws {
        let setup = Self.make(configuration: SockJSHTTPConfiguration(disconnectDelay: .milliseconds(300)))
        try await Self.connected(setup, "gone", topic: "/topic/live/1/chat")
        #expect(setup.hub.snapshot().connections == 1)
        #expect(await eventually { setup.transport.sessionCount == 0 })
        #expect(await eventually { setup.backend.closed.withLock { $0.count } == 1 })
        #expect(setup.hub.snapshot().connections == 0)
        // xhr_send to it is now a 404, and a new poll opens a new session
        #expect(Self.send(setup.transport, "gone", #"["x"]"#) == .unknownSession)
        #expect(try await Self.poll(setup.transport, "gone") == "o\n")
    }

    @Test func aReceiverWhoseConnectionClosedIsLetGoAndTheSessionThenTimesOut() async throws {
        let setup = Self.make(configuration: SockJSHTTPConfiguration(disconnectDelay: .milliseconds(300)))
        try await Self.connected(setup, "s1", topic: "/topic/live/1/chat")
        let connected = Flag()
        let held = Task { try await Self.poll(setup.transport, "s1", connected: connected) }
        #expect(await eventually { setup.transport.hasReceiver(session: "s1") })
        connected.value.store(false, ordering: .relaxed)
        #expect(try await held.value == "")
        #expect(await eventually { setup.transport.sessionCount == 0 })
        #expect(await eventually { setup.backend.closed.withLock { $0.count } == 1 })
    }

    @Test func xhrSendRefusesBrokenBodiesAndUnknownSessionsAndTheSessionCarriesOn() async throws {
        let setup = Self.make()
        #expect(Self.send(setup.transport, "nope", Self.connect) == .unknownSession)
        #expect(try await Self.poll(setup.transport, "s1") == "o\n")
        #expect(Self.send(setup.transport, "s1", #"["x"#) == .invalidBody(.brokenJSON))
        #expect(Self.send(setup.transport, "s1", "") == .invalidBody(.payloadExpected))
        #expect(Self.send(setup.transport, "s1", "[1]") == .invalidBody(.payloadExpected))
        #expect(Self.send(setup.transport, "s1", #""CONNECT""#) == .invalidBody(.payloadExpected))
        #expect(Self.send(setup.transport, "s1", Self.connect) == .accepted)
        #expect(try await Self.poll(setup.transport, "s1").hasPrefix(#"a["CONNECTED"#))
        // invalid path segments are unknown sessions
        #expect(setup.transport.send(server: "0.0", session: "s1", body: ByteBuffer(string: Self.connect)) == .unknownSession)
        #expect(!setup.transport.isValidPath(server: "000", session: "a.b"))
        #expect(!setup.transport.isValidPath(server: "000", session: ""))
        #expect(!setup.transport.isValidPath(server: "000", session: String(repeating: "s", count: 65)))
        #expect(setup.transport.isValidPath(server: "abc_i-j%20", session: String(repeating: "s", count: 64)))
    }

    @Test func aStompErrorClosesTheSessionWhichThenAnswersGoAway() async throws {
        let setup = Self.make(configuration: SockJSHTTPConfiguration(disconnectDelay: .milliseconds(500)))
        #expect(try await Self.poll(setup.transport, "s1") == "o\n")
        #expect(Self.send(setup.transport, "s1", #"["NOT-A-COMMAND\n\n\u0000"]"#) == .accepted)
        let body = try await Self.pollUntilClosed(setup.transport, "s1")
        #expect(body.hasPrefix(#"a["ERROR\n"#))
        #expect(try await Self.poll(setup.transport, "s1") == #"c[3000,"Go away!"]"# + "\n")
        #expect(Self.send(setup.transport, "s1", Self.connect) == .unknownSession)
        #expect(await eventually { setup.hub.snapshot().connections == 0 })
        #expect(await eventually { setup.transport.sessionCount == 0 })
    }

    @Test func theConnectDeadlineClosesASessionThatNeverSendsConnect() async throws {
        let setup = Self.make(stomp: STOMPConfiguration(connectTimeout: .milliseconds(200), tickInterval: .milliseconds(20)))
        #expect(try await Self.poll(setup.transport, "s1") == "o\n")
        let body = try await Self.pollUntilClosed(setup.transport, "s1")
        #expect(body.hasPrefix(#"a["ERROR\nmessage:no CONNECT frame received in time"#))
        #expect(await eventually { setup.hub.snapshot().connections == 0 })
    }

    @Test func aConnectDeadlineWithNobodyPollingLeavesItsErrorForTheNextPoll() async throws {
        let setup = Self.make(stomp: STOMPConfiguration(connectTimeout: .milliseconds(100), tickInterval: .milliseconds(20)))
        #expect(try await Self.poll(setup.transport, "s1") == "o\n")
        #expect(await eventually { setup.hub.snapshot().connections == 0 })
        let body = try await Self.poll(setup.transport, "s1")
        #expect(body.hasPrefix(#"a["ERROR\nmessage:no CONNECT frame received in time"#))
        #expect(body.hasSuffix("\n" + #"c[3000,"Go away!"]"# + "\n"))
        #expect(try await Self.poll(setup.transport, "s1") == #"c[3000,"Go away!"]"# + "\n")
    }

    @Test func aQuietSessionGetsTheSockJSHeartbeat() async throws {
        let setup = Self.make(stomp: STOMPConfiguration(sockJSHeartbeatInterval: .milliseconds(200), tickInterval: .milliseconds(20)))
        #expect(try await Self.poll(setup.transport, "s1") == "o\n")
        #expect(Self.send(setup.transport, "s1", Self.connect) == .accepted)
        // On a loaded machine a heart-beat may come before CONNECTED (200 ms without a write); the
        // session then goes quiet and its polls get `h`, nothing else.
        var answers: [String] = []
        for _ in 0..<5 {
            answers.append(try await Self.poll(setup.transport, "s1"))
            if answers.last == "h\n", answers.contains(where: { $0.hasPrefix(#"a["CONNECTED"#) }) { break }
        }
        #expect(answers.filter { $0 != "h\n" }.count == 1, "\(answers)")
        #expect(answers.first { $0 != "h\n" }?.hasPrefix(#"a["CONNECTED\nversion:1.2\n"#) == true)
        #expect(answers.last == "h\n")
    }

    @Test func aSessionNobodyReadsIsDroppedAtItsQueueLimit() async throws {
        let hub = Hub(configuration: HubConfiguration(outboundQueue: OutboundQueueLimits(maxFrames: 8, maxBytes: 1 << 20)))
        let setup = Self.make(hub: hub)
        try await Self.connected(setup, "slow", topic: "/topic/live/1/chat")
        for n in 0..<20 { _ = hub.publish(topic: "/topic/live/1/chat", json: #"{"n":\#(n)}"#) }
        #expect(hub.snapshot().slowClientDrops == 1)
        #expect(try await Self.poll(setup.transport, "slow") == #"c[3000,"Go away!"]"# + "\n")
        #expect(await eventually { hub.snapshot().connections == 0 })
    }

    @Test func sessionsAreLimitedInAllAndPerAddressAndAnExpiredOneGivesItsPlaceBack() async throws {
        let held = Mutex<[String: Int]>([:])
        let admission = SockJSHTTPAdmission(
            limitDescription: "open WebSockets",
            acquire: { key in
                held.withLock { h in
                    guard h[key, default: 0] < 1 else { return false }
                    h[key, default: 0] += 1
                    return true
                }
            },
            release: { key in held.withLock { $0[key, default: 0] -= 1 } })
        let setup = Self.make(configuration: SockJSHTTPConfiguration(disconnectDelay: .milliseconds(300), maxSessions: 2), admission: admission)
        let t = setup.transport
        _ = try t.open(server: "1", session: "a", peer: "10.0.0.1", queryToken: nil).get()
        #expect(throws: SockJSHTTPTransport.Refusal.self) { try t.open(server: "1", session: "b", peer: "10.0.0.1", queryToken: nil).get() }
        if case .failure(let refusal) = t.open(server: "1", session: "b", peer: "10.0.0.1", queryToken: nil) {
            #expect(refusal.status == 429)
            #expect(refusal.code == "TOO_MANY_CONNECTIONS")
        }
        // the same session again is no new place
        #expect(try !t.open(server: "1", session: "a", peer: "10.0.0.1", queryToken: nil).get().isNew)
        _ = try t.open(server: "1", session: "c", peer: "10.0.0.2", queryToken: nil).get()
        if case .failure(let refusal) = t.open(server: "1", session: "d", peer: "10.0.0.3", queryToken: nil) {
            #expect(refusal.status == 503)
            #expect(refusal.code == "TOO_MANY_SESSIONS")
        } else {
            Issue.record("a third session was opened over maxSessions 2")
        }
        #expect(t.sessionCount == 2)
        // nobody polls: both expire and give their places back
        #expect(await eventually { t.sessionCount == 0 })
        #expect(held.withLock { $0.values.allSatisfy { $0 == 0 } })
        #expect(try t.open(server: "1", session: "b", peer: "10.0.0.1", queryToken: nil).get().isNew)
    }

    @Test func shutdownSaysGoodbyeToAWaitingReceiver() async throws {
        let setup = Self.make()
        try await Self.connected(setup, "s1", topic: "/topic/live/1/chat")
        let held = Task { try await Self.poll(setup.transport, "s1") }
        #expect(await eventually { setup.transport.hasReceiver(session: "s1") })
        await setup.hub.shutdown()
        let body = try await held.value
        #expect(body.contains(#"a["ERROR\nmessage:server shutting down"#))
        #expect(body.hasSuffix(#"c[3000,"Go away!"]"# + "\n"))
        #expect(setup.hub.snapshot().connections == 0)
        if case .failure(let refusal) = setup.transport.open(server: "0", session: "new", peer: nil, queryToken: nil) {
            #expect(refusal.status == 503)
        } else {
            Issue.record("a session was opened during shutdown")
        }
    }

    @Test func sendFramingHelpers() throws {
        #expect(SockJSFraming.streamingPrelude.utf8.count == 2049)
        #expect(SockJSFraming.anotherConnectionStillOpen == #"c[2010,"Another connection still open"]"#)
        #expect(try SockJSFraming.decodeSendBody(Array(#"["a","b\u0000"]"#.utf8)) == ["a", "b\u{0}"])
        #expect(try SockJSFraming.decodeSendBody(Array("[]".utf8)) == [])
        #expect(throws: SockJSFraming.SendBodyError.payloadExpected) { try SockJSFraming.decodeSendBody([UInt8]()) }
        #expect(throws: SockJSFraming.SendBodyError.brokenJSON) { try SockJSFraming.decodeSendBody(Array(" ".utf8)) }
        #expect(throws: SockJSFraming.SendBodyError.payloadExpected) { try SockJSFraming.decodeSendBody(Array("{}".utf8)) }
        #expect(SockJSFraming.SendBodyError.brokenJSON.message == "Broken JSON encoding.")
        #expect(SockJSFraming.SendBodyError.payloadExpected.message == "Payload expected.")
    }
}

/// An HTTP connection's "still open", as a test sets it.
final class Flag: Sendable {
    let value: Atomic<Bool>
    init(_ value: Bool = true) { self.value = Atomic(value) }
}
