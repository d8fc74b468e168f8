import Hub
import Testing

@Suite("STOMP session state machine")
struct STOMPSessionTests {
    func frame(_ command: STOMPCommand, _ headers: [(String, String)] = [], body: String = "") -> STOMPFrame {
        STOMPFrame(command, headers: STOMPHeaders(headers), body: body)
    }

    func sentFrames(_ actions: [STOMPSession.Action]) -> [STOMPFrame] {
        actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
    }

    func connected(_ session: inout STOMPSession, acceptVersion: String = "1.2,1.1,1.0") -> [STOMPSession.Action] {
        session.receive(frame(.connect, [("accept-version", acceptVersion), ("heart-beat", "10000,10000")]), now: .zero)
    }

    @Test func connectAsGuestAnswersConnectedWithVersionHeartbeatServerAndSession() {
        var s = STOMPSession(sessionId: "s1", now: .zero)
        let actions = connected(&s)
        #expect(actions.first == .connected(identity: nil))
        let f = sentFrames(actions)
        #expect(f.count == 1)
        #expect(f[0].command == .connected)
        #expect(f[0].headers["version"] == "1.2")
        #expect(f[0].headers["heart-beat"] == "10000,10000")
        #expect(f[0].headers["server"] == "LiveHub/1.0")
        #expect(f[0].headers["session"] == "s1")
        #expect(s.isConnected)
    }

    @Test(arguments: [("1.2,1.1,1.0", "1.2"), ("1.1,1.0", "1.1"), ("1.0", "1.0"), ("1.1", "1.1")])
    func versionNegotiationPicksTheHighestCommonVersion(offer: String, expected: String) {
        var s = STOMPSession(sessionId: "s", now: .zero)
        let f = sentFrames(connected(&s, acceptVersion: offer))
        #expect(f.first?.headers["version"] == expected)
    }

    @Test func aMissingAcceptVersionMeansOnePointZero() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        let f = sentFrames(s.receive(frame(.connect), now: .zero))
        #expect(f.first?.headers["version"] == "1.0")
    }

    @Test func anUnsupportedVersionGetsAnErrorAndClose() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        let actions = s.receive(frame(.connect, [("accept-version", "2.0")]), now: .zero)
        #expect(sentFrames(actions).first?.command == .error)
        #expect(sentFrames(actions).first?.headers["version"] == "1.2,1.1,1.0")
        #expect(actions.last == .close(.protocolError("unsupported STOMP version")))
    }

    @Test func heartbeatsAreNegotiatedAsTheMaximumOfBothSides() {
        var s = STOMPSession(configuration: .init(heartBeatSend: 5000, heartBeatReceive: 8000), sessionId: "s", now: .zero)
        _ = s.receive(frame(.connect, [("accept-version", "1.2"), ("heart-beat", "4000,20000")]), now: .zero)
        #expect(s.outgoingHeartbeat == 20000)  // max(sx 5000, cy 20000)
        #expect(s.incomingHeartbeat == 8000)  // max(cx 4000, sy 8000)
        var z = STOMPSession(sessionId: "z", now: .zero)
        _ = z.receive(frame(.connect, [("accept-version", "1.2"), ("heart-beat", "0,0")]), now: .zero)
        #expect(z.outgoingHeartbeat == 0)
        #expect(z.incomingHeartbeat == 0)
    }

    @Test func serverHeartbeatsAreDueAfterTheIntervalAndSilenceTwiceAsLongCloses() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        #expect(s.tick(now: .seconds(5), lastOutboundAt: .zero) == [])
        #expect(s.tick(now: .seconds(10), lastOutboundAt: .zero) == [.sendHeartbeat])
        s.noteInbound(now: .seconds(15))
        #expect(s.tick(now: .seconds(30), lastOutboundAt: .seconds(25)) == [])
        #expect(s.tick(now: .seconds(36), lastOutboundAt: .seconds(35)) == [.close(.timeout)])
    }

    /// `nextTickDeadline` lets the ticker skip a session: it must never be later than the first
    /// tick that acts. Walk time in 100 ms steps through connect timeout, heart-beats, silence.
    @Test func theNextTickDeadlineIsNeverLaterThanTheFirstTickThatActs() {
        func firstActingTick(_ s: STOMPSession, from: Duration, lastOut: Duration) -> Duration? {
            var t = from
            while t < from + .seconds(120) {
                var probe = s
                if !probe.tick(now: t, lastOutboundAt: lastOut).isEmpty { return t }
                t += .milliseconds(100)
            }
            return nil
        }
        // Awaiting CONNECT: the connect timeout.
        let waiting = STOMPSession(configuration: .init(connectTimeout: .seconds(10)), sessionId: "w", now: .zero)
        #expect(waiting.nextTickDeadline(lastOutboundAt: .zero) == .seconds(10))
        #expect(firstActingTick(waiting, from: .zero, lastOut: .zero) == .seconds(10))
        // Connected with 10 s heart-beats both ways: the server's heart-beat is due first.
        var beating = STOMPSession(sessionId: "b", now: .zero)
        _ = connected(&beating)
        let due = beating.nextTickDeadline(lastOutboundAt: .seconds(3))
        #expect(due == .seconds(13))
        if let due, let acts = firstActingTick(beating, from: .zero, lastOut: .seconds(3)) { #expect(due <= acts) }
        // Only the client's heart-beat (server sends none): silence closes after twice its interval.
        var listening = STOMPSession(configuration: .init(heartBeatSend: 0, heartBeatReceive: 4000), sessionId: "l", now: .zero)
        _ = listening.receive(frame(.connect, [("accept-version", "1.2"), ("heart-beat", "4000,0")]), now: .zero)
        listening.noteInbound(now: .seconds(2))
        let silenceDue = listening.nextTickDeadline(lastOutboundAt: .zero)
        #expect(silenceDue == .seconds(10))
        if let silenceDue, let acts = firstActingTick(listening, from: .seconds(2), lastOut: .zero) { #expect(silenceDue <= acts) }
        // No heart-beats negotiated: nothing is ever due.
        var quiet = STOMPSession(sessionId: "q", now: .zero)
        _ = quiet.receive(frame(.connect, [("accept-version", "1.2"), ("heart-beat", "0,0")]), now: .zero)
        #expect(firstActingTick(quiet, from: .zero, lastOut: .zero) == nil)
        #expect((quiet.nextTickDeadline(lastOutboundAt: .zero) ?? .zero) > .seconds(1_000_000))
    }

    @Test func aFrameBeforeConnectIsAnError() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        let actions = s.receive(frame(.send, [("destination", "/app/x")]), now: .zero)
        #expect(sentFrames(actions).first?.command == .error)
        #expect(sentFrames(actions).first?.headers["message"]?.contains("expected CONNECT") == true)
        if case .close = actions.last {} else { Issue.record("expected close") }
    }

    @Test func noConnectWithinTheTimeoutCloses() {
        var s = STOMPSession(configuration: .init(connectTimeout: .seconds(10)), sessionId: "s", now: .zero)
        #expect(s.tick(now: .seconds(5), lastOutboundAt: .zero) == [])
        let actions = s.tick(now: .seconds(10), lastOutboundAt: .zero)
        #expect(actions.last == .close(.timeout))
    }

    /// Issue 17: the CONNECT deadline counts from the opening; heart-beat EOLs (or anything else a
    /// client sends before CONNECT) do not move it.
    @Test func heartbeatsBeforeConnectDoNotMoveTheConnectDeadline() {
        var s = STOMPSession(configuration: .init(connectTimeout: .seconds(10)), sessionId: "s", now: .zero)
        for second in 1...9 {
            s.noteInbound(now: .seconds(second))
            #expect(s.tick(now: .seconds(second), lastOutboundAt: .zero) == [])
        }
        #expect(s.nextTickDeadline(lastOutboundAt: .zero) == .seconds(10))
        let actions = s.tick(now: .seconds(10), lastOutboundAt: .zero)
        #expect(sentFrames(actions).first?.headers["message"] == "no CONNECT frame received in time")
        #expect(actions.last == .close(.timeout))
    }

    /// Issue 17: subscriptions per connection are bounded; one more is refused like any refused
    /// SUBSCRIBE (errors queue + RECEIPT status:refused) and the connection stays.
    @Test func aSubscriptionBeyondTheLimitIsRefusedAndTheConnectionStays() {
        var s = STOMPSession(configuration: .init(maxSubscriptions: 3), sessionId: "s", now: .zero)
        _ = connected(&s)
        #expect(s.receive(frame(.subscribe, [("id", "e"), ("destination", "/user/queue/errors")]), now: .zero) == [])
        for i in 1...2 {
            let request = STOMPSubscriptionRequest(id: "t\(i)", destination: "/topic/live/\(i)/chat")
            #expect(s.receive(frame(.subscribe, [("id", "t\(i)"), ("destination", "/topic/live/\(i)/chat")]), now: .zero) == [.authorizeSubscription(request)])
            _ = s.subscriptionDecided(request, .allow)
        }
        let over = s.receive(frame(.subscribe, [("id", "t3"), ("destination", "/topic/live/3/chat"), ("receipt", "r3")]), now: .zero)
        #expect(!over.contains { if case .authorizeSubscription = $0 { return true } else { return false } })
        let frames = sentFrames(over)
        #expect(frames.map(\.command) == [.message, .receipt])
        #expect(frames[0].headers["error-code"] == "too-many-subscriptions")
        #expect(frames[1].headers["status"] == "refused")
        #expect(frames[1].headers["message"] == "a connection holds at most 3 subscriptions; UNSUBSCRIBE one first")
        #expect(s.isConnected)
        #expect(s.subscriptions.count == 3)
        // One UNSUBSCRIBE makes room again.
        _ = s.receive(frame(.unsubscribe, [("id", "t1")]), now: .zero)
        let request = STOMPSubscriptionRequest(id: "t3", destination: "/topic/live/3/chat")
        #expect(s.receive(frame(.subscribe, [("id", "t3"), ("destination", "/topic/live/3/chat")]), now: .zero) == [.authorizeSubscription(request)])
    }

    @Test func aUserOverTheConnectionLimitGetsAnErrorAndClose() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = s.receive(frame(.connect, [("accept-version", "1.2"), ("Authorization", "Bearer t")]), now: .zero)
        let done = s.authenticationFinished(.identity(HubIdentity(userId: "u1", username: "a")))
        #expect(done.first == .connected(identity: HubIdentity(userId: "u1", username: "a")))
        let refused = s.userConnectionLimitReached(limit: 20)
        #expect(sentFrames(refused).map(\.command) == [.error])
        #expect(sentFrames(refused).first?.headers["message"] == "too many connections for this user (limit 20); close another tab or connection first")
        #expect(s.isClosed)
    }

    @Test func aConnectTokenHeaderIsAuthenticatedBeforeConnected() {
        var s = STOMPSession(sessionId: "s", queryToken: "query-token", now: .zero)
        let actions = s.receive(frame(.connect, [("accept-version", "1.2"), ("Authorization", "Bearer header-token")]), now: .zero)
        #expect(actions == [.authenticate(token: "header-token")])
        let id = HubIdentity(userId: "u1", username: "alice")
        let done = s.authenticationFinished(.identity(id))
        #expect(done.first == .connected(identity: id))
        #expect(sentFrames(done).first?.headers["user-name"] == "alice")
    }

    @Test func theQueryTokenIsUsedWhenConnectHasNone() {
        var s = STOMPSession(sessionId: "s", queryToken: "query-token", now: .zero)
        #expect(connected(&s) == [.authenticate(token: "query-token")])
    }

    @Test func anInvalidTokenGetsAnErrorFrameAndClose() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = s.receive(frame(.connect, [("token", "x")]), now: .zero)
        let actions = s.authenticationFinished(.invalid(reason: "token expired"))
        #expect(sentFrames(actions).first?.command == .error)
        #expect(sentFrames(actions).first?.headers["message"] == "invalid token (token expired)")
        #expect(actions.last == .close(.protocolError("invalid token (token expired)")))
    }

    @Test func subscribeToATopicAsksTheBackendThenSubscribesAndSendsTheReceipt() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        let actions = s.receive(frame(.subscribe, [("id", "sub-0"), ("destination", "/topic/live/1/chat"), ("receipt", "r1")]), now: .zero)
        let request = STOMPSubscriptionRequest(id: "sub-0", destination: "/topic/live/1/chat", receipt: "r1")
        #expect(actions == [.authorizeSubscription(request)])
        let decided = s.subscriptionDecided(request, .allow)
        #expect(decided.first == .subscribe(topic: "/topic/live/1/chat", id: "sub-0"))
        #expect(sentFrames(decided) == [STOMPFrame(.receipt, headers: ["receipt-id": "r1"])])
        let un = s.receive(frame(.unsubscribe, [("id", "sub-0")]), now: .zero)
        #expect(un == [.unsubscribe(topic: "/topic/live/1/chat", id: "sub-0")])
    }

    @Test func aDuplicateSubscriptionIdIsAProtocolError() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        _ = s.receive(frame(.subscribe, [("id", "e"), ("destination", "/user/queue/errors")]), now: .zero)
        let actions = s.receive(frame(.subscribe, [("id", "e"), ("destination", "/user/queue/errors")]), now: .zero)
        #expect(sentFrames(actions).first?.command == .error)
    }

    @Test func aRefusedSendKeepsTheSessionAndReportsOnTheErrorsQueueAndTheReceipt() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        #expect(s.receive(frame(.subscribe, [("id", "sub-9"), ("destination", "/user/queue/errors")]), now: .zero) == [])
        let send = s.receive(frame(.send, [("destination", "/app/live/1/chat"), ("receipt", "r7")], body: "{}"), now: .zero)
        guard case .deliver(let request) = send.first else { Issue.record("expected deliver"); return }
        let refused = s.sendFinished(request, .refused(code: "unauthorized", message: "guests cannot chat"))
        let frames = sentFrames(refused)
        #expect(frames.count == 2)
        #expect(frames[0].command == .message)
        #expect(frames[0].headers["destination"] == "/user/queue/errors")
        #expect(frames[0].headers["subscription"] == "sub-9")
        #expect(frames[0].headers["error-code"] == "unauthorized")
        #expect(frames[0].bodyString == #"{"error":"unauthorized","message":"guests cannot chat","destination":"/app/live/1/chat","receiptId":"r7"}"#)
        #expect(frames[1].command == .receipt)
        #expect(frames[1].headers["receipt-id"] == "r7")
        #expect(frames[1].headers["status"] == "refused")
        #expect(!refused.contains { if case .close = $0 { return true } else { return false } })
        #expect(s.isConnected)
        // and the next send still works
        let again = s.receive(frame(.send, [("destination", "/app/live/1/join")]), now: .zero)
        if case .deliver = again.first {} else { Issue.record("session should still accept sends") }
    }

    @Test func sendToATopicIsRefusedWithoutClosing() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        _ = s.receive(frame(.subscribe, [("id", "e"), ("destination", "/user/queue/errors")]), now: .zero)
        let actions = s.receive(frame(.send, [("destination", "/topic/live/1/chat")], body: "x"), now: .zero)
        #expect(sentFrames(actions).first?.headers["error-code"] == "forbidden-destination")
        #expect(s.isConnected)
    }

    @Test func aRefusedSubscriptionIsReportedAndNotSubscribed() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        let request = STOMPSubscriptionRequest(id: "sub-1", destination: "/topic/live/404/chat", receipt: "r")
        _ = s.receive(frame(.subscribe, [("id", "sub-1"), ("destination", "/topic/live/404/chat"), ("receipt", "r")]), now: .zero)
        let actions = s.subscriptionDecided(request, .refuse(code: "unknown-room", message: "no such room"))
        #expect(!actions.contains { if case .subscribe = $0 { return true } else { return false } })
        #expect(sentFrames(actions).last?.headers["error-code"] == "unknown-room")
        #expect(s.subscriptions.isEmpty)
    }

    @Test func sendWithoutDestinationIsFatal() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        let actions = s.receive(frame(.send), now: .zero)
        #expect(sentFrames(actions).first?.command == .error)
        if case .close = actions.last {} else { Issue.record("expected close") }
    }

    @Test func disconnectWithReceiptAnswersTheReceiptThenCloses() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        _ = connected(&s)
        let actions = s.receive(frame(.disconnect, [("receipt", "close-1")]), now: .zero)
        #expect(actions == [.send(STOMPFrame(.receipt, headers: ["receipt-id": "close-1"])), .close(.normal)])
        #expect(s.isClosed)
    }

    @Test func aParseErrorBecomesAnErrorFrameWithTheReason() {
        var s = STOMPSession(sessionId: "s", now: .zero)
        let actions = s.protocolError(.bodyTooLarge(limit: 65536))
        #expect(sentFrames(actions).first?.headers["message"] == "frame body too large (max 65536 bytes)")
        #expect(sentFrames(actions).first?.bodyString == "frame body too large (max 65536 bytes)")
    }

    @Test(arguments: [
        (["v10.stomp, v11.stomp, v12.stomp"], "v12.stomp"),
        (["v10.stomp", "v11.stomp"], "v11.stomp"),
        (["v10.stomp"], "v10.stomp"),
        (["mqtt"], nil),
    ] as [([String], String?)])
    func subprotocolNegotiationPrefersTheNewestOfferedVersion(offered: [String], expected: String?) {
        #expect(STOMPSubprotocol.negotiate(offered: offered) == expected)
    }
}
