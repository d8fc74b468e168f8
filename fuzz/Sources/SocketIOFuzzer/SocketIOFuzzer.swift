import Dispatch
import FuzzSupport
import Logging
import NIOCore
@testable import Hub

/// Engine.IO v4 / Socket.IO v5: the packet parsers, and the per-connection session driven by
/// fuzzed text messages, binary messages, clock ticks and the answers of the authenticator and the
/// bell backend.
///
/// | mode (byte % 4) | what is fed |
/// |---|---|
/// | 0 | one text message to `EngineIOPacket.decode` and, inside a `4` packet, `SocketIOPacket.decode` |
/// | 1 | a script for `SocketIOSession` (either missing-token policy) |
/// | 2 | a long-polling body to `EngineIOPayload.decode` (any `maxPayload`) |
/// | 3 | a long-polling session (`EngineIOPolling` over `PolledConnection`, a real `Hub`) fed POST bodies, polls and clock ticks |
///
/// Invariants:
/// - a decoded Socket.IO packet encodes to text that decodes to the same packet;
/// - every packet the session sends decodes (it is valid Engine.IO / Socket.IO);
/// - `nextTickDeadline` is never later than the first tick that acts;
/// - a socket that joined without a token is closed no later than that first join + `authTimeout`
///   unless a token was accepted, whatever it sends in between (in or out of the namespace);
/// - a decoded payload re-encodes to a body that decodes to the same packets;
/// - a polling session answers 200 (a payload of valid packets, or `ok`), 400 or 413, nothing else;
///   once closed it is gone from the registry and the hub (no session or connection leaks).
@_cdecl("SocketIOFuzzer_main")
public func socketIOFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    var input = FuzzInput(Array(bytes.dropFirst()))
    switch mode % 4 {
    case 0: fuzzPackets(String(decoding: input.rest(), as: UTF8.self))
    case 1: fuzzSession(&input)
    case 2: fuzzPayload(&input)
    default: fuzzPolling(Array(bytes.dropFirst()))
    }
}

// MARK: Long-polling

func fuzzPayload(_ input: inout FuzzInput) {
    let maxPayload = input.pick([1_000_000, 64, 1])
    let body = ByteBuffer(bytes: input.rest())
    guard let packets = try? EngineIOPayload.decode(body, maxPayload: maxPayload) else { return }
    fuzzCheck(!packets.isEmpty && body.readableBytes <= maxPayload, "decoded an empty or oversized payload")
    let frames = packets.map { packet -> HubOutboundFrame in
        switch packet {
        case .text(let text): return .text(ByteBuffer(string: text))
        case .binary(let count): return .binary(ByteBuffer(repeating: 0, count: count))
        }
    }
    let again = try? EngineIOPayload.decode(EngineIOPayload.encode(frames), maxPayload: .max)
    fuzzCheck(again == packets, "payload changed in a round trip: \(packets) → \(String(describing: again))")
}

struct FuzzAuthenticator: HubAuthenticator {
    func authenticate(token: String) async -> HubAuthResult {
        token.hasPrefix("good") ? .identity(HubIdentity(userId: String(token.prefix(6)), username: "U")) : .invalid(reason: "bad")
    }
}

struct FuzzBellBackend: BellBackend {
    func handleEvent(name: String, payload: JSONValue, connection: HubConnectionContext, identity: HubIdentity) async -> BellEventResult {
        name == "fail" ? .error(code: "bad", message: "no") : .ack(["ok": true])
    }
}

/// One hub and polling transport for every input (a session never outlives its input).
enum PollingRig {
    static let clock = ManualHubClock()
    static let hub = Hub(clock: clock.clock)
    static let polling = EngineIOPolling(
        endpoint: SocketIOEndpoint(
            hub: hub, backend: FuzzBellBackend(), authenticator: FuzzAuthenticator(),
            // The process-wide ticker of this interval never fires during a run: the harness ticks.
            configuration: SocketIOConfiguration(
                pingInterval: 1000, pingTimeout: 1000, maxPayload: 512, missingToken: .requireAuthEvent(timeout: .seconds(3)),
                tickInterval: .seconds(3600))),
        limits: .init(maxSessions: 4))
    static let logger = Logger(label: "fuzz")
    static let packets = [
        #"40{"token":"good-1"}"#, "40", #"42["AUTH",{"token":"good-2"}]"#, #"421["x",{}]"#, #"422["fail"]"#, "2", "3", "41", "1", "bAQID", "5",
    ]
}

/// Runs `body` to its end on the concurrency runtime (libFuzzer calls in synchronously).
func blocking(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task {
        await body()
        done.signal()
    }
    done.wait()
}

func fuzzPolling(_ bytes: [UInt8]) {
    blocking { await runPolling(bytes) }
}

/// Every packet of a 200 answer is one the client can decode.
func checkPollAnswer(_ answer: EngineIOPolling.Answer) -> Bool {
    fuzzCheck([200, 400].contains(answer.status), "poll answered \(answer.status): \(answer.text)")
    guard answer.status == 200 else { return false }
    guard let packets = try? EngineIOPayload.decode(answer.body, maxPayload: .max) else {
        fuzzCheck(false, "undecodable poll answer: \(answer.text)")
        return false
    }
    var closed = false
    for packet in packets {
        guard case .text(let text) = packet else {
            fuzzCheck(false, "binary packet in a bell answer")
            continue
        }
        checkSent(text)
        closed = text == "1"
    }
    return closed
}

func runPolling(_ bytes: [UInt8]) async {
    var input = FuzzInput(bytes)
    let (hub, polling, clock) = (PollingRig.hub, PollingRig.polling, PollingRig.clock)
    let open = await polling.get(query: ["EIO": "4", "transport": "polling"], address: nil, logger: PollingRig.logger)
    fuzzCheck(open.status == 200 && open.text.hasPrefix("0{"), "handshake answered \(open.status): \(open.text)")
    guard let sid = (try? JSONValue(parsing: Array(open.text.utf8.dropFirst())))?["sid"]?.stringValue,
        let session = polling.session(sid)
    else {
        fuzzCheck(false, "no session after the handshake")
        return
    }
    let query = ["EIO": "4", "transport": "polling", "sid": sid]
    var ended = false
    var steps = 0
    while !input.isEmpty && !ended && steps < 100 {
        steps += 1
        switch input.byte() % 6 {
        case 0, 1:
            let answer = await polling.post(query: query, body: ByteBuffer(bytes: input.chunk(maximum: 600)), logger: PollingRig.logger)
            fuzzCheck([200, 400, 413].contains(answer.status), "POST answered \(answer.status)")
            if answer.status == 200 { fuzzCheck(answer.text == "ok", "POST answered \(answer.text)") }
        case 2:
            var packets: [String] = []
            for _ in 0..<(1 + Int(input.byte() % 4)) { packets.append(input.pick(PollingRig.packets)) }
            _ = await polling.post(query: query, body: EngineIOPayload.encode(texts: packets), logger: PollingRig.logger)
        case 3:
            ended = checkPollAnswer(await polling.answerPoll(session, maxWait: .zero))
        case 4:
            clock.advance(by: .milliseconds(input.int(in: 0...4000)))
            _ = await session.polled.tick()
        default:
            // The Server's path for a body it stopped reading.
            _ = polling.payloadTooLarge(query: query)
        }
    }
    // Whatever happened, a closed session leaves nothing behind.
    if !ended {
        hub.close(session.polled.connection, reason: .normal)
        ended = checkPollAnswer(await polling.answerPoll(session, maxWait: .zero))
        fuzzCheck(ended || session.polled.isFinished, "a closed session's poll did not end it")
    }
    fuzzCheck(polling.sessionCount == 0, "a finished long-polling session stayed registered")
    fuzzCheck(hub.snapshot().connections == 0, "a finished long-polling session stayed in the hub")
}

func fuzzPackets(_ text: String) {
    guard case .message(let inner)? = try? EngineIOPacket.decode(text) else { return }
    guard let packet = try? SocketIOPacket.decode(inner) else { return }
    let again = try? SocketIOPacket.decode(packet.encoded)
    fuzzCheck(again == packet, "Socket.IO packet changed in a round trip: \(packet) → \(String(describing: again))")
}

/// Every packet the server sends must be one a client can decode.
func checkSent(_ text: String) {
    guard let packet = try? EngineIOPacket.decode(text) else {
        fuzzCheck(false, "server sent an undecodable Engine.IO packet: \(text)")
        return
    }
    if case .message(let inner) = packet {
        fuzzCheck((try? SocketIOPacket.decode(inner)) != nil, "server sent an undecodable Socket.IO packet: \(inner)")
    }
}

enum Pending {
    case authentication(SocketIOSession.AuthPurpose)
    /// The hub's per-user connection count decides (`admissionDecided`).
    case admission(HubIdentity, SocketIOSession.AuthPurpose)
    case dispatch(SocketIOEventRequest)
}

func fuzzSession(_ input: inout FuzzInput) {
    let authTimeout = Duration.seconds(10)
    var configuration = SocketIOConfiguration()
    configuration.missingToken = input.bool() ? .reject : .requireAuthEvent(timeout: authTimeout)
    configuration.maxPayload = input.pick([1_000_000, 64])
    let preauthenticated = input.byte() < 48 ? HubIdentity(userId: "u1", username: "User") : nil
    var session = SocketIOSession(configuration: configuration, engineSid: "e1", socketSid: "s1", identity: preauthenticated, now: .zero)
    var now = Duration.zero
    var pending: [Pending] = []
    var closed = false
    var deadline: Duration? = session.nextTickDeadline()
    /// The AUTH deadline counts from the socket's first join without a token; nothing moves it.
    var firstUnauthenticatedJoin: Duration?
    func perform(_ actions: [SocketIOSession.Action]) {
        for action in actions {
            switch action {
            case .send(let text): checkSent(text)
            case .authenticate(_, let purpose): pending.append(.authentication(purpose))
            case .dispatch(let request): pending.append(.dispatch(request))
            case .admit(let identity, let purpose): pending.append(.admission(identity, purpose))
            case .close: closed = true
            case .joined(nil):
                if firstUnauthenticatedJoin == nil { firstUnauthenticatedJoin = now }
            case .joined(.some), .identityChanged:
                firstUnauthenticatedJoin = nil  // a token was accepted: the deadline is met
            case .left: break
            }
        }
        deadline = session.nextTickDeadline()
    }
    perform(session.open())
    var steps = 0
    while !input.isEmpty && !closed && steps < 300 {
        steps += 1
        switch input.byte() % 6 {
        case 0, 1:
            perform(session.receive(input.string(maximum: 300), now: now))
        case 2:
            perform(session.receiveBinary(now: now))
        case 3:
            now += .milliseconds(input.int(in: 0...60_000))
            let actions = session.tick(now: now)
            if !actions.isEmpty { fuzzCheck(deadline.map { $0 <= now } ?? true, "tick acted at \(now), deadline was \(String(describing: deadline))") }
            perform(actions)
        case 4:
            guard !pending.isEmpty else { continue }
            let next = pending.removeFirst()
            switch next {
            case .authentication(let purpose):
                let result: HubAuthResult = input.bool() ? .identity(HubIdentity(userId: input.string(maximum: 16), username: input.string(maximum: 16))) : .invalid(reason: input.string(maximum: 30))
                perform(session.authenticationFinished(result, purpose: purpose))
            case .admission(let identity, let purpose):
                perform(session.admissionDecided(input.byte() < 230, identity: identity, purpose: purpose, limit: 20))
            case .dispatch(let request):
                if input.bool() {
                    perform(session.rateLimited(request))
                } else {
                    let result: BellEventResult = input.bool() ? .ack(["ok": true]) : .error(code: "bad", message: input.string(maximum: 30))
                    perform(session.eventFinished(request, result))
                }
            }
        default:
            // A connected socket that never authenticated must be gone by the AUTH deadline.
            if case .requireAuthEvent = configuration.missingToken, firstUnauthenticatedJoin != nil, !session.isClosed, session.identity == nil,
                !pending.contains(where: {
                    switch $0 {
                    case .authentication, .admission: return true
                    case .dispatch: return false
                    }
                })
            {
                now = max(now, (firstUnauthenticatedJoin ?? now) + authTimeout)
                perform(session.tick(now: now))
                fuzzCheck(closed, "an unauthenticated socket outlived its AUTH deadline (now \(now))")
            }
        }
    }
}
