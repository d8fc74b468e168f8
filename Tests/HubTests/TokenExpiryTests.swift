import NIOCore
import Synchronization
import Testing

@testable import Hub

/// Accepts `ttl-<seconds>-<user>`: an identity that runs out that many seconds from now on `clock`.
struct ExpiringAuthenticator: HubAuthenticator {
    let clock: HubClock

    func authenticate(token: String) async -> HubAuthResult {
        let parts = token.split(separator: "-", maxSplits: 2)
        guard parts.count == 3, parts[0] == "ttl", let seconds = Int64(parts[1]) else { return .invalid(reason: "bad token") }
        let user = String(parts[2])
        return .identity(HubIdentity(userId: user, username: user, expiresAt: self.clock.now() + .seconds(seconds)))
    }
}

/// A token that runs out while its WebSocket is open closes it with a clear reason, when the
/// ticker gets to it; guests are never closed for it.
@Suite("Token expiry on WebSockets")
struct TokenExpiryTests {
    let expired = STOMPFrame(.error, headers: ["message": "token expired", "content-type": "text/plain"], body: "token expired")

    func stompConnected(expiresAt: Duration?, heartBeat: String = "0,0") -> STOMPSession {
        var s = STOMPSession(sessionId: "s", now: .zero)
        let connect = STOMPFrame(.connect, headers: ["accept-version": "1.2", "heart-beat": heartBeat, "token": "t"])
        #expect(s.receive(connect, now: .zero) == [.authenticate(token: "t")])
        _ = s.authenticationFinished(.identity(HubIdentity(userId: "u", username: "u", expiresAt: expiresAt)))
        #expect(s.isConnected)
        return s
    }

    // MARK: STOMP session

    @Test func aStompConnectionGetsTokenExpiredAndIsClosedWhenItsIdentityRunsOut() {
        var s = stompConnected(expiresAt: .seconds(60))
        #expect(s.nextTickDeadline(lastOutboundAt: .zero) == .seconds(60))
        #expect(s.tick(now: .seconds(59), lastOutboundAt: .zero) == [])
        #expect(s.tick(now: .seconds(60), lastOutboundAt: .zero) == [.send(expired), .close(.protocolError("token expired"))])
        #expect(s.isClosed)
        #expect(s.tick(now: .seconds(61), lastOutboundAt: .zero) == [])
    }

    @Test func theExpiryIsDueBeforeALaterHeartbeatAndAfterAnEarlierOne() {
        let soon = stompConnected(expiresAt: .seconds(3), heartBeat: "10000,10000")
        #expect(soon.nextTickDeadline(lastOutboundAt: .zero) == .seconds(3))
        let late = stompConnected(expiresAt: .seconds(300), heartBeat: "10000,10000")
        #expect(late.nextTickDeadline(lastOutboundAt: .zero) == .seconds(10))
    }

    @Test func guestsAndIdentitiesWithoutExpiryAreNeverClosedForIt() {
        var guest = STOMPSession(sessionId: "g", now: .zero)
        _ = guest.receive(STOMPFrame(.connect, headers: ["accept-version": "1.2", "heart-beat": "0,0"]), now: .zero)
        #expect(guest.isConnected)
        #expect((guest.nextTickDeadline(lastOutboundAt: .zero) ?? .zero) > .seconds(1_000_000))
        #expect(guest.tick(now: .seconds(1_000_000), lastOutboundAt: .zero) == [])
        var forever = stompConnected(expiresAt: nil)
        #expect(forever.tick(now: .seconds(1_000_000), lastOutboundAt: .zero) == [])
        #expect(forever.isConnected)
    }

    // MARK: Socket.IO session

    func socketJoined(expiresAt: Duration) -> (SocketIOSession, HubIdentity) {
        var s = SocketIOSession(configuration: .init(pingInterval: 100_000, pingTimeout: 100_000), engineSid: "E", socketSid: "S", now: .zero)
        #expect(s.receive(#"40{"token":"t"}"#, now: .zero) == [.authenticate(token: "t", purpose: .connect)])
        let identity = HubIdentity(userId: "u", username: "u", expiresAt: expiresAt)
        #expect(s.authenticationFinished(.identity(identity), purpose: .connect) == [.admit(identity: identity, purpose: .connect)])
        _ = s.admissionDecided(true, identity: identity, purpose: .connect, limit: 20)
        #expect(s.isConnected)
        return (s, identity)
    }

    @Test func aSocketIOSocketGetsATokenExpiredErrorThenDisconnectThenClose() {
        var (s, identity) = socketJoined(expiresAt: .seconds(10))
        #expect(s.nextTickDeadline() == .seconds(10))
        #expect(s.tick(now: .milliseconds(9_999)) == [])
        #expect(s.tick(now: .seconds(10)) == [
            .send(#"42["error",{"error":"token_expired","message":"token expired"}]"#),
            .send("41"),
            .left(identity: identity),
            .close(.protocolError("token expired")),
        ])
        #expect(s.isClosed)
    }

    @Test func anAUTHEventWithAFreshTokenMovesTheExpiry() {
        var (s, first) = socketJoined(expiresAt: .seconds(10))
        #expect(s.receive(#"425["AUTH",{"token":"fresh"}]"#, now: .seconds(5)) == [.authenticate(token: "fresh", purpose: .authEvent(ackId: 5))])
        let refreshed = HubIdentity(userId: "u", username: "u", expiresAt: .seconds(40))
        #expect(s.authenticationFinished(.identity(refreshed), purpose: .authEvent(ackId: 5)) == [.admit(identity: refreshed, purpose: .authEvent(ackId: 5))])
        let actions = s.admissionDecided(true, identity: refreshed, purpose: .authEvent(ackId: 5), limit: 20)
        #expect(actions.first == .identityChanged(previous: first, identity: refreshed))
        #expect(s.nextTickDeadline() == .seconds(40))
        #expect(s.tick(now: .seconds(10)) == [])
        #expect(s.tick(now: .seconds(39)) == [])
        #expect(s.tick(now: .seconds(40)).last == .close(.protocolError("token expired")))
    }

    @Test func aRefusedAUTHKeepsTheOldExpiry() {
        var (s, _) = socketJoined(expiresAt: .seconds(10))
        _ = s.receive(#"42["AUTH",{"token":"bad"}]"#, now: .seconds(5))
        _ = s.authenticationFinished(.invalid(reason: "the token has expired"), purpose: .authEvent(ackId: nil))
        #expect(s.nextTickDeadline() == .seconds(10))
        #expect(s.tick(now: .seconds(10)).last == .close(.protocolError("token expired")))
    }

    // MARK: Endpoints with the connection ticker and a manual hub clock

    /// Runs sessions the way `ConnectionRunner.attach` does: frames wake the ticket; a tick answers
    /// with the session's next deadline, and the ticker skips the ticket until then.
    final class TickerRig: Sendable {
        let clock = ManualHubClock(.seconds(1000))
        let ticker: ConnectionTicker
        let ticks = Mutex<[String: Int]>([:])
        let tickets = Mutex<[ConnectionTicker.Ticket]>([])

        init(interval: Duration) { self.ticker = ConnectionTicker.shared(interval: interval) }

        func add(
            _ name: String, onFrame: @escaping @Sendable (HubInboundFrame) async -> Bool,
            onTick: @escaping @Sendable () async -> Bool, nextTickDue: @escaping @Sendable () -> Duration?
        ) -> @Sendable (String) async -> Void {
            let ticket = self.ticker.add(clock: self.clock.clock) { [self] in
                self.ticks.withLock { $0[name, default: 0] += 1 }
                guard await onTick() else { return .stop }
                guard let due = nextTickDue() else { return .everyRound }
                return .again(notBefore: due)
            }
            self.tickets.withLock { $0.append(ticket) }
            return { text in
                _ = await onFrame(.text(text))
                ticket.wake()
            }
        }

        func ticks(of name: String) -> Int { self.ticks.withLock { $0[name] ?? 0 } }

        func stop() { for ticket in self.tickets.withLock({ $0 }) { self.ticker.remove(ticket) } }
    }

    @Test func theTickerWakesAStompConnectionAtItsExpiryAndLeavesTheGuestAlone() async throws {
        let rig = TickerRig(interval: .milliseconds(17))
        defer { rig.stop() }
        let hub = Hub(clock: rig.clock.clock)
        let endpoint = STOMPEndpoint(
            hub: hub, backend: TestLiveRoomBackend(), authenticator: ExpiringAuthenticator(clock: rig.clock.clock),
            configuration: .init(heartBeatSend: 0, heartBeatReceive: 0, tickInterval: .milliseconds(17)))
        let user = try #require(endpoint.open(framing: .raw, queryToken: nil, identity: nil, logger: testLogger))
        let guest = try #require(endpoint.open(framing: .raw, queryToken: nil, identity: nil, logger: testLogger))
        let sendUser = rig.add("user", onFrame: user.onFrame, onTick: user.onTick, nextTickDue: user.nextTickDue)
        let sendGuest = rig.add("guest", onFrame: guest.onFrame, onTick: guest.onTick, nextTickDue: guest.nextTickDue)
        await sendUser("CONNECT\naccept-version:1.2\nheart-beat:0,0\ntoken:ttl-30-u1\n\n\u{0}")
        await sendGuest("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u{0}")
        #expect(user.connection.pendingStrings().first?.hasPrefix("CONNECTED\n") == true)
        #expect(guest.connection.pendingStrings().first?.hasPrefix("CONNECTED\n") == true)
        #expect(await eventually { rig.ticks(of: "user") >= 1 && rig.ticks(of: "guest") >= 1 })
        // Rounds go by (17 ms each) while the hub clock stands still: nothing is due, nothing ticks.
        try await Task.sleep(for: .milliseconds(120))
        let ticksBefore = rig.ticks(of: "user")
        rig.clock.advance(by: .seconds(29))
        try await Task.sleep(for: .milliseconds(120))
        #expect(rig.ticks(of: "user") == ticksBefore, "29 s of 30: not due")
        #expect(!user.connection.isClosing)
        rig.clock.advance(by: .seconds(1))
        #expect(await eventually { user.connection.isClosing })
        let frames = user.connection.pendingStrings()
        #expect(frames.count == 1)
        #expect(frames.first?.hasPrefix("ERROR\n") == true)
        #expect(frames.first?.contains("\nmessage:token expired\n") == true)
        #expect(!guest.connection.isClosing)
        #expect(guest.connection.pendingStrings().isEmpty)
        await user.finish()
        await guest.finish()
    }

    @Test func theTickerWakesASocketIOSocketAtItsExpiryAndAnAUTHRefreshPostponesIt() async throws {
        let rig = TickerRig(interval: .milliseconds(19))
        defer { rig.stop() }
        let hub = Hub(clock: rig.clock.clock)
        let endpoint = SocketIOEndpoint(
            hub: hub, backend: TestBellBackend(), authenticator: ExpiringAuthenticator(clock: rig.clock.clock),
            configuration: .init(pingInterval: 100_000, pingTimeout: 100_000, tickInterval: .milliseconds(19)))
        let socket = try #require(endpoint.open(identity: nil, logger: testLogger))
        await socket.start()
        let send = rig.add("socket", onFrame: socket.onFrame, onTick: socket.onTick, nextTickDue: socket.nextTickDue)
        await send(#"40{"token":"ttl-10-u1"}"#)
        #expect(socket.connection.pendingStrings().last?.hasPrefix(#"40{"sid":""#) == true)
        rig.clock.advance(by: .seconds(5))
        await send(#"421["AUTH",{"token":"ttl-30-u1"}]"#)
        #expect(socket.connection.pendingStrings() == [#"431[{"ok":true,"userId":"u1"}]"#])
        rig.clock.advance(by: .seconds(6))  // past the first token's expiry
        try await Task.sleep(for: .milliseconds(150))
        #expect(!socket.connection.isClosing)
        rig.clock.advance(by: .seconds(24))  // 35 s: past the refreshed expiry (5 + 30)
        #expect(await eventually { socket.connection.isClosing })
        #expect(socket.connection.pendingStrings() == [#"42["error",{"error":"token_expired","message":"token expired"}]"#, "41"])
        await socket.finish()
    }
}
