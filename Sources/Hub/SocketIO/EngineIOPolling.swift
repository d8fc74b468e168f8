public import Logging
public import NIOCore
import NIOWebSocket
import Synchronization

/// Admits one more session from a client address, or not; told when it ends. The Server's count of
/// WebSockets per address, which long-polling sessions share.
public protocol HubAddressAdmission: Sendable {
    func acquire(_ address: String) -> Bool
    func release(_ address: String)
}

/// The bell's Engine.IO v4 HTTP long-polling transport and its upgrade to WebSocket
/// (engine.io-protocol v4 "HTTP long-polling", "Handshake", "Upgrade"), as socket.io v4 servers
/// offer it: what a default `socket.io-client` or python-socketio client starts with.
///
/// - `GET ?EIO=4&transport=polling` (no `sid`): a new session; answered with the open packet
///   `0{"sid",…,"upgrades":["websocket"],…}`.
/// - `GET …&sid=X`: a long poll, answered at once when packets wait, else when one arrives or after
///   `pingInterval` (with a `6` noop); packets are separated by `0x1E` (`EngineIOPayload`). A second
///   GET while one waits closes the session (engine.io: "overlap from client").
/// - `POST …&sid=X`: a batch from the client, fed to the session in order, answered `ok`; a body
///   above `maxPayload` is answered 413 by the Server and closes the session; a malformed one 400.
/// - A WebSocket `…&transport=websocket&sid=X`: the upgrade. The client sends `2probe`, the server
///   answers `3probe` and answers the waiting GET (`6`, and every GET at once from then on, so the
///   client can pause polling); the client sends `5` and the same session (same Socket.IO sid, same
///   joined user, the queued packets first) continues on the WebSocket (`ConnectionRunner.attach`).
///   A probe that does not finish within `upgradeTimeout` is closed; polling goes on.
///
/// The session itself is `SocketIOSession` as on a WebSocket (heart-beats, connect and AUTH
/// deadlines, token expiry), carried by a `PolledConnection`: a session nobody polls for
/// `pingInterval + pingTimeout` is closed. Errors are engine.io's: status 400 with
/// `{"code":N,"message":"…"}` (0 transport unknown, 1 session ID unknown, 2 bad handshake method,
/// 3 bad request, 5 unsupported protocol version); LiveHub's own limits answer 413, 429 and 503
/// with `{"error","message"}`.
public final class EngineIOPolling: Sendable {
    public struct Limits: Sendable, Hashable {
        /// Long-polling sessions open at once, all clients together (0: the transport is off).
        public var maxSessions: Int
        /// How long an upgrading WebSocket may take from its upgrade to `5` (engine.io's `upgradeTimeout`).
        public var upgradeTimeout: Duration

        public init(maxSessions: Int = 10_000, upgradeTimeout: Duration = .seconds(10)) {
            self.maxSessions = max(0, maxSessions)
            self.upgradeTimeout = upgradeTimeout
        }
    }

    /// An HTTP answer for the Server to write.
    public struct Answer: Sendable, Hashable {
        public var status: Int
        public var contentType: String
        public var body: ByteBuffer

        public var text: String { String(buffer: self.body) }

        static let textPlain = "text/plain; charset=UTF-8"

        static func payload(_ frames: [HubOutboundFrame]) -> Answer {
            Answer(status: 200, contentType: textPlain, body: EngineIOPayload.encode(frames))
        }

        static func engineIO(_ rejection: EngineIOHandshake.Rejection) -> Answer {
            Answer(status: rejection.status, contentType: "application/json", body: ByteBuffer(string: rejection.body))
        }

        /// LiveHub's own refusals, as the REST API writes them.
        static func refusal(_ status: Int, _ code: String, _ message: String) -> Answer {
            Answer(status: status, contentType: "application/json; charset=utf-8", body: ByteBuffer(string: #"{"error":"\#(code)","message":"\#(message)"}"#))
        }
    }

    /// What to do with a WebSocket upgrade request on `/socket.io/`.
    public enum UpgradeVerdict: Sendable {
        /// Upgrade, then hand the channel to this (on its event loop).
        case accept(@Sendable (any Channel, Logger) -> Void)
        case reject(EngineIOHandshake.Rejection)
    }

    public let endpoint: SocketIOEndpoint
    public let limits: Limits
    let perAddress: (any HubAddressAdmission)?
    private struct Registry {
        var sessions: [String: EngineIOPollingSession] = [:]
        /// Handshakes admitted and not yet in `sessions`.
        var opening = 0
    }
    private let registry = Mutex(Registry())

    public init(endpoint: SocketIOEndpoint, limits: Limits = .init(), perAddress: (any HubAddressAdmission)? = nil) {
        self.endpoint = endpoint
        self.limits = limits
        self.perAddress = perAddress
    }

    /// The largest POST body accepted (`maxPayload` of the handshake); the Server answers a larger
    /// one with `payloadTooLarge`.
    public var maxPayload: Int { self.endpoint.configuration.maxPayload }
    /// Long-polling sessions open now.
    public var sessionCount: Int { self.registry.withLock { $0.sessions.count } }

    /// How long a GET waits for packets: the ping interval (the server's ping answers it), at least 100 ms.
    var pollWait: Duration { .milliseconds(max(100, self.endpoint.configuration.pingInterval)) }
    var idleTimeout: Duration { .milliseconds(self.endpoint.configuration.pingInterval + self.endpoint.configuration.pingTimeout) }

    func session(_ sid: String) -> EngineIOPollingSession? { self.registry.withLock { $0.sessions[sid] } }

    // MARK: Requests

    /// `GET /socket.io/?EIO=4&transport=polling[&sid=X]`. `address` is the client's (per-address limit).
    public func get(query: [String: String], address: String?, logger: Logger) async -> Answer {
        if let rejection = self.checkPolling(query) { return .engineIO(rejection) }
        guard let sid = query["sid"], !sid.isEmpty else { return await self.handshake(address: address, logger: logger) }
        guard let session = self.session(sid) else { return .engineIO(.sessionUnknown) }
        return await self.answerPoll(session, maxWait: session.answersAtOnce ? .zero : self.pollWait)
    }

    /// One GET of `session`, waiting at most `maxWait` (tests and the fuzzer poll with `.zero`).
    func answerPoll(_ session: EngineIOPollingSession, maxWait: Duration) async -> Answer {
        switch await session.polled.poll(maxWait: maxWait) {
        case .frames(let frames):
            return .payload(frames)
        case .empty:
            return .payload([Self.noop])
        case .closed(let frames, _):
            return .payload(Self.endingWithClose(frames))
        case .overlapping:
            return .engineIO(.badRequest)
        case .gone:
            // Ended while this poll waited (or just before): tell the client it is closed.
            return .payload([Self.closePacket])
        }
    }

    /// `POST /socket.io/?EIO=4&transport=polling&sid=X` with a body of at most `maxPayload` bytes.
    public func post(query: [String: String], body: ByteBuffer, logger: Logger) async -> Answer {
        if let rejection = self.checkPolling(query) { return .engineIO(rejection) }
        guard let sid = query["sid"], !sid.isEmpty else { return .engineIO(.badHandshakeMethod) }
        guard let session = self.session(sid) else { return .engineIO(.sessionUnknown) }
        let packets: [EngineIOPayload.Packet]
        do {
            packets = try EngineIOPayload.decode(body, maxPayload: self.maxPayload)
        } catch .tooLarge {
            return self.payloadTooLarge(query: query)
        } catch {
            logger.debug("Engine.IO polling payload refused", metadata: ["error": "\(error)"])
            self.endpoint.hub.close(session.polled.connection, reason: .protocolError(error.description))
            return .engineIO(.badRequest)
        }
        let frames = packets.map { packet -> HubInboundFrame in
            switch packet {
            case .text(let text): return .text(text)
            // The bell is text-only: a binary packet is dropped as a binary WebSocket message is.
            case .binary: return HubInboundFrame(kind: .binary, data: ByteBuffer())
            }
        }
        switch await session.polled.receive(frames) {
        case .handled: return Answer(status: 200, contentType: Answer.textPlain, body: ByteBuffer(string: "ok"))
        case .overlapping: return .engineIO(.badRequest)
        case .gone: return .engineIO(.sessionUnknown)
        }
    }

    /// A POST body above `maxPayload`: 413, and its session is closed (its packets are lost, as
    /// an oversized WebSocket message closes a WebSocket session).
    public func payloadTooLarge(query: [String: String]) -> Answer {
        if let sid = query["sid"], let session = self.session(sid) {
            self.endpoint.hub.close(session.polled.connection, reason: .tooLarge)
        }
        return .refusal(413, "PAYLOAD_TOO_LARGE", "an Engine.IO payload is at most \(self.maxPayload) bytes")
    }

    /// A request on `/socket.io/` that is not a WebSocket upgrade: `transport=polling` is ours;
    /// `transport=websocket` without `Upgrade` is a bad request; anything else is unknown.
    func checkPolling(_ query: [String: String]) -> EngineIOHandshake.Rejection? {
        guard query["EIO"] == "4" else { return .unsupportedVersion }
        switch query["transport"] {
        case "polling" where self.limits.maxSessions > 0: return nil
        case "websocket": return .badRequest
        default: return .transportUnknown
        }
    }

    private func handshake(address: String?, logger: Logger) async -> Answer {
        let admitted = self.registry.withLock { r -> Bool in
            guard r.sessions.count + r.opening < self.limits.maxSessions else { return false }
            r.opening += 1
            return true
        }
        guard admitted else {
            logger.notice("Engine.IO long-polling session refused: server limit", metadata: ["limit": "\(self.limits.maxSessions)"])
            return .refusal(503, "TOO_MANY_SESSIONS", "the server has \(self.limits.maxSessions) long-polling sessions open; use the websocket transport or retry later")
        }
        var opened = false
        defer { if !opened { self.registry.withLock { $0.opening -= 1 } } }
        if let address, let perAddress = self.perAddress, !perAddress.acquire(address) {
            return .refusal(429, "TOO_MANY_CONNECTIONS", "this address already has its most open WebSockets and long-polling sessions; close one first")
        }
        let sid = SessionID.make()
        guard let handle = self.endpoint.open(identity: nil, logger: logger, engineSid: sid, upgrades: ["websocket"]) else {
            if let address { self.perAddress?.release(address) }
            return .refusal(503, "SHUTTING_DOWN", "the server is shutting down")
        }
        let perAddress = self.perAddress
        // Holds `self` until the session ends (a session outlives no server; no weak reference's side table).
        let polled = PolledConnection(session: handle, hub: self.endpoint.hub, idleTimeout: self.idleTimeout) { [self] in
            self.registry.withLock { _ = $0.sessions.removeValue(forKey: sid) }
            if let address { perAddress?.release(address) }
        }
        self.registry.withLock { r in
            r.opening -= 1
            r.sessions[sid] = EngineIOPollingSession(sid: sid, polled: polled)
        }
        opened = true
        await polled.start()
        switch await polled.poll(maxWait: .zero) {
        case .frames(let frames): return .payload(frames)
        case .closed(let frames, _): return .payload(Self.endingWithClose(frames))
        case .empty, .overlapping, .gone: return .payload([Self.closePacket])
        }
    }

    // MARK: Upgrade

    /// A WebSocket upgrade on `/socket.io/`: without `sid` a new WebSocket-only session
    /// (`SocketIOEndpoint.attach`, checked by `EngineIOHandshake.validate`); with one, the upgrade
    /// of that long-polling session.
    public func upgradeVerdict(query: [String: String]) -> UpgradeVerdict {
        guard let sid = query["sid"], !sid.isEmpty else {
            if let rejection = EngineIOHandshake.validate(query: query) { return .reject(rejection) }
            let endpoint = self.endpoint
            return .accept { channel, logger in endpoint.attach(to: channel, logger: logger) }
        }
        guard query["EIO"] == "4" else { return .reject(.unsupportedVersion) }
        guard query["transport"] == "websocket" else { return .reject(.badRequest) }
        guard let session = self.session(sid), !session.polled.isFinished else { return .reject(.sessionUnknown) }
        let (hub, timeout) = (self.endpoint.hub, self.limits.upgradeTimeout)
        return .accept { channel, logger in
            do {
                try channel.pipeline.syncOperations.addHandler(EngineIOProbeHandler(session: session, hub: hub, upgradeTimeout: timeout, logger: logger))
            } catch {
                channel.close(promise: nil)
            }
        }
    }

    // MARK: Packets

    static let noop = HubOutboundFrame.text(ByteBuffer(string: EngineIOPacket.noop.encoded))
    static let closePacket = HubOutboundFrame.text(ByteBuffer(string: EngineIOPacket.close.encoded))

    /// A closed session's last packets end with `1` (close), so the client knows.
    static func endingWithClose(_ frames: [HubOutboundFrame]) -> [HubOutboundFrame] {
        if frames.last == self.closePacket { return frames }
        return frames + [self.closePacket]
    }
}

extension EngineIOHandshake.Rejection {
    static let transportUnknown = Self(status: 400, code: 0, message: "Transport unknown")
    static let sessionUnknown = Self(status: 400, code: 1, message: "Session ID unknown")
    static let badHandshakeMethod = Self(status: 400, code: 2, message: "Bad handshake method")
    static let badRequest = Self(status: 400, code: 3, message: "Bad request")
    static let unsupportedVersion = Self(status: 400, code: 5, message: "Unsupported protocol version")
}

/// One long-polling session: its carrier and the state of an upgrade under way.
final class EngineIOPollingSession: Sendable {
    enum Upgrade: Equatable {
        case none
        /// A WebSocket (this probe id) is open for the upgrade; `2probe` not seen yet.
        case probing(UInt64)
        /// `3probe` was sent on it: polls are answered at once until `5`.
        case probed(UInt64)
    }

    let sid: String
    let polled: PolledConnection
    private let upgrade = Mutex<(state: Upgrade, nextProbe: UInt64)>((.none, 0))

    init(sid: String, polled: PolledConnection) {
        self.sid = sid
        self.polled = polled
    }

    /// Polls are answered at once (the client is pausing its polling to upgrade).
    var answersAtOnce: Bool {
        if case .probed = self.upgrade.withLock({ $0.state }) { return true }
        return false
    }

    /// A WebSocket begins probing; nil if another one already is.
    func beginProbe() -> UInt64? {
        self.upgrade.withLock { u in
            guard u.state == .none else { return nil }
            u.nextProbe &+= 1
            u.state = .probing(u.nextProbe)
            return u.nextProbe
        }
    }

    /// `2probe` on probe `id`: true if it was waiting for it.
    func probed(_ id: UInt64) -> Bool {
        self.upgrade.withLock { u in
            guard u.state == .probing(id) else { return false }
            u.state = .probed(id)
            return true
        }
    }

    func isProbed(_ id: UInt64) -> Bool { self.upgrade.withLock { $0.state == .probed(id) } }

    /// Probe `id` ended without an upgrade: polling goes on as before.
    func endProbe(_ id: UInt64) {
        self.upgrade.withLock { u in
            if u.state == .probing(id) || u.state == .probed(id) { u.state = .none }
        }
    }
}

/// The end of an upgrading WebSocket's pipeline until the client's `5` (engine.io-protocol v4
/// "Upgrade"): `2probe` → `3probe` (and the waiting GET is answered so the client can pause
/// polling); `5` → the session is handed over to `ConnectionRunner.attach`, which replaces this
/// handler. Anything else, or no `5` within the upgrade time-out, closes this WebSocket (1002 /
/// 1000) and the session goes on polling. Client frames must be masked (RFC 6455 §5.1); Pings are
/// answered; a Close is echoed.
final class EngineIOProbeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let session: EngineIOPollingSession
    private let hub: Hub
    private let upgradeTimeout: Duration
    private let logger: Logger
    private var probe: UInt64?
    private var timer: Scheduled<Void>?
    private var finished = false

    init(session: EngineIOPollingSession, hub: Hub, upgradeTimeout: Duration, logger: Logger) {
        self.session = session
        self.hub = hub
        self.upgradeTimeout = upgradeTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let probe = self.session.beginProbe() else {
            self.close(context: context, code: 1008)  // another upgrade of this session is under way
            return
        }
        self.probe = probe
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: .nanoseconds(self.upgradeTimeout.hubNanoseconds)) {
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        guard !self.finished, let probe = self.probe else { return }
        guard frame.maskKey != nil, !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            self.close(context: context, code: 1002)
            return
        }
        switch frame.opcode {
        case .text where frame.fin:
            let text = String(buffer: frame.unmaskedData)
            if text == EngineIOPacket.ping("probe").encoded, self.session.probed(probe) {
                context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: EngineIOPacket.pong("probe").encoded))), promise: nil)
                self.session.polled.interruptWaitingPoll()
            } else if text == EngineIOPacket.upgrade.encoded, self.session.isProbed(probe) {
                self.handOver(context: context)
            } else {
                self.logger.debug("Engine.IO upgrade refused: unexpected packet on the probe")
                self.close(context: context, code: 1002)
            }
        case .ping:
            context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            break
        case .connectionClose:
            self.close(context: context, code: HubWebSocketFrameHandler.replyCode(toClosePayload: frame.unmaskedData))
        default:
            self.close(context: context, code: 1002)
        }
    }

    private func handOver(context: ChannelHandlerContext) {
        guard let handle = self.session.polled.handOver() else {
            // Closing, or a POST's packets are still being handled: no upgrade now.
            self.close(context: context, code: 1011)
            return
        }
        self.finished = true
        self.timer?.cancel()
        self.timer = nil
        let (channel, hub) = (context.channel, self.hub)
        // From here every frame goes to the hub's handler (added at the end by `attach`).
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        ConnectionRunner.attach(handle, to: channel, hub: hub)
    }

    private func close(context: ChannelHandlerContext, code: UInt16) {
        guard !self.finished else { return }
        self.finished = true
        self.endProbe()
        var payload = context.channel.allocator.buffer(capacity: 2)
        payload.writeInteger(code)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)))
            .whenComplete { _ in channel.close(promise: nil) }
    }

    private func endProbe() {
        self.timer?.cancel()
        self.timer = nil
        if let probe = self.probe { self.session.endProbe(probe) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.finished {
            self.finished = true
            self.endProbe()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
