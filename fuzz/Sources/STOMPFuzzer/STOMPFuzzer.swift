import FuzzSupport
@testable import Hub

/// STOMP 1.2: the frame parser, and the per-connection session state machine driven by fuzzed
/// frames, clock ticks and the answers of the (asynchronous) authenticator, subscription check and
/// SEND handler, in any order.
///
/// | mode (byte % 2) | what is fed |
/// |---|---|
/// | 0 | bytes to `STOMPFrameParser` in pieces, with small or default limits |
/// | 1 | a script for `STOMPSession`: append bytes (frames go to the session), advance the clock and tick, answer a pending authentication / subscription / SEND |
///
/// Invariants:
/// - after the parser has returned everything it can, it holds at most one line or one body
///   (`max(maxHeaderLineLength, maxBodyLength) + 2` bytes): inbound bytes are bounded;
/// - a frame the parser returns re-encodes (`STOMPFrameEncoder`) to bytes that parse to the same frame;
/// - every frame the session sends parses back to itself (no header injection, e.g. a user name with a
///   newline in the unescaped CONNECTED frame);
/// - `nextTickDeadline` is never later than the first tick that acts (a heart-beat or time-out that
///   the connection ticker would otherwise miss);
/// - a SUBSCRIBE's `recover-offset` / `recover-epoch` (issue 22) never trap and are only accepted as
///   an offset within `Int64` and an epoch of 1-64 `[A-Za-z0-9_-]` (`checkRecoverHeaders`).
@_cdecl("STOMPFuzzer_main")
public func stompFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    var input = FuzzInput(Array(bytes.dropFirst()))
    if mode % 2 == 0 { fuzzParser(&input) } else { fuzzSession(&input) }
}

func limits(_ input: inout FuzzInput) -> STOMPParserLimits {
    input.bool() ? STOMPParserLimits() : STOMPParserLimits(maxBodyLength: 64, maxHeaderLineLength: 48, maxHeaders: 4)
}

func fuzzParser(_ input: inout FuzzInput) {
    let limits = limits(&input)
    var parser = STOMPFrameParser(limits: limits)
    while !input.isEmpty {
        parser.append(input.chunk(maximum: 300))
        while true {
            let output: STOMPFrameParser.Output
            do { output = try parser.next() } catch { return }
            guard case .frame(let frame) = output else {
                if case .needMoreData = output { break }
                continue
            }
            checkRoundTrip(frame, limits: limits)
            checkRecoverHeaders(frame.headers)
        }
        fuzzCheck(
            parser.bufferedBytes <= max(limits.maxHeaderLineLength, limits.maxBodyLength) + 2,
            "parser holds \(parser.bufferedBytes) bytes after returning what it could")
    }
}

/// `frame` encoded and parsed again is `frame` (the encoder may add `content-length`).
func checkRoundTrip(_ frame: STOMPFrame, limits: STOMPParserLimits = STOMPParserLimits(maxBodyLength: 1 << 20, maxHeaderLineLength: 1 << 20, maxHeaders: 1 << 10)) {
    var parser = STOMPFrameParser(limits: STOMPParserLimits(
        maxBodyLength: max(limits.maxBodyLength, frame.body.count), maxHeaderLineLength: 1 << 20, maxHeaders: 1 << 10))
    parser.append(STOMPFrameEncoder.encode(frame))
    guard case .frame(let again)? = try? parser.next() else {
        fuzzCheck(false, "encoded \(frame.command) frame does not parse")
        return
    }
    fuzzCheck(again.command == frame.command && again.body == frame.body, "\(frame.command) frame changed in a round trip")
    // CONNECT/STOMP/CONNECTED headers are not escaped (STOMP 1.2 "Value Encoding"), and a parser
    // drops one CR before each LF: a client's value ending in CR (its line ended "\r\r\n") cannot
    // be written back exactly. The server only writes CONNECTED, whose values it keeps on one line.
    func comparable(_ entries: [STOMPHeaders.Entry]) -> [STOMPHeaders.Entry] {
        entries.filter { $0.name != "content-length" }.map { entry in
            guard !frame.command.escapesHeaders else { return entry }
            var value = Substring(entry.value)
            while value.hasSuffix("\r") { value = value.dropLast() }
            return STOMPHeaders.Entry(name: entry.name, value: String(value))
        }
    }
    let original = comparable(frame.headers.entries)
    let parsed = comparable(again.headers.entries)
    fuzzCheck(original == parsed, "\(frame.command) headers changed in a round trip: \(original) → \(parsed)")
}

/// What `STOMPSession.recoverPosition` accepts is a position recovery can use.
func checkRecoverHeaders(_ headers: STOMPHeaders) {
    switch STOMPSession.recoverPosition(headers) {
    case .none:
        fuzzCheck(headers["recover-offset"] == nil && headers["recover-epoch"] == nil, "recover headers ignored")
    case .position(let p):
        checkPosition(p)
        fuzzCheck(headers["recover-offset"].flatMap { UInt64($0) } == p.offset, "recover-offset \(headers["recover-offset"] ?? "") read as \(p.offset)")
    case .invalid(let message):
        fuzzCheck(!message.isEmpty, "a refusal without a message")
    }
}

func checkPosition(_ p: HubStreamPosition) {
    let epochOK = !p.epoch.isEmpty && p.epoch.utf8.count <= STOMPSession.maximumEpochLength
        && p.epoch.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    fuzzCheck(p.offset <= UInt64(Int64.max) && epochOK, "accepted recovery position \(p)")
}

struct Harness {
    var session: STOMPSession
    var parser = STOMPFrameParser()
    var now = Duration.zero
    var lastOutbound = Duration.zero
    var pendingAuthentication = false
    var pendingSubscriptions: [STOMPSubscriptionRequest] = []
    var pendingSends: [STOMPSendRequest] = []
    var closed = false
    /// `nextTickDeadline` as of the last change.
    var deadline: Duration?

    mutating func perform(_ actions: [STOMPSession.Action]) {
        for action in actions {
            switch action {
            case .send(let frame):
                checkRoundTrip(frame)
                lastOutbound = now
            case .sendHeartbeat:
                lastOutbound = now
            case .authenticate:
                pendingAuthentication = true
            case .authorizeSubscription(let request):
                if let position = request.recover { checkPosition(position) }
                pendingSubscriptions.append(request)
            case .subscribeRecovering(_, _, let since):
                checkPosition(since)
            case .deliver(let request):
                pendingSends.append(request)
            case .close:
                closed = true
            case .connected, .subscribe, .unsubscribe:
                break
            }
        }
        deadline = session.nextTickDeadline(lastOutboundAt: lastOutbound)
    }
}

func identity(_ input: inout FuzzInput) -> HubIdentity {
    HubIdentity(userId: input.string(maximum: 24), username: input.string(maximum: 24), roles: input.bool() ? ["SHOP_OWNER"] : [])
}

func fuzzSession(_ input: inout FuzzInput) {
    var configuration = STOMPConfiguration()
    configuration.parserLimits = limits(&input)
    configuration.heartBeatSend = input.pick([0, 10_000, 1])
    configuration.heartBeatReceive = input.pick([0, 10_000, 1])
    let queryToken = input.bool() ? "query-token" : nil
    let preauthenticated = input.byte() < 64 ? identity(&input) : nil
    var harness = Harness(session: STOMPSession(
        configuration: configuration, sessionId: "s-1", queryToken: queryToken, identity: preauthenticated, now: .zero))
    harness.deadline = harness.session.nextTickDeadline(lastOutboundAt: .zero)
    var steps = 0
    while !input.isEmpty && !harness.closed && steps < 300 {
        steps += 1
        switch input.byte() % 8 {
        case 0, 1, 2:
            harness.parser.append(input.chunk(maximum: 400))
            harness.session.noteInbound(now: harness.now)
            while !harness.closed {
                let output: STOMPFrameParser.Output
                do {
                    output = try harness.parser.next()
                } catch {
                    harness.perform(harness.session.protocolError(error))
                    break
                }
                if case .needMoreData = output { break }
                if case .frame(let frame) = output {
                    harness.perform(harness.session.receive(frame, now: harness.now))
                }
            }
        case 3:
            let step = Duration.milliseconds(input.int(in: 0...70_000))
            harness.now += step
            let actions = harness.session.tick(now: harness.now, lastOutboundAt: harness.lastOutbound)
            if !actions.isEmpty, let deadline = harness.deadline {
                fuzzCheck(deadline <= harness.now, "tick acted at \(harness.now) but the deadline said \(deadline)")
            }
            harness.perform(actions)
        case 4:
            guard harness.pendingAuthentication else { continue }
            harness.pendingAuthentication = false
            let result: HubAuthResult = input.bool() ? .identity(identity(&input)) : .invalid(reason: input.string(maximum: 40))
            harness.perform(harness.session.authenticationFinished(result))
        case 5:
            guard !harness.pendingSubscriptions.isEmpty else { continue }
            let request = harness.pendingSubscriptions.removeFirst()
            let decision: SubscribeDecision = input.bool() ? .allow : .refuse(code: "refused", message: input.string(maximum: 40))
            harness.perform(harness.session.subscriptionDecided(request, decision))
        case 6:
            guard !harness.pendingSends.isEmpty else { continue }
            let request = harness.pendingSends.removeFirst()
            let outcome: SendOutcome = input.bool() ? .accepted : .refused(code: "refused", message: input.string(maximum: 40))
            harness.perform(harness.session.sendFinished(request, outcome))
        default:
            harness.perform(harness.session.protocolError(message: input.string(maximum: 40)))
        }
    }
}
