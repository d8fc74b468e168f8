import Hub
import Testing

@Suite("Engine.IO / Socket.IO packets")
struct SocketIOCodecTests {
    @Test func theHandshakeAnnouncesSidIntervalsAndMaxPayload() throws {
        let text = EngineIOPacket.handshake(sid: "abc", pingInterval: 25000, pingTimeout: 20000, maxPayload: 1_000_000).encoded
        #expect(text == #"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#)
    }

    @Test func engineIOPacketsDecodeByTheirTypeDigit() throws {
        #expect(try EngineIOPacket.decode("2") == .ping(""))
        #expect(try EngineIOPacket.decode("3probe") == .pong("probe"))
        #expect(try EngineIOPacket.decode("1") == .close)
        #expect(try EngineIOPacket.decode("6") == .noop)
        #expect(try EngineIOPacket.decode("42[\"a\"]") == .message("2[\"a\"]"))
        #expect(throws: EngineIOPacket.DecodeError.empty) { try EngineIOPacket.decode("") }
        #expect(throws: EngineIOPacket.DecodeError.unknownType("9")) { try EngineIOPacket.decode("9") }
    }

    @Test func connectPacketsWithAndWithoutAuth() throws {
        #expect(try SocketIOPacket.decode("0") == SocketIOPacket(type: .connect))
        #expect(try SocketIOPacket.decode("0{}") == SocketIOPacket(type: .connect, data: [:]))
        let withToken = try SocketIOPacket.decode(#"0{"token":"t1"}"#)
        #expect(withToken.data?["token"] == "t1")
        #expect(try SocketIOPacket.decode("0/admin,") == SocketIOPacket(type: .connect, namespace: "/admin"))
        #expect(try SocketIOPacket.decode(#"0/admin,{"token":"x"}"#).namespace == "/admin")
    }

    @Test func eventsCarryNameArgumentsAndAckIds() throws {
        let p = try SocketIOPacket.decode(#"212["notification:read",{"notificationId":"n1"}]"#)
        #expect(p.type == .event)
        #expect(p.ackId == 12)
        #expect(p.eventName == "notification:read")
        #expect(p.eventArguments == [["notificationId": "n1"]])
        let ns = try SocketIOPacket.decode(#"2/chat,7["x"]"#)
        #expect(ns.namespace == "/chat")
        #expect(ns.ackId == 7)
    }

    @Test func acksEncodeWithTheirIdAndArguments() {
        let ack = SocketIOPacket(type: .ack, ackId: 12, data: [["ok": true]])
        #expect(ack.engineIOText == #"4312[{"ok":true}]"#)
        #expect(SocketIOPacket(type: .connect, data: ["sid": "s"]).engineIOText == #"40{"sid":"s"}"#)
        #expect(SocketIOPacket(type: .connectError, namespace: "/x", data: ["message": "Invalid namespace"]).engineIOText == #"44/x,{"message":"Invalid namespace"}"#)
        #expect(SocketIOPacket(type: .disconnect).engineIOText == "41")
    }

    @Test func encodingThenDecodingRoundTrips() throws {
        let packets = [
            SocketIOPacket(type: .event, ackId: 3, data: ["e", ["a": [1, 2.5, nil, "é\n"]]]),
            SocketIOPacket(type: .event, namespace: "/n", data: ["e"]),
            SocketIOPacket(type: .ack, ackId: 0, data: []),
            SocketIOPacket(type: .binaryEvent, ackId: 1, data: ["up", ["_placeholder": true, "num": 0]], attachments: 1),
        ]
        for p in packets {
            #expect(try SocketIOPacket.decode(p.encoded) == p)
        }
    }

    @Test func badPacketsAreRejected() {
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("9") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("2{\"not\":\"array\"}") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("2[") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("2[]") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("0[1]") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("5[\"x\"]") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("3[1]") }
        #expect(throws: SocketIOPacket.DecodeError.self) { try SocketIOPacket.decode("299999999999999999999[\"x\"]") }
    }
}

@Suite("Socket.IO session state machine")
struct SocketIOSessionTests {
    func sent(_ actions: [SocketIOSession.Action]) -> [String] {
        actions.compactMap { if case .send(let s) = $0 { return s } else { return nil } }
    }

    func joinedSession(policy: SocketIOConfiguration.MissingTokenPolicy = .reject) -> SocketIOSession {
        var s = SocketIOSession(configuration: .init(missingToken: policy), engineSid: "E", socketSid: "S", now: .zero)
        _ = s.receive(#"40{"token":"t"}"#, now: .zero)
        let id = HubIdentity(userId: "u1", username: "a")
        _ = s.authenticationFinished(.identity(id), purpose: .connect)
        _ = s.admissionDecided(true, identity: id, purpose: .connect, limit: 20)
        return s
    }

    @Test func openSendsTheHandshake() {
        let s = SocketIOSession(engineSid: "E", socketSid: "S", now: .zero)
        #expect(sent(s.open()).first?.hasPrefix(#"0{"sid":"E","upgrades":[]"#) == true)
    }

    @Test func connectWithAValidTokenJoinsWithTheSocketSid() {
        var s = SocketIOSession(engineSid: "E", socketSid: "S", now: .zero)
        #expect(s.receive(#"40{"token":"t"}"#, now: .zero) == [.authenticate(token: "t", purpose: .connect)])
        let id = HubIdentity(userId: "u1", username: "a")
        #expect(s.authenticationFinished(.identity(id), purpose: .connect) == [.admit(identity: id, purpose: .connect)])
        let actions = s.admissionDecided(true, identity: id, purpose: .connect, limit: 20)
        #expect(actions == [.send(#"40{"sid":"S"}"#), .joined(identity: id)])
    }

    /// Issue 17: a user at the hub's per-user connection limit gets `connect_error`, not a join.
    @Test func aUserAtTheConnectionLimitGetsAConnectErrorAndMayRetry() {
        var s = SocketIOSession(engineSid: "E", socketSid: "S", now: .zero)
        _ = s.receive(#"40{"token":"t"}"#, now: .zero)
        let id = HubIdentity(userId: "u1", username: "a")
        _ = s.authenticationFinished(.identity(id), purpose: .connect)
        let refused = s.admissionDecided(false, identity: id, purpose: .connect, limit: 20)
        #expect(sent(refused) == [#"44{"message":"too many connections for this user (limit 20); close another tab first"}"#])
        #expect(!refused.contains(.joined(identity: id)))
        #expect(!s.isConnected && !s.isClosed)
        #expect(s.receive(#"40{"token":"t"}"#, now: .zero) == [.authenticate(token: "t", purpose: .connect)], "a later retry is heard")
    }

    @Test func anAUTHEventOverTheUserLimitIsAnErrorAndTheSocketStaysUnauthenticated() {
        var s = SocketIOSession(configuration: .init(missingToken: .requireAuthEvent(timeout: .seconds(10))), engineSid: "E", socketSid: "S", now: .zero)
        _ = s.receive("40", now: .zero)
        _ = s.receive(#"423["AUTH",{"token":"tok"}]"#, now: .zero)
        let id = HubIdentity(userId: "u1", username: "a")
        #expect(s.authenticationFinished(.identity(id), purpose: .authEvent(ackId: 3)) == [.admit(identity: id, purpose: .authEvent(ackId: 3))])
        let refused = s.admissionDecided(false, identity: id, purpose: .authEvent(ackId: 3), limit: 2)
        #expect(sent(refused) == [#"433[{"error":"too_many_connections","message":"too many connections for this user (limit 2); close another tab first"}]"#])
        #expect(s.identity == nil)
        #expect(sent(s.tick(now: .seconds(10))) == ["41"], "the AUTH deadline still applies")
    }

    @Test func anExpiredTokenIsAConnectError() {
        var s = SocketIOSession(engineSid: "E", socketSid: "S", now: .zero)
        _ = s.receive(#"40{"token":"t"}"#, now: .zero)
        #expect(sent(s.authenticationFinished(.invalid(reason: "token expired"), purpose: .connect)) == [#"44{"message":"invalid token: token expired"}"#])
        #expect(!s.isConnected)
    }

    @Test func aMissingTokenIsRejectedByDefault() {
        var s = SocketIOSession(engineSid: "E", socketSid: "S", now: .zero)
        #expect(sent(s.receive("40", now: .zero)) == [#"44{"message":"missing token"}"#])
        #expect(sent(s.receive("40{}", now: .zero)) == [#"44{"message":"missing token"}"#])
    }

    @Test func aServerVerifiedIdentityIsUsedWhenConnectHasNoToken() {
        let id = HubIdentity(userId: "u9", username: "z")
        var s = SocketIOSession(engineSid: "E", socketSid: "S", identity: id, now: .zero)
        #expect(s.receive("40", now: .zero) == [.admit(identity: id, purpose: .connect)])
        #expect(s.admissionDecided(true, identity: id, purpose: .connect, limit: 20) == [.send(#"40{"sid":"S"}"#), .joined(identity: id)])
    }

    @Test func withDeferredAuthEventsBeforeAUTHAreRefusedAndAUTHIdentifies() {
        var s = SocketIOSession(configuration: .init(missingToken: .requireAuthEvent(timeout: .seconds(10))), engineSid: "E", socketSid: "S", now: .zero)
        #expect(s.receive("40", now: .zero) == [.send(#"40{"sid":"S"}"#), .joined(identity: nil)])
        #expect(sent(s.receive(#"421["notification:read-all"]"#, now: .zero)) == [#"431[{"error":"unauthenticated","message":"send AUTH first"}]"#])
        #expect(s.receive(#"422["AUTH",{"token":"tok"}]"#, now: .zero) == [.authenticate(token: "tok", purpose: .authEvent(ackId: 2))])
        let id = HubIdentity(userId: "u1", username: "a")
        #expect(s.authenticationFinished(.identity(id), purpose: .authEvent(ackId: 2)) == [.admit(identity: id, purpose: .authEvent(ackId: 2))])
        let done = s.admissionDecided(true, identity: id, purpose: .authEvent(ackId: 2), limit: 20)
        #expect(done == [.identityChanged(previous: nil, identity: id), .send(#"432[{"ok":true,"userId":"u1"}]"#)])
    }

    @Test func deferredAuthTimesOut() {
        var s = SocketIOSession(configuration: .init(missingToken: .requireAuthEvent(timeout: .seconds(10))), engineSid: "E", socketSid: "S", now: .zero)
        _ = s.receive("40", now: .zero)
        let actions = s.tick(now: .seconds(10))
        #expect(sent(actions) == ["41"])
        #expect(s.isClosed)
    }

    /// Issue 17: leaving the namespace (`41`) and joining again (`40`) used to clear the AUTH
    /// deadline and set a new one, so an unauthenticated socket could stay forever. The deadline
    /// is set once per connection, on the hub's clock, and nothing moves it.
    @Test func leavingAndRejoiningDoesNotMoveTheAuthDeadline() {
        let clock = ManualHubClock()
        var s = SocketIOSession(configuration: .init(missingToken: .requireAuthEvent(timeout: .seconds(10))), engineSid: "E", socketSid: "S", now: clock.now)
        #expect(s.receive("40", now: clock.now) == [.send(#"40{"sid":"S"}"#), .joined(identity: nil)])
        for _ in 0..<9 {
            clock.advance(by: .seconds(1))
            #expect(s.receive("41", now: clock.now) == [.left(identity: nil)])
            #expect(s.receive("40", now: clock.now) == [.send(#"40{"sid":"S"}"#), .joined(identity: nil)])
            #expect(s.tick(now: clock.now).isEmpty, "before the deadline")
            #expect(s.nextTickDeadline() <= .seconds(10))
        }
        clock.advance(by: .seconds(1))
        #expect(sent(s.tick(now: clock.now)) == ["41"], "10 s after the first join, however often it re-joined")
        #expect(s.isClosed)
    }

    /// A socket that is outside the namespace (it sent `41`) when the deadline passes is closed too:
    /// a client sending `40` and `41` in a loop is out of the namespace at most ticks.
    @Test func theAuthDeadlineAlsoClosesASocketThatLeftTheNamespace() {
        var s = SocketIOSession(configuration: .init(missingToken: .requireAuthEvent(timeout: .seconds(10))), engineSid: "E", socketSid: "S", now: .zero)
        _ = s.receive("40", now: .zero)
        _ = s.receive("41", now: .seconds(9))
        #expect(s.nextTickDeadline() <= .seconds(10))
        let actions = s.tick(now: .seconds(10))
        #expect(sent(actions).isEmpty, "no 41 for a socket already outside the namespace")
        #expect(actions.last == .close(.protocolError("authentication timeout")))
        #expect(s.isClosed)
    }

    @Test func anAcceptedTokenMeetsTheAuthDeadline() {
        var s = SocketIOSession(configuration: .init(missingToken: .requireAuthEvent(timeout: .seconds(10))), engineSid: "E", socketSid: "S", now: .zero)
        _ = s.receive("40", now: .zero)
        _ = s.receive(#"42["AUTH",{"token":"tok"}]"#, now: .seconds(1))
        let id = HubIdentity(userId: "u1", username: "a")
        _ = s.authenticationFinished(.identity(id), purpose: .authEvent(ackId: nil))
        _ = s.admissionDecided(true, identity: id, purpose: .authEvent(ackId: nil), limit: 20)
        _ = s.receive("3", now: .seconds(20))
        #expect(!s.tick(now: .seconds(20)).contains(.close(.protocolError("authentication timeout"))))
        #expect(!s.isClosed)
    }

    @Test func otherNamespacesGetAConnectError() {
        var s = SocketIOSession(engineSid: "E", socketSid: "S", now: .zero)
        #expect(sent(s.receive("40/admin,", now: .zero)) == [#"44/admin,{"message":"Invalid namespace"}"#])
    }

    @Test func eventsAreDispatchedAndAcked() {
        var s = joinedSession()
        let actions = s.receive(#"425["notification:read",{"notificationId":"n1"}]"#, now: .zero)
        let request = SocketIOEventRequest(name: "notification:read", payload: ["notificationId": "n1"], ackId: 5)
        #expect(actions == [.dispatch(request)])
        #expect(sent(s.eventFinished(request, .ack(["ok": true]))) == [#"435[{"ok":true}]"#])
        #expect(sent(s.eventFinished(request, .error(code: "bad", message: "m"))) == [#"435[{"error":"bad","message":"m"}]"#])
        let noAck = SocketIOEventRequest(name: "x", payload: .null, ackId: nil)
        #expect(sent(s.eventFinished(noAck, .error(code: "bad", message: "m"))) == [#"42["error",{"error":"bad","message":"m","event":"x"}]"#])
        #expect(sent(s.rateLimited(request)) == [#"435[{"error":"rate_limited","message":"too many messages"}]"#])
    }

    @Test func binaryEventsAreRefusedWithoutClosing() {
        var s = joinedSession()
        let actions = s.receive(#"451-3["upload",{"_placeholder":true,"num":0}]"#, now: .zero)
        #expect(sent(actions) == [#"433[{"error":"binary_not_supported","message":"binary packets are not supported"}]"#])
        #expect(s.isConnected)
    }

    @Test func pingsAreSentEveryIntervalAndSilenceCloses() {
        var s = joinedSession()
        #expect(s.tick(now: .seconds(24)) == [])
        #expect(s.tick(now: .seconds(25)) == [.send("2")])
        _ = s.receive("3", now: .seconds(26))
        #expect(s.tick(now: .seconds(50)) == [.send("2")])
        let actions = s.tick(now: .seconds(72))
        #expect(actions.last == .close(.timeout))
        #expect(actions.contains(.left(identity: HubIdentity(userId: "u1", username: "a"))))
    }

    /// The ticker skips a session until `nextTickDeadline`: never later than the first tick that
    /// acts (Engine.IO ping, silence timeout).
    @Test func theNextTickDeadlineIsNeverLaterThanTheFirstTickThatActs() {
        var s = joinedSession()
        #expect(s.nextTickDeadline() == .seconds(25))
        var probe = s
        #expect(probe.tick(now: .milliseconds(24_900)) == [])
        #expect(probe.tick(now: .seconds(25)) == [.send("2")])
        _ = s.tick(now: .seconds(25))
        _ = s.receive("3", now: .seconds(26))
        // Next ping 25 s after the last one; the silence close (45 s after 26) is later.
        #expect(s.nextTickDeadline() == .seconds(50))
        _ = s.tick(now: .seconds(50))
        // No pong to that ping: the next ping (75 s) comes after the silence close (26 + 45 = 71 s).
        #expect(s.nextTickDeadline() == .seconds(71))
        var late = s
        #expect(late.tick(now: .milliseconds(71_100)).last == .close(.timeout))
    }

    @Test func namespaceDisconnectLeavesAndEngineCloseCloses() {
        var s = joinedSession()
        #expect(s.receive("41", now: .zero) == [.left(identity: HubIdentity(userId: "u1", username: "a"))])
        #expect(!s.isConnected)
        #expect(s.receive("1", now: .zero) == [.close(.normal)])
    }

    @Test func garbageClosesTheConnection() {
        var s = joinedSession()
        let actions = s.receive("4x", now: .zero)
        if case .close(.protocolError) = actions.last {} else { Issue.record("expected protocol close, got \(actions)") }
    }

    @Test func packetsAboveMaxPayloadClose() {
        var s = SocketIOSession(configuration: .init(maxPayload: 10), engineSid: "E", socketSid: "S", now: .zero)
        #expect(s.receive("42[\"0123456789\"]", now: .zero) == [.close(.tooLarge)])
    }
}

@Suite("JSON values")
struct JSONValueTests {
    @Test func parsesAndWritesNestedValuesPreservingKeyOrder() throws {
        let text = #"{"b":1,"a":[true,false,null,-1.5e3,"x\"y"],"c":{}}"#
        let v = try JSONValue(parsing: text)
        #expect(v.jsonString == #"{"b":1,"a":[true,false,null,-1500,"x\"y"],"c":{}}"#)
        #expect(v["a"]?[4] == "x\"y")
    }

    @Test func unicodeEscapesAndSurrogatePairsDecode() throws {
        #expect(try JSONValue(parsing: #""\u00e9\ud83d\ude00\n""#) == "é😀\n")
    }

    @Test func invalidJSONIsRejected() {
        for bad in ["", "{", "[1,]", "{\"a\"}", "tru", "01", "\"\u{1}\"", "1 2", "\"\\x\""] {
            #expect(throws: JSONParseError.self) { try JSONValue(parsing: bad) }
        }
    }

    @Test func deepNestingIsRejected() {
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
    }
}

@Suite("Engine.IO handshake query")
struct EngineIOHandshakeTests {
    @Test func websocketTransportWithEIO4IsAccepted() {
        #expect(EngineIOHandshake.validate(query: ["transport": "websocket", "EIO": "4", "t": "abc"]) == nil)
    }

    @Test func otherVersionsTransportsAndSessionUpgradesAreRejected() {
        #expect(EngineIOHandshake.validate(query: ["EIO": "3", "transport": "websocket"])?.code == 5)
        #expect(EngineIOHandshake.validate(query: ["EIO": "4", "transport": "polling"])?.body == #"{"code":0,"message":"Transport unknown"}"#)
        #expect(EngineIOHandshake.validate(query: ["EIO": "4", "transport": "websocket", "sid": "x"])?.code == 1)
    }
}
