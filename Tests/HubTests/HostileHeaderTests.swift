import Hub
import Testing

/// Numbers and text in STOMP headers that a guest controls: clamped or refused, never trapped on,
/// and never able to forge a header in what the server sends back.
@Suite("Hostile STOMP header values")
struct HostileHeaderTests {
    func frame(_ command: STOMPCommand, _ headers: [(String, String)]) -> STOMPFrame {
        STOMPFrame(command, headers: STOMPHeaders(headers))
    }

    @Test(
        "a heart-beat of 2^63-1 (it used to overflow `2 * heart-beat` a second later) is clamped to an hour",
        arguments: ["9223372036854775807,0", "0,9223372036854775807", "99999999999999999999999,1", "9223372036854775807,9223372036854775807"])
    func hugeHeartBeatIsClamped(header: String) {
        var session = STOMPSession(sessionId: "s", now: .zero)
        let actions = session.receive(frame(.connect, [("accept-version", "1.2"), ("heart-beat", header)]), now: .zero)
        #expect(actions.first == .connected(identity: nil))
        #expect(session.incomingHeartbeat <= 3_600_000)
        #expect(session.outgoingHeartbeat <= 3_600_000)
        // Ticks long after, and the deadline, compute without trapping.
        _ = session.nextTickDeadline(lastOutboundAt: .zero)
        _ = session.tick(now: .seconds(86_400 * 365), lastOutboundAt: .zero)
    }

    @Test("a malformed heart-beat is refused with an ERROR naming it", arguments: ["-1,0", "1,2,3", "abc,10", ",", "1 0,5", "+5,5"])
    func malformedHeartBeatIsRefused(header: String) {
        var session = STOMPSession(sessionId: "s", now: .zero)
        let actions = session.receive(frame(.connect, [("accept-version", "1.2"), ("heart-beat", header)]), now: .zero)
        guard case .send(let error)? = actions.first else { Issue.record("no ERROR"); return }
        #expect(error.command == .error)
        #expect(error.headers["message"]?.hasPrefix("invalid heart-beat header") == true)
        #expect(session.isClosed)
    }

    @Test("a user name with a newline cannot add a header to the unescaped CONNECTED frame")
    func userNameCannotInjectHeaders() {
        var session = STOMPSession(sessionId: "s", now: .zero)
        let actions = session.receive(frame(.connect, [("accept-version", "1.2"), ("token", "t")]), now: .zero)
        #expect(actions == [.authenticate(token: "t")])
        let finished = session.authenticationFinished(.identity(HubIdentity(userId: "u1", username: "Eve\nuser-name:admin\r\n\nX")))
        let connected = finished.compactMap { if case .send(let f) = $0, f.command == .connected { return f } else { return nil } }.first
        let encoded = STOMPFrameEncoder.encode(connected ?? STOMPFrame(.connected))
        var parser = STOMPFrameParser()
        parser.append(encoded)
        guard case .frame(let parsed)? = try? parser.next() else { Issue.record("CONNECTED does not parse"); return }
        #expect(parsed.headers.entries.filter { $0.name == "user-name" }.count == 1)
        #expect(parsed.headers["user-name"] == "Eve user-name:admin   X")
        #expect(parsed.headers.count == connected?.headers.count)
    }
}
