public import Logging
public import NIOCore
import Synchronization

/// Settings of SockJS's HTTP transports (`SockJSHTTPTransport`).
public struct SockJSHTTPConfiguration: Sendable {
    /// A session with no receiving request this long is closed, and a closed one answers with its
    /// close frame this long (sockjs-protocol: 5 s; Spring's `disconnectDelay` and sockjs-node's too).
    public var disconnectDelay: Duration
    /// An `xhr_streaming` response ends once it has sent this many bytes (the client opens the next
    /// one; the session lives on), so the browser can let go of what it received (sockjs-protocol
    /// "XhrStreaming.test_response_limit"; Spring's `streamBytesLimit`, 128 KiB).
    public var streamBytesLimit: Int
    /// Open sessions (live and recently closed) in all.
    public var maxSessions: Int
    /// Longest `{session}` path segment accepted (sockjs-client makes 8 characters).
    public var maxSessionIdLength: Int
    /// Longest `{server}` path segment accepted (sockjs-client makes 3 digits).
    public var maxServerIdLength: Int

    public init(
        disconnectDelay: Duration = .seconds(5), streamBytesLimit: Int = 128 * 1024, maxSessions: Int = 10_000,
        maxSessionIdLength: Int = 64, maxServerIdLength: Int = 32
    ) {
        self.disconnectDelay = disconnectDelay
        self.streamBytesLimit = streamBytesLimit
        self.maxSessions = maxSessions
        self.maxSessionIdLength = maxSessionIdLength
        self.maxServerIdLength = maxServerIdLength
    }
}

/// The Server's per-client-address count a session holds while it exists (the WebSocket one:
/// a SockJS HTTP session counts as a WebSocket would).
public struct SockJSHTTPAdmission: Sendable {
    public let acquire: @Sendable (String) -> Bool
    public let release: @Sendable (String) -> Void
    /// What is refused, for the 429's message ("open WebSockets").
    public let limitDescription: String

    public init(limitDescription: String, acquire: @escaping @Sendable (String) -> Bool, release: @escaping @Sendable (String) -> Void) {
        self.limitDescription = limitDescription
        self.acquire = acquire
        self.release = release
    }
}

/// STOMP over SockJS's HTTP transports (sockjs-protocol 0.3.3 "XhrPolling", "XhrStreaming"), as
/// Spring's `withSockJS()` serves them to clients whose WebSocket is blocked:
/// - `POST <base>/{server}/{session}/xhr`: polling. An unknown session is opened and answered `o\n`;
///   later requests get what is queued at once (one line per frame, `a[…]` runs merged) or are held
///   until something is (a heart-beat `h` at the latest).
/// - `POST <base>/{server}/{session}/xhr_streaming`: the 2 KiB `h` prelude, then every frame as a
///   line, until `streamBytesLimit` bytes were sent.
/// - `POST <base>/{server}/{session}/xhr_send`: a JSON array of strings, the client's STOMP frames.
///
/// The session is the key; `{server}` only needs to be valid. A second receiving request while one
/// is open is answered `c[2010,"Another connection still open"]`; a closed session's requests
/// `c[3000,"Go away!"]` until it is forgotten. HTTP status, headers and CORS are the Server's.
public final class SockJSHTTPTransport: Sendable {
    /// A receiving request's session, found or opened by `open`.
    public struct Receiving: Sendable {
        let session: SockJSHTTPSession
        /// The session was opened by this request.
        public let isNew: Bool
    }

    /// Why a request was not served: an HTTP status with a `{error, message}` code and text.
    public struct Refusal: Error, Sendable, Hashable {
        public let status: Int
        public let code: String
        public let message: String
    }

    public enum SendOutcome: Sendable, Hashable {
        /// Queued for the session, in order (204).
        case accepted
        /// No such session, or it has closed (404).
        case unknownSession
        /// 500 with `message` (sockjs-protocol).
        case invalidBody(SockJSFraming.SendBodyError)
        /// Too many bodies wait to be handled (503).
        case busy
    }

    private struct Entry {
        let session: SockJSHTTPSession
        let peer: String?
    }

    public let endpoint: STOMPEndpoint
    public let configuration: SockJSHTTPConfiguration
    let admission: SockJSHTTPAdmission?
    let logger: Logger
    private let sessions = Mutex<[String: Entry]>([:])

    public init(endpoint: STOMPEndpoint, configuration: SockJSHTTPConfiguration = .init(), admission: SockJSHTTPAdmission? = nil, logger: Logger) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.admission = admission
        self.logger = logger
    }

    /// Sessions held now (live and recently closed).
    public var sessionCount: Int { self.sessions.withLock { $0.count } }

    /// True while a receiving request holds session `id` (tests).
    func hasReceiver(session id: String) -> Bool { self.sessions.withLock { $0[id]?.session }?.hasReceiver ?? false }

    /// Largest `xhr_send` body: the SockJS message limit of the WebSocket transport.
    public var maxSendBodyBytes: Int { self.endpoint.configuration.maxSockJSMessageSize }

    /// True for a `{server}`/`{session}` pair the transports accept (else 404).
    public func isValidPath(server: some StringProtocol, session: some StringProtocol) -> Bool {
        SockJSFraming.isValidSessionSegment(server, maxLength: self.configuration.maxServerIdLength)
            && SockJSFraming.isValidSessionSegment(session, maxLength: self.configuration.maxSessionIdLength)
    }

    // MARK: Receiving

    /// Finds the session of a receiving request, or opens it: a STOMP connection over SockJS framing
    /// (`queryToken` as the WebSocket's `token` query parameter). `peer` is the client's address key
    /// for `admission`.
    public func open(server: String, session id: String, peer: String?, queryToken: String?) -> Result<Receiving, Refusal> {
        guard self.isValidPath(server: server, session: id) else {
            return .failure(Refusal(status: 404, code: "NOT_FOUND", message: "not a SockJS session path"))
        }
        let opened: Result<Receiving, Refusal> = self.sessions.withLock { sessions in
            if let entry = sessions[id] { return .success(Receiving(session: entry.session, isNew: false)) }
            guard sessions.count < self.configuration.maxSessions else {
                return .failure(Refusal(
                    status: 503, code: "TOO_MANY_SESSIONS",
                    message: "the server holds \(self.configuration.maxSessions) SockJS sessions; try again later"))
            }
            if let peer, let admission = self.admission, !admission.acquire(peer) {
                return .failure(Refusal(
                    status: 429, code: "TOO_MANY_CONNECTIONS",
                    message: "this address already has too many \(admission.limitDescription); close one first"))
            }
            guard let handle = self.endpoint.open(framing: .sockJS, queryToken: queryToken, identity: nil, logger: self.logger) else {
                if let peer { self.admission?.release(peer) }
                return .failure(Refusal(status: 503, code: "SHUTTING_DOWN", message: "the server is shutting down"))
            }
            let session = SockJSHTTPSession(
                key: id, handle: handle, clock: self.endpoint.hub.clock, disconnectDelay: self.configuration.disconnectDelay,
                maxInboundBytes: self.endpoint.hub.configuration.maxInboundBytes)
            sessions[id] = Entry(session: session, peer: peer)
            return .success(Receiving(session: session, isNew: true))
        }
        if case .success(let receiving) = opened, receiving.isNew {
            let ticker = ConnectionTicker.shared(interval: receiving.session.handle.tickInterval)
            receiving.session.startTicking(on: ticker) { [weak self] session in self?.forget(session) }
        }
        return opened
    }

    private func forget(_ session: SockJSHTTPSession) {
        let peer: String?? = self.sessions.withLock { sessions in
            guard let entry = sessions[session.key], entry.session === session else { return nil }
            sessions.removeValue(forKey: session.key)
            return .some(entry.peer)
        }
        if case .some(.some(let peer)) = peer { self.admission?.release(peer) }
    }

    /// `xhr`: the body of one polling response (`o\n` for a new session, then what is queued, held
    /// until something is).
    /// - Parameters:
    ///   - isConnected: whether the request's HTTP connection is still open.
    ///   - abort: closes it.
    public func poll(
        _ receiving: Receiving, isConnected: @escaping @Sendable () -> Bool, abort: @escaping @Sendable () -> Void
    ) async -> ByteBuffer {
        var body = ByteBuffer()
        await self.receive(receiving, streaming: false, isConnected: isConnected, abort: abort) { body.writeImmutableBuffer($0) }
        return body
    }

    /// `xhr_streaming`: writes the prelude, then every frame as a line through `write`, until the
    /// session closes, `streamBytesLimit` bytes were sent, or `write` throws (the client left).
    public func stream(
        _ receiving: Receiving, isConnected: @escaping @Sendable () -> Bool, abort: @escaping @Sendable () -> Void,
        write: (ByteBuffer) async throws -> Void
    ) async {
        await self.receive(receiving, streaming: true, isConnected: isConnected, abort: abort, emit: write)
    }

    private func receive(
        _ receiving: Receiving, streaming: Bool, isConnected: @escaping @Sendable () -> Bool, abort: @escaping @Sendable () -> Void,
        emit: (ByteBuffer) async throws -> Void
    ) async {
        let session = receiving.session
        let prelude = streaming ? ByteBuffer(string: SockJSFraming.streamingPrelude) : nil
        switch session.attach(isConnected: isConnected, abort: abort) {
        case .closed:
            let leftover = session.takeLeftover()
            let goodbye = leftover.isEmpty ? ByteBuffer(string: SockJSFraming.closeFrame()) : Self.encode(leftover, handle: session.handle).0
            try? await emit(Self.lines([prelude, goodbye]))
        case .busy:
            try? await emit(Self.lines([prelude, ByteBuffer(string: SockJSFraming.anotherConnectionStillOpen)]))
        case .attached(let receiver):
            defer { session.detach(receiver) }
            if let prelude {
                do { try await emit(prelude) } catch { return }
            }
            var sent = 0
            while true {
                switch await session.next(for: receiver) {
                case .gone:
                    return
                case .closed:
                    try? await emit(Self.lines([ByteBuffer(string: SockJSFraming.closeFrame())]))
                    return
                case .items(let items):
                    let (chunk, closeReason) = Self.encode(items, handle: session.handle)
                    if let closeReason { session.close(closeReason) }
                    if chunk.readableBytes > 0 {
                        do { try await emit(chunk) } catch { return }
                        session.connection.noteWrite(at: session.clock.now())
                        sent += chunk.readableBytes
                    }
                    if closeReason != nil { return }
                    if chunk.readableBytes > 0 && (!streaming || sent >= self.configuration.streamBytesLimit) { return }
                }
            }
        }
    }

    /// Lines of a receiving response: every frame then `\n` (merged `a[…]` runs; a heart-beat `h`
    /// only when nothing else goes, and once; a close's goodbye always ends with a `c[…]` frame).
    static func encode(_ items: [HubOutboundItem], handle: HubSessionHandle) -> (ByteBuffer, closed: HubCloseReason?) {
        var frames: [HubOutboundFrame] = []
        var closed: HubCloseReason?
        for item in items {
            switch item {
            case .frame(let frame): frames.append(frame)
            case .close(let reason): closed = reason
            }
            if closed != nil { break }
        }
        frames = handle.coalesce(frames)
        if let closed {
            let goodbye = handle.goodbye(closed)
            frames += goodbye
            if !goodbye.contains(where: { SockJSFraming.isCloseFrame($0.buffer) }) {
                frames.append(.text(ByteBuffer(string: SockJSFraming.closeFrame())))
            }
        }
        let onlyHeartbeats = frames.allSatisfy { SockJSFraming.isHeartbeatFrame($0.buffer) }
        var out = ByteBuffer()
        var heartbeatWritten = false
        for frame in frames {
            if SockJSFraming.isHeartbeatFrame(frame.buffer) {
                if !onlyHeartbeats || heartbeatWritten { continue }
                heartbeatWritten = true
            }
            out.writeImmutableBuffer(frame.buffer)
            out.writeInteger(UInt8(ascii: "\n"))
        }
        return (out, closed)
    }

    private static func lines(_ frames: [ByteBuffer?]) -> ByteBuffer {
        var out = ByteBuffer()
        for case let frame? in frames {
            out.writeImmutableBuffer(frame)
            if !(frame.readableBytes > 0 && frame.getInteger(at: frame.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\n")) {
                out.writeInteger(UInt8(ascii: "\n"))
            }
        }
        return out
    }

    // MARK: Sending

    /// `xhr_send`: checks the body (sockjs-protocol: an empty one is "Payload expected.", bad JSON
    /// "Broken JSON encoding.") and hands it to the session, in order. The body's size is the
    /// Server's to bound (`maxSendBodyBytes`).
    public func send(server: String, session id: String, body: ByteBuffer) -> SendOutcome {
        guard self.isValidPath(server: server, session: id),
            let session = self.sessions.withLock({ $0[id]?.session }), !session.isClosed
        else { return .unknownSession }
        do {
            _ = try SockJSFraming.decodeSendBody(body.readableBytesView)
        } catch {
            return .invalidBody(error)
        }
        switch session.send(HubInboundFrame(kind: .text, data: body)) {
        case .accepted: return .accepted
        case .closed: return .unknownSession
        case .busy: return .busy
        }
    }
}
