import Dispatch
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif
@testable import Hub
import Logging
import NIOCore
import Synchronization

/// SockJS (sockjs-protocol 0.3.3) as LiveHub reads and writes it. The first byte picks the mode:
/// 0. client messages (a JSON array of strings, or one string) assembled from WebSocket frames, and
///    the server's `a[…]` message frames and their merging;
/// 1. the `xhr_send` body decoder (`SockJSFraming.decodeSendBody`);
/// 2. an HTTP session (`SockJSHTTPTransport`, STOMP over `xhr`/`xhr_send`) fed arbitrary bodies and
///    hub publishes, its queue read as a polling response after each.
///
/// Invariants: the strings of a client message, framed by the server as `a[…]`, decode back to the
/// same strings; merging frames gives the concatenation of their messages; the assembler never
/// returns a message over its limit; a decoded `xhr_send` body re-encodes to the same strings;
/// `xhr_send` accepts exactly the bodies the decoder accepts while the session is open; every line
/// of a receiving response is `o`, `h`, an `a[…]` of strings or a `c[code,"reason"]`, and nothing
/// follows a close.
@_cdecl("SockJSFuzzer_main")
public func sockJSFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    let rest = Array(bytes.dropFirst())
    switch mode % 3 {
    case 0: fuzzWebSocketMessages(rest)
    case 1: fuzzSendBody(rest)
    default: fuzzHTTPSession(rest)
    }
}

func fuzzWebSocketMessages(_ bytes: [UInt8]) {
    var input = FuzzInput(bytes)
    let maxSize = input.pick([64, 4096, 6 * 64 * 1024 + 16 * 1024])
    var assembler = MessageAssembler(maxSize: maxSize)
    var frames: [ByteBuffer] = []
    var expected: [String] = []
    while !input.isEmpty {
        let kind = input.pick([HubInboundFrame.Kind.text, .binary, .continuation])
        let frame = HubInboundFrame(kind: kind, data: ByteBuffer(bytes: input.chunk(maximum: 2000)), fin: input.bool())
        guard case .message(_, let message) = assembler.add(frame) else { continue }
        fuzzCheck(message.readableBytes <= maxSize, "assembled \(message.readableBytes) bytes over \(maxSize)")
        guard let strings = try? SockJSFraming.decodeClientMessage(message.readableBytesView) else { continue }
        // What the server frames must decode to the same strings.
        let framed = SockJSFraming.messageFrame(strings.map { Array($0.utf8) })
        fuzzCheck(decodeServerFrame(framed) == strings, "a[…] framing changed the messages")
        if !strings.isEmpty {
            frames.append(ByteBuffer(bytes: framed))
            expected += strings
        }
    }
    if !frames.isEmpty {
        let merged = SockJSFraming.merge(frames)
        fuzzCheck(decodeServerFrame(Array(merged.readableBytesView)) == expected, "merged a[…] frames lost or changed messages")
    }
}

/// A server `a[…]` frame → its strings (as a SockJS client reads it).
func decodeServerFrame(_ frame: [UInt8]) -> [String]? {
    guard frame.first == UInt8(ascii: "a") else { return nil }
    return try? SockJSFraming.decodeClientMessage(frame.dropFirst())
}

// MARK: xhr_send

func fuzzSendBody(_ bytes: [UInt8]) {
    guard let strings = try? SockJSFraming.decodeSendBody(bytes) else { return }
    let framed = SockJSFraming.messageFrame(strings.map { Array($0.utf8) })
    fuzzCheck(decodeServerFrame(framed) == strings, "an xhr_send body's strings changed when framed")
    fuzzCheck((try? SockJSFraming.decodeSendBody(framed.dropFirst())) == strings, "a framed body does not decode as a send body")
}

// MARK: An HTTP session

struct FuzzAuthenticator: HubAuthenticator {
    func authenticate(token: String) async -> HubAuthResult {
        token.hasPrefix("good") ? .identity(HubIdentity(userId: String(token.prefix(12)), username: "fuzz")) : .invalid(reason: "bad token")
    }
}

struct FuzzBackend: LiveRoomBackend {
    func canSubscribe(destination: String, connection: HubConnectionContext) async -> SubscribeDecision {
        destination.hasSuffix("/no") ? .refuse(code: "no", message: "refused") : .allow
    }
    func handleSend(destination: String, body: ByteBuffer, contentType: String?, connection: HubConnectionContext) async -> SendOutcome {
        body.readableBytes % 2 == 0 ? .accepted : .refused(code: "odd", message: "odd body")
    }
    func connectionClosed(_ connection: HubConnectionContext) async {}
}

/// Runs `body` on a task and waits for it (the harness is synchronous).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let result = Mutex<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return result.withLock { $0! }
}

let quietLogger: Logger = {
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    return logger
}()

/// Checks the lines of a receiving response; returns true if it ended with a close frame.
func checkReceivingLines(_ body: ByteBuffer) -> Bool {
    let text = Array(body.readableBytesView)
    fuzzCheck(text.isEmpty || text.last == UInt8(ascii: "\n"), "a response that does not end a line")
    var closed = false
    for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
        fuzzCheck(!closed, "a line after the close frame")
        switch line.first {
        case UInt8(ascii: "o"), UInt8(ascii: "h"):
            fuzzCheck(line.count == 1, "an o/h frame with more")
        case UInt8(ascii: "a"):
            fuzzCheck(decodeServerFrame(Array(line)) != nil, "an a[…] frame that is not an array of strings")
        case UInt8(ascii: "c"):
            guard case .array(let parts)? = try? JSONValue(parsing: line.dropFirst()), parts.count == 2,
                case .number = parts[0], case .string = parts[1]
            else {
                fuzzCheck(false, "a malformed close frame")
                return true
            }
            closed = true
        default:
            fuzzCheck(false, "an unknown frame")
        }
    }
    return closed
}

func fuzzHTTPSession(_ bytes: [UInt8]) {
    var input = FuzzInput(bytes)
    let hub = Hub(
        configuration: HubConfiguration(outboundQueue: OutboundQueueLimits(maxFrames: input.pick([4, 256]), maxBytes: 1 << 20)),
        clock: ManualHubClock().clock)
    let endpoint = STOMPEndpoint(
        hub: hub, backend: FuzzBackend(), authenticator: FuzzAuthenticator(),
        configuration: STOMPConfiguration(parserLimits: STOMPParserLimits(maxBodyLength: input.pick([64, 65_536]), maxHeaderLineLength: 1024, maxHeaders: 16)))
    let transport = SockJSHTTPTransport(endpoint: endpoint, logger: quietLogger)
    guard case .success(let receiving) = transport.open(server: "0", session: "s", peer: nil, queryToken: nil) else {
        fuzzCheck(false, "the session did not open")
        return
    }
    let session = receiving.session
    let first = blocking { await transport.poll(receiving, isConnected: { true }, abort: {}) }
    fuzzCheck(String(buffer: first) == "o\n", "the first poll was not o")
    var closed = false
    while !input.isEmpty {
        switch input.int(in: 0...3) {
        case 0:
            // One message for the chat topic the body may have subscribed to.
            _ = hub.publish(topic: "/topic/live/1/chat", json: #"{"n":\#(input.byte())}"#)
        default:
            let body = input.chunk(maximum: 4000)
            let decodable = (try? SockJSFraming.decodeSendBody(body)) != nil
            let outcome = transport.send(server: "0", session: "s", body: ByteBuffer(bytes: body))
            switch outcome {
            case .accepted: fuzzCheck(decodable && !closed, "xhr_send accepted a body the decoder refuses, or after the close")
            case .invalidBody: fuzzCheck(!decodable || closed, "xhr_send refused a decodable body")
            case .unknownSession: fuzzCheck(session.isClosed, "xhr_send lost an open session")
            case .busy: break
            }
            // Wait until the session handled it.
            while session.inboundBacklogBytes > 0 { usleep(20) }
        }
        // What a polling request would get now.
        let items = session.connection.queue.takeAll()
        guard !items.isEmpty else { continue }
        let (chunk, closeReason) = SockJSHTTPTransport.encode(items, handle: session.handle)
        let endedWithClose = checkReceivingLines(chunk)
        fuzzCheck(endedWithClose == (closeReason != nil), "a close without its c[…] frame, or a c[…] without a close")
        if let closeReason {
            session.close(closeReason)
            closed = true
        }
    }
    session.close(.normal)
    blocking { while session.inboundBacklogBytes > 0 || hub.snapshot().connections > 0 { try? await Task.sleep(for: .microseconds(50)) } }
}
