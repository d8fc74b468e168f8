import FuzzSupport
@testable import Hub

/// Engine.IO v4 / Socket.IO v5: the packet parsers, and the per-connection session driven by
/// fuzzed text messages, binary messages, clock ticks and the answers of the authenticator and the
/// bell backend.
///
/// | mode (byte % 2) | what is fed |
/// |---|---|
/// | 0 | one text message to `EngineIOPacket.decode` and, inside a `4` packet, `SocketIOPacket.decode` |
/// | 1 | a script for `SocketIOSession` (either missing-token policy) |
///
/// Invariants:
/// - a decoded Socket.IO packet encodes to text that decodes to the same packet;
/// - every packet the session sends decodes (it is valid Engine.IO / Socket.IO);
/// - `nextTickDeadline` is never later than the first tick that acts;
/// - a socket that joined without a token is closed no later than that first join + `authTimeout`
///   unless a token was accepted, whatever it sends in between (in or out of the namespace).
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
    if mode % 2 == 0 {
        fuzzPackets(String(decoding: input.rest(), as: UTF8.self))
    } else {
        fuzzSession(&input)
    }
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
