import Logging
import NIOCore
import Synchronization
import Testing

@testable import Hub

/// engine.io-protocol v4 long-polling payloads: packets separated by 0x1E, binary as `b` + base64.
@Suite struct EngineIOPayloadTests {
    func decode(_ text: String, maxPayload: Int = 1000) throws(EngineIOPayload.DecodeError) -> [EngineIOPayload.Packet] {
        try EngineIOPayload.decode(ByteBuffer(string: text), maxPayload: maxPayload)
    }

    @Test func packetsAreSplitAtTheRecordSeparator() throws {
        #expect(try self.decode("4hello\u{1E}4€€€") == [.text("4hello"), .text("4€€€")])
        #expect(try self.decode("40") == [.text("40")])
        #expect(try self.decode("2\u{1E}3\u{1E}42[\"a\",\"b\"]") == [.text("2"), .text("3"), .text(#"42["a","b"]"#)])
        // engine.io-parser's own example: "4hello\x1ebAQID".
        #expect(try self.decode("4hello\u{1E}bAQID") == [.text("4hello"), .binary(byteCount: 3)])
        #expect(try self.decode("bAQ==") == [.binary(byteCount: 1)])
    }

    @Test func malformedPayloadsAreRefusedWhole() {
        #expect(throws: EngineIOPayload.DecodeError.empty) { try self.decode("") }
        #expect(throws: EngineIOPayload.DecodeError.emptyPacket(index: 1)) { try self.decode("40\u{1E}") }
        #expect(throws: EngineIOPayload.DecodeError.emptyPacket(index: 0)) { try self.decode("\u{1E}40") }
        #expect(throws: EngineIOPayload.DecodeError.emptyPacket(index: 1)) { try self.decode("2\u{1E}\u{1E}3") }
        #expect(throws: EngineIOPayload.DecodeError.invalidBase64(index: 0)) { try self.decode("b!!!!") }
        #expect(throws: EngineIOPayload.DecodeError.invalidBase64(index: 1)) { try self.decode("2\u{1E}bAQI") }
        #expect(throws: EngineIOPayload.DecodeError.invalidBase64(index: 0)) { try self.decode("bA=QI") }
        #expect(throws: EngineIOPayload.DecodeError.tooLarge(11)) { try self.decode("42[\"aaaaa\"]", maxPayload: 10) }
    }

    @Test func framesAreJoinedAndBinaryIsBase64() throws {
        let body = EngineIOPayload.encode([.text(ByteBuffer(string: "2")), .text(ByteBuffer(string: #"42["x",1]"#)), .binary(ByteBuffer(bytes: [1, 2, 3]))])
        #expect(String(buffer: body) == "2\u{1E}42[\"x\",1]\u{1E}bAQID")
        #expect(String(buffer: EngineIOPayload.encode([.binary(ByteBuffer(bytes: [0xFF]))])) == "b/w==")
        #expect(String(buffer: EngineIOPayload.encode(texts: ["6"])) == "6")
        let packets = ["0{\"sid\":\"x\"}", "40", #"42["é",{"a":"\u001e"}]"#]
        #expect(try EngineIOPayload.decode(EngineIOPayload.encode(texts: packets), maxPayload: 1000) == packets.map { .text($0) })
    }
}

/// Counts sessions per address with a limit (the Server's `ConnectionsPerAddress` does this).
final class TestAdmission: HubAddressAdmission {
    let limit: Int
    let open = Mutex<[String: Int]>([:])
    init(limit: Int) { self.limit = limit }
    func acquire(_ address: String) -> Bool {
        self.open.withLock { open in
            guard open[address, default: 0] < self.limit else { return false }
            open[address, default: 0] += 1
            return true
        }
    }
    func release(_ address: String) { self.open.withLock { $0[address, default: 0] -= 1 } }
    func count(_ address: String) -> Int { self.open.withLock { $0[address, default: 0] } }
}

/// The bell's long-polling transport (`EngineIOPolling` over `PolledConnection`), driven as the
/// Server's routes drive it; the upgrade over a real loopback WebSocket.
@Suite struct EngineIOPollingTests {
    struct Rig {
        let clock = ManualHubClock()
        let hub: Hub
        let backend = TestBellBackend()
        let polling: EngineIOPolling

        init(configuration: SocketIOConfiguration = .init(tickInterval: .milliseconds(10)), limits: EngineIOPolling.Limits = .init(), admission: TestAdmission? = nil) {
            self.hub = Hub(clock: self.clock.clock)
            let endpoint = SocketIOEndpoint(hub: self.hub, backend: self.backend, authenticator: TestAuthenticator(), configuration: configuration)
            self.polling = EngineIOPolling(endpoint: endpoint, limits: limits, perAddress: admission)
        }

        func query(_ sid: String?) -> [String: String] {
            var q = ["EIO": "4", "transport": "polling", "t": "x1"]
            if let sid { q["sid"] = sid }
            return q
        }

        /// A handshake: the open packet's sid.
        func open(address: String? = "10.0.0.1") async throws -> String {
            let answer = await self.polling.get(query: self.query(nil), address: address, logger: testLogger)
            #expect(answer.status == 200)
            #expect(answer.contentType == "text/plain; charset=UTF-8")
            let text = answer.text
            #expect(text.hasPrefix(#"0{"#) && text.contains(#""upgrades":["websocket"]"#), "\(text)")
            let json = try JSONValue(parsing: Array(text.utf8.dropFirst()))
            return try #require(json["sid"]?.stringValue)
        }

        func get(_ sid: String) async -> EngineIOPolling.Answer {
            await self.polling.get(query: self.query(sid), address: "10.0.0.1", logger: testLogger)
        }

        /// The packets of one GET's answer.
        func packets(_ sid: String) async -> [String] {
            let answer = await self.get(sid)
            #expect(answer.status == 200, "\(answer.text)")
            return answer.text.split(separator: "\u{1E}", omittingEmptySubsequences: false).map(String.init)
        }

        func post(_ sid: String, _ packets: [String]) async -> EngineIOPolling.Answer {
            await self.polling.post(query: self.query(sid), body: EngineIOPayload.encode(texts: packets), logger: testLogger)
        }

        /// Handshake, `40{"token"}` by POST, and the `40{"sid"}` answer.
        func joined(_ user: String) async throws -> (sid: String, socketSid: String) {
            let sid = try await self.open()
            #expect(await self.post(sid, [#"40{"token":"good-\#(user)"}"#]).text == "ok")
            let reply = await self.packets(sid)
            #expect(reply.count == 1 && reply[0].hasPrefix(#"40{"sid":""#), "\(reply)")
            let socketSid = try #require(try JSONValue(parsing: Array(reply[0].utf8.dropFirst(2)))["sid"]?.stringValue)
            return (sid, socketSid)
        }

        func session(_ sid: String) throws -> EngineIOPollingSession { try #require(self.polling.session(sid)) }
    }

    @Test func aClientConnectsByPollingReceivesPushesInOrderAndGetsAcks() async throws {
        let rig = Rig()
        let (sid, _) = try await rig.joined("u1")
        #expect(await eventually { rig.backend.connected.withLock { $0 } == ["u1:true"] })
        // Packets that wait are answered at once, all of them, in order.
        for i in 1...3 { rig.hub.sendToUser(userId: "u1", event: "notification:new", json: #"{"n":\#(i)}"#) }
        #expect(await rig.packets(sid) == (1...3).map { #"42["notification:new",{"n":\#($0)}]"# })
        // A batch from the client is handled in order; the acks come back in one poll.
        #expect(await rig.post(sid, [#"421["notification:read",{"notificationId":"a"}]"#, #"422["notification:read",{"notificationId":"b"}]"#]).text == "ok")
        #expect(await rig.packets(sid) == [#"431[{"ok":true,"notificationId":"a"}]"#, #"432[{"ok":true,"notificationId":"b"}]"#])
        #expect(rig.backend.events.withLock { $0 } == ["notification:read", "notification:read"])
        // A poll with nothing waiting waits, and a push answers it.
        async let waiting = rig.packets(sid)
        #expect(await eventually { (try? rig.session(sid).polled.hasWaitingPoll) == true })
        rig.hub.sendToUser(userId: "u1", event: "unreadCount:updated", json: #"{"count":0}"#)
        #expect(await waiting == [#"42["unreadCount:updated",{"count":0}]"#])
        // The client leaves: `41` then `1`.
        #expect(await rig.post(sid, ["41", "1"]).text == "ok")
        #expect(await rig.packets(sid) == ["1"])
        #expect(await eventually { rig.backend.disconnected.withLock { $0 } == ["u1:true"] && rig.polling.sessionCount == 0 })
        #expect(await rig.get(sid).text == #"{"code":1,"message":"Session ID unknown"}"#)
        #expect(rig.hub.snapshot().connections == 0)
    }

    @Test func pingsGoOutByPollingAndAPongKeepsTheSessionAlive() async throws {
        let rig = Rig(configuration: .init(pingInterval: 1000, pingTimeout: 500, tickInterval: .milliseconds(10)))
        let (sid, _) = try await rig.joined("u2")
        rig.clock.advance(by: .milliseconds(1000))
        #expect(await rig.packets(sid) == ["2"])  // the server's ping
        #expect(await rig.post(sid, ["3"]).text == "ok")
        rig.clock.advance(by: .milliseconds(1000))
        #expect(await rig.packets(sid) == ["2"])
        #expect(await rig.post(sid, ["3"]).text == "ok")
        #expect(rig.polling.sessionCount == 1)
        // A poll with nothing to say waits at most the ping interval, then is answered with a noop.
        async let waiting = rig.get(sid)
        #expect(await eventually { (try? rig.session(sid).polled.hasWaitingPoll) == true })
        rig.clock.advance(by: .milliseconds(1000))
        let answer = await waiting
        #expect(answer.text == "6" || answer.text == "2", "\(answer.text)")  // a noop, or the ping due at the same time
    }

    @Test func aSecondWaitingPollClosesTheSessionAsEngineIODoes() async throws {
        let rig = Rig()
        let (sid, _) = try await rig.joined("u3")
        async let first = rig.get(sid)
        #expect(await eventually { (try? rig.session(sid).polled.hasWaitingPoll) == true })
        let second = await rig.get(sid)
        #expect(second.status == 400 && second.text == #"{"code":3,"message":"Bad request"}"#)
        #expect(await first.text == "1")
        #expect(await eventually { rig.backend.disconnected.withLock { $0 } == ["u3:true"] && rig.polling.sessionCount == 0 })
        #expect(await rig.get(sid).status == 400)
    }

    @Test func anAbandonedSessionIsClosedAfterPingIntervalPlusTimeout() async throws {
        let admission = TestAdmission(limit: 5)
        let rig = Rig(configuration: .init(pingInterval: 1000, pingTimeout: 500, tickInterval: .milliseconds(10)), admission: admission)
        let (_, _) = try await rig.joined("u4")
        #expect(admission.count("10.0.0.1") == 1)
        rig.clock.advance(by: .milliseconds(1400))
        try await Task.sleep(for: .milliseconds(100))
        #expect(rig.polling.sessionCount == 1)  // not yet
        rig.clock.advance(by: .milliseconds(200))
        #expect(await eventually { rig.polling.sessionCount == 0 })
        #expect(await eventually { rig.backend.disconnected.withLock { $0 } == ["u4:true"] })
        #expect(rig.hub.snapshot().connections == 0 && rig.hub.snapshot().users == 0)
        #expect(admission.count("10.0.0.1") == 0)
    }

    @Test func aSessionThatNeverJoinsIsClosedAtTheConnectTimeout() async throws {
        let rig = Rig(configuration: .init(pingInterval: 100_000, pingTimeout: 100_000, connectTimeout: .seconds(5), tickInterval: .milliseconds(10)))
        let sid = try await rig.open()
        async let waiting = rig.packets(sid)
        #expect(await eventually { (try? rig.session(sid).polled.hasWaitingPoll) == true })
        rig.clock.advance(by: .seconds(6))
        #expect(await waiting == ["1"])
        #expect(await eventually { rig.polling.sessionCount == 0 && rig.hub.snapshot().connections == 0 })
    }

    @Test func anUnauthenticatedSessionIsClosedAtTheAuthDeadline() async throws {
        let rig = Rig(configuration: .init(missingToken: .requireAuthEvent(timeout: .seconds(10)), tickInterval: .milliseconds(10)))
        let sid = try await rig.open()
        #expect(await rig.post(sid, ["40"]).text == "ok")
        #expect(await rig.packets(sid).first?.hasPrefix(#"40{"sid""#) == true)
        rig.clock.advance(by: .seconds(11))
        // `41` may answer the waiting poll alone (the close follows it into the queue): the next poll gets `1`.
        var last = await rig.packets(sid)
        if last == ["41"] { last += await rig.packets(sid) }
        #expect(last == ["41", "1"], "\(last)")
        #expect(await eventually { rig.polling.sessionCount == 0 })
    }

    @Test func limitsOnSessionsAddressesAndPayloads() async throws {
        let admission = TestAdmission(limit: 2)
        let rig = Rig(configuration: .init(maxPayload: 64, tickInterval: .milliseconds(10)), limits: .init(maxSessions: 3), admission: admission)
        let a = try await rig.open(address: "10.0.0.1")
        let b = try await rig.open(address: "10.0.0.1")
        let refused = await rig.polling.get(query: rig.query(nil), address: "10.0.0.1", logger: testLogger)
        #expect(refused.status == 429 && refused.text.contains("TOO_MANY_CONNECTIONS"))
        let c = try await rig.open(address: "10.0.0.2")
        let full = await rig.polling.get(query: rig.query(nil), address: "10.0.0.3", logger: testLogger)
        #expect(full.status == 503 && full.text.contains("TOO_MANY_SESSIONS"))
        #expect(rig.polling.sessionCount == 3 && admission.count("10.0.0.3") == 0)
        // A body above maxPayload: 413, that session closed, its neighbours unharmed.
        let big = await rig.post(a, [#"42["notification:read",{"notificationId":"\#(String(repeating: "x", count: 80))"}]"#])
        #expect(big.status == 413 && big.text.contains("PAYLOAD_TOO_LARGE"))
        #expect(rig.polling.payloadTooLarge(query: rig.query(b)).status == 413)  // the Server's path for a body it stopped reading
        #expect(await rig.packets(a) == ["1"])
        #expect(await rig.packets(b) == ["1"])
        #expect(await eventually { rig.polling.sessionCount == 1 && admission.count("10.0.0.1") == 0 })
        #expect(await rig.post(c, [#"40{"token":"good-u5"}"#]).text == "ok")
        #expect(await rig.packets(c).first?.hasPrefix("40{") == true)
        // Now the address has room again.
        _ = try await rig.open(address: "10.0.0.1")
    }

    @Test func badRequestsGetEngineIOErrors() async throws {
        let rig = Rig()
        func get(_ q: [String: String]) async -> String { await rig.polling.get(query: q, address: nil, logger: testLogger).text }
        #expect(await get(["EIO": "3", "transport": "polling"]) == #"{"code":5,"message":"Unsupported protocol version"}"#)
        #expect(await get(["EIO": "4", "transport": "flashsocket"]) == #"{"code":0,"message":"Transport unknown"}"#)
        #expect(await get(["EIO": "4"]) == #"{"code":0,"message":"Transport unknown"}"#)
        #expect(await get(["EIO": "4", "transport": "websocket"]) == #"{"code":3,"message":"Bad request"}"#)
        #expect(await get(["EIO": "4", "transport": "polling", "sid": "nope"]) == #"{"code":1,"message":"Session ID unknown"}"#)
        let noSid = await rig.polling.post(query: rig.query(nil), body: ByteBuffer(string: "40"), logger: testLogger)
        #expect(noSid.status == 400 && noSid.text == #"{"code":2,"message":"Bad handshake method"}"#)
        // A binary packet is dropped (the bell is text-only) and the session stays; malformed base64 closes it.
        let sid = try await rig.open()
        #expect(await rig.post(sid, ["bAQID"]).text == "ok")
        #expect(await rig.post(sid, [#"40{"token":"good-u6"}"#]).text == "ok")
        #expect(await rig.packets(sid).first?.hasPrefix("40{") == true)
        let bad = await rig.polling.post(query: rig.query(sid), body: ByteBuffer(string: "b!!\u{1E}40"), logger: testLogger)
        #expect(bad.status == 400 && bad.text == #"{"code":3,"message":"Bad request"}"#)
        #expect(await rig.packets(sid) == ["1"])
        #expect(await eventually { rig.backend.disconnected.withLock { $0 } == ["u6:true"] })
        // Polling can be switched off.
        let off = Rig(limits: .init(maxSessions: 0))
        #expect(await off.polling.get(query: off.query(nil), address: nil, logger: testLogger).text == #"{"code":0,"message":"Transport unknown"}"#)
    }

    @Test func shutdownAnswersTheWaitingPollWithClose() async throws {
        let rig = Rig()
        let (sid, _) = try await rig.joined("u7")
        async let waiting = rig.packets(sid)
        #expect(await eventually { (try? rig.session(sid).polled.hasWaitingPoll) == true })
        await rig.hub.shutdown()
        #expect(await waiting == ["1"])
        #expect(await eventually { rig.hub.snapshot().connections == 0 && rig.polling.sessionCount == 0 })
    }

    // MARK: Upgrade

    func upgrade(_ rig: Rig, sid: String) async throws -> WireSocket {
        guard case .accept(let attach) = rig.polling.upgradeVerdict(query: ["EIO": "4", "transport": "websocket", "sid": sid]) else {
            Issue.record("upgrade refused")
            throw CancellationError()
        }
        return try await WireSocket.open { channel in attach(channel, testLogger) }
    }

    @Test func theUpgradeHandsTheSameSessionToTheWebSocketWithNothingLostOrReordered() async throws {
        let rig = Rig()
        let (sid, socketSid) = try await rig.joined("u8")
        rig.hub.sendToUser(userId: "u8", event: "e", json: "1")
        #expect(await rig.packets(sid) == [#"42["e",1]"#])
        async let waiting = rig.packets(sid)
        #expect(await eventually { (try? rig.session(sid).polled.hasWaitingPoll) == true })
        let socket = try await self.upgrade(rig, sid: sid)
        socket.send(.text("2probe"))
        #expect(await eventually { socket.frames == ["3probe"] })
        #expect(await waiting == ["6"])  // the noop that lets the client pause polling
        // While the client pauses, pushes wait in the queue (and a poll would get them at once).
        rig.hub.sendToUser(userId: "u8", event: "e", json: "2")
        rig.hub.sendToUser(userId: "u8", event: "e", json: "3")
        socket.send(.text("5"))
        #expect(await eventually { socket.frames.count == 3 })
        rig.hub.sendToUser(userId: "u8", event: "e", json: "4")
        #expect(await eventually { socket.frames == ["3probe", #"42["e",2]"#, #"42["e",3]"#, #"42["e",4]"#] })
        // The same Socket.IO session: no new join, events and acks over the WebSocket.
        socket.send(.text(#"429["notification:read",{"notificationId":"z"}]"#))
        #expect(await eventually { socket.frames.last == #"439[{"ok":true,"notificationId":"z"}]"# })
        #expect(rig.backend.connected.withLock { $0 } == ["u8:true"])
        #expect(rig.hub.connections(ofUser: "u8").count == 1)
        #expect(rig.polling.sessionCount == 0)
        #expect(await rig.get(sid).text == #"{"code":1,"message":"Session ID unknown"}"#)
        _ = socketSid
        socket.send(.text("41"))
        #expect(await eventually { rig.backend.disconnected.withLock { $0 } == ["u8:true"] })
        socket.leave()
        await socket.closed()
        #expect(await eventually { rig.hub.snapshot().connections == 0 })
    }

    @Test func aFailedProbeLeavesTheSessionPolling() async throws {
        // Long enough that a loaded machine still delivers the wrong probe's `5` before it runs out.
        let rig = Rig(limits: .init(upgradeTimeout: .milliseconds(1500)))
        let (sid, _) = try await rig.joined("u9")
        // A probe that sends something else is closed; the session polls on.
        let wrong = try await self.upgrade(rig, sid: sid)
        wrong.send(.text("5"))  // `5` before `2probe`
        await wrong.closed()
        #expect(wrong.closedWith == 1002)
        rig.hub.sendToUser(userId: "u9", event: "e", json: "1")
        #expect(await rig.packets(sid) == [#"42["e",1]"#])
        // A probe that never finishes times out (real time: the event loop's timer).
        let silent = try await self.upgrade(rig, sid: sid)
        silent.send(.text("2probe"))
        #expect(await eventually { silent.frames == ["3probe"] })
        await silent.closed()
        rig.hub.sendToUser(userId: "u9", event: "e", json: "2")
        #expect(await rig.packets(sid) == [#"42["e",2]"#])
        #expect(rig.polling.sessionCount == 1)
        // An upgrade for an unknown sid, or of the wrong transport, is refused.
        guard case .reject(let unknown) = rig.polling.upgradeVerdict(query: ["EIO": "4", "transport": "websocket", "sid": "nope"]) else {
            Issue.record("an unknown sid was accepted")
            return
        }
        #expect(unknown.code == 1)
        guard case .reject(let polling) = rig.polling.upgradeVerdict(query: ["EIO": "4", "transport": "polling", "sid": sid]) else {
            Issue.record("a polling upgrade was accepted")
            return
        }
        #expect(polling.code == 3)
    }
}
