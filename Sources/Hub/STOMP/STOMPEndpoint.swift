public import Logging
public import NIOCore
import Synchronization

/// The live-room STOMP endpoint. The Server creates one and calls `attach` for each upgraded
/// WebSocket (`/ws/live`, `/ws/live/websocket` with `.raw`; `/ws/live/{server}/{session}/websocket`
/// with `.sockJS`), echoing `STOMPSubprotocol.negotiate(offered:)` in the upgrade response.
public struct STOMPEndpoint: Sendable {
    public let hub: Hub
    public let backend: any LiveRoomBackend
    public let authenticator: any HubAuthenticator
    public let configuration: STOMPConfiguration
    /// Per-user SEND limiter (guests are keyed by connection).
    public let rateLimiter: RateLimiter

    public init(hub: Hub, backend: any LiveRoomBackend, authenticator: any HubAuthenticator, configuration: STOMPConfiguration = .init()) {
        self.hub = hub
        self.backend = backend
        self.authenticator = authenticator
        self.configuration = configuration
        self.rateLimiter = RateLimiter(limit: configuration.sendRateLimit, clock: hub.clock)
    }

    /// Runs one STOMP session on a just-upgraded NIO channel (its pipeline ends with NIO's WebSocket
    /// frame codecs) without a task of its own while idle (`ConnectionRunner.attach`). Call on the
    /// channel's event loop; returns at once. The Server's own WebSocket upgrade uses this.
    /// - Parameters:
    ///   - queryToken: the `token` query parameter of the upgrade request (verified at CONNECT;
    ///     a CONNECT `Authorization`/`token` header takes precedence).
    ///   - identity: an identity the Server already verified, used when no token is presented.
    public func attach(
        to channel: any Channel, framing: STOMPFraming, queryToken: String? = nil, identity: HubIdentity? = nil, logger: Logger
    ) {
        guard let session = self.open(framing: framing, queryToken: queryToken, identity: identity, logger: logger) else {
            ConnectionRunner.refuse(channel: channel, frames: Self.refusal(framing: framing), code: 1001, reason: "server shutting down")
            return
        }
        ConnectionRunner.attach(session, to: channel, hub: self.hub)
    }

    static var shutdownError: STOMPFrame {
        STOMPFrame(.error, headers: ["message": "server shutting down"], body: "server shutting down")
    }

    /// What a connection gets while the hub is shutting down: an ERROR (and SockJS's close frame).
    static func refusal(framing: STOMPFraming) -> [HubOutboundFrame] {
        var frames = [STOMPMessageEncoder(framing: framing).encode(Self.shutdownError)]
        if framing == .sockJS { frames.append(.text(ByteBuffer(string: SockJSFraming.closeFrame()))) }
        return frames
    }

    /// Registers a connection; nil while the hub is shutting down.
    func open(framing: STOMPFraming, queryToken: String?, identity: HubIdentity?, logger: Logger) -> HubSessionHandle? {
        let encoder = STOMPMessageEncoder(framing: framing)
        guard let connection = try? self.hub.register(format: .stomp(framing)) else { return nil }
        var logger = logger
        logger[metadataKey: "hub.connection"] = "\(connection.id)"
        let proto = STOMPProtocol(endpoint: self, connection: connection, encoder: encoder, framing: framing)
        let driver = HubSessionDriver(
            hub: self.hub, connection: connection,
            session: STOMPSession(
                configuration: self.configuration, sessionId: SessionID.make(), queryToken: queryToken,
                identity: identity, now: self.hub.clock.now()),
            proto: proto, rateLimiter: self.rateLimiter, logger: logger)
        logger.debug("STOMP connection opened", metadata: ["framing": "\(framing)"])
        if framing == .sockJS {
            self.hub.send(.text(ByteBuffer(string: SockJSFraming.openFrame)), to: connection)
        }
        let reader = STOMPReader(
            framing: framing, parserLimits: self.configuration.parserLimits, maxSockJSMessageSize: self.configuration.maxSockJSMessageSize)
        let (hub, backend, rateLimiter) = (self.hub, self.backend, self.rateLimiter)
        return HubSessionHandle(
            connection: connection,
            tickInterval: self.configuration.tickInterval,
            start: {},
            coalesce: { frames in
                guard framing == .sockJS, frames.count > 1 else { return frames }
                return Self.coalesceSockJS(frames)
            },
            goodbye: { reason in
                var out: [HubOutboundFrame] = []
                if reason == .shutdown {
                    out.append(encoder.encode(Self.shutdownError))
                }
                if framing == .sockJS && reason != .slowConsumer {
                    out.append(.text(ByteBuffer(string: SockJSFraming.closeFrame())))
                }
                return out
            },
            onFrame: { frame in await driver.handle(frame, reader: reader) },
            onTick: { await driver.tick() },
            nextTickDue: { driver.nextTickDue() },
            finish: { [logger] in
                hub.unregister(connection)
                rateLimiter.forget(connection.guestRateLimitKey)
                if let context = proto.connectedContext {
                    await backend.connectionClosed(context)
                }
                logger.debug("STOMP connection closed", metadata: ["slow": "\(connection.wasDroppedAsSlow)"])
            })
    }

    /// Merges runs of SockJS `a[…]` frames into one.
    static func coalesceSockJS(_ frames: [HubOutboundFrame]) -> [HubOutboundFrame] {
        var out: [HubOutboundFrame] = []
        var run: [ByteBuffer] = []
        func flush() {
            if !run.isEmpty { out.append(.text(SockJSFraming.merge(run))) }
            run = []
        }
        for f in frames {
            if f.isText && SockJSFraming.isMessageFrame(f.buffer) {
                run.append(f.buffer)
            } else {
                flush()
                out.append(f)
            }
        }
        flush()
        return out
    }
}

/// Reader-side state (frame parser, SockJS message assembly). Only the reader task touches it.
final class STOMPReader: Sendable {
    struct State {
        var parser: STOMPFrameParser
        var assembler: MessageAssembler
    }
    let framing: STOMPFraming
    let state: Mutex<State>

    init(framing: STOMPFraming, parserLimits: STOMPParserLimits, maxSockJSMessageSize: Int) {
        self.framing = framing
        self.state = Mutex(State(parser: STOMPFrameParser(limits: parserLimits), assembler: MessageAssembler(maxSize: maxSockJSMessageSize)))
    }
}

extension STOMPSession: HubSession {}

/// STOMP's half of a connection the `HubSessionDriver` runs: frames are encoded with the
/// connection's framing, and CONNECT's authentication, subscription checks and SENDs go to the
/// endpoint's authenticator and `LiveRoomBackend`.
final class STOMPProtocol: HubSessionProtocol {
    typealias Session = STOMPSession

    let endpoint: STOMPEndpoint
    let connection: HubConnection
    let encoder: STOMPMessageEncoder
    let framing: STOMPFraming
    /// Set once CONNECT completed.
    private let _context = Mutex<HubConnectionContext?>(nil)

    init(endpoint: STOMPEndpoint, connection: HubConnection, encoder: STOMPMessageEncoder, framing: STOMPFraming) {
        self.endpoint = endpoint
        self.connection = connection
        self.encoder = encoder
        self.framing = framing
    }

    /// The connection as the backend knows it, once CONNECT completed.
    var connectedContext: HubConnectionContext? { self._context.withLock { $0 } }

    func step(_ action: STOMPSession.Action) -> HubSessionStep<STOMPSession>? {
        switch action {
        case .send(let frame): return .send(self.encoder.encode(frame))
        case .sendHeartbeat: return .send(self.encoder.heartbeat)
        case .subscribe(let topic, let id): return .subscribe(topic: topic, variant: id)
        case .unsubscribe(let topic, let id): return .unsubscribe(topic: topic, variant: id)
        case .deliver(let request):
            if self.endpoint.configuration.separatelyLimitedSendSuffixes.contains(where: { request.destination.hasSuffix($0) }) {
                return nil  // the backend limits it
            }
            let rate = Int(self.endpoint.configuration.sendRateLimit.ratePerSecond)
            return .rateLimited { $0.sendFinished(request, .refused(code: "rate-limited", message: "too many messages (limit \(rate)/s)")) }
        case .close(let reason): return .close(reason)
        case .authenticate, .connected, .authorizeSubscription, .subscribeRecovering: return nil
        }
    }

    func perform(_ action: STOMPSession.Action, driver: HubSessionDriver<STOMPProtocol>) async -> HubFollowUp<STOMPSession.Action> {
        switch action {
        case .authenticate(let token):
            let authenticator = self.endpoint.authenticator
            let result = await onOwnTask { await authenticator.authenticate(token: token) }
            if case .invalid(let reason) = result {
                driver.logger.debug("STOMP CONNECT with invalid token", metadata: ["reason": "\(reason)"])
            }
            return .then(driver.session.withLock { $0.authenticationFinished(result) })
        case .connected(let identity):
            let hub = driver.hub
            if let identity, hub.setIdentity(identity, for: self.connection).refusedAtUserLimit {
                let limit = hub.configuration.maxConnectionsPerUser ?? 0
                driver.logger.info("STOMP CONNECT refused: user connection limit", metadata: ["user": "\(identity.userId)", "limit": "\(limit)"])
                // Instead of the CONNECTED that followed: ERROR and close.
                return .insteadOfTheRest(driver.session.withLock { $0.userConnectionLimitReached(limit: limit) })
            }
            let context = self.context(driver)
            self._context.withLock { $0 = context }
            return .nothing
        case .authorizeSubscription(let request):
            let (backend, context) = (self.endpoint.backend, self.context(driver))
            let decision = await onOwnTask { await backend.canSubscribe(destination: request.destination, connection: context) }
            return .then(driver.session.withLock { $0.subscriptionDecided(request, decision) })
        case .subscribeRecovering(let topic, let id, let since):
            let (hub, connection, backend) = (driver.hub, self.connection, self.endpoint.backend)
            let limit = self.endpoint.configuration.maxRecoveredMessages
            let outcome = await onOwnTask {
                await hub.recover(connection, topic: topic, variant: id, since: since, log: backend.recoveryLog(destination: topic), maxMessages: limit)
            }
            if let outcome {
                driver.logger.debug("STOMP subscription recovered", metadata: ["topic": "\(topic)", "recovered": "\(outcome.recovered)", "missed": "\(outcome.missed)"])
            }
            return .nothing
        case .deliver(let request):
            let (backend, context) = (self.endpoint.backend, self.context(driver))
            let outcome = await onOwnTask {
                await backend.handleSend(
                    destination: request.destination, body: ByteBuffer(bytes: request.body),
                    contentType: request.contentType, connection: context)
            }
            return .then(driver.session.withLock { $0.sendFinished(request, outcome) })
        case .send, .sendHeartbeat, .subscribe, .unsubscribe, .close:
            return .nothing  // common steps, done by the driver
        }
    }

    /// SockJS's own heart-beat (`h`) when nothing else was written for a while (SockJS protocol
    /// "Heartbeat"), besides STOMP's.
    func ticked(_ actions: [STOMPSession.Action], now: Duration, lastWrite: Duration, driver: HubSessionDriver<STOMPProtocol>) {
        guard self.framing == .sockJS, !actions.contains(.sendHeartbeat),
            now - lastWrite >= self.endpoint.configuration.sockJSHeartbeatInterval
        else { return }
        driver.hub.send(.text(ByteBuffer(string: SockJSFraming.heartbeatFrame)), to: self.connection)
    }

    func nextTickDue(session due: Duration?, lastWrite: Duration) -> Duration? {
        guard let due else { return nil }
        if self.framing == .sockJS { return min(due, lastWrite + self.endpoint.configuration.sockJSHeartbeatInterval) }
        return due
    }

    private func context(_ driver: HubSessionDriver<STOMPProtocol>) -> HubConnectionContext {
        HubConnectionContext(connectionId: self.connection.id, sessionId: driver.session.withLock { $0.sessionId }, identity: self.connection.identity)
    }
}

extension HubSessionDriver where Protocol == STOMPProtocol {
    /// One WebSocket frame: raw STOMP bytes, or a SockJS message of STOMP frames. Returns false
    /// once the session is closing.
    func handle(_ frame: HubInboundFrame, reader: STOMPReader) async -> Bool {
        let now = self.hub.clock.now()
        self.session.withLock { $0.noteInbound(now: now) }
        switch self.proto.framing {
        case .raw:
            reader.state.withLock { $0.parser.append(frame.data.readableBytesView) }
            return await self.drain(reader)
        case .sockJS:
            let assembled = reader.state.withLock { $0.assembler.add(frame) }
            switch assembled {
            case .partial:
                return true
            case .tooLarge:
                return await self.run { $0.protocolError(message: "message too large") }
            case .message(_, let buffer):
                let strings: [String]
                do {
                    strings = try SockJSFraming.decodeClientMessage(buffer.readableBytesView)
                } catch {
                    return await self.run { $0.protocolError(message: error.description) }
                }
                for s in strings {
                    reader.state.withLock { $0.parser.append(s.utf8) }
                    if !(await self.drain(reader)) { return false }
                }
                return true
            }
        }
    }

    /// Hands every complete frame the parser holds to the session.
    private func drain(_ reader: STOMPReader) async -> Bool {
        while true {
            let output: Result<STOMPFrameParser.Output, STOMPParseError> = reader.state.withLock { s in
                do throws(STOMPParseError) { return .success(try s.parser.next()) } catch { return .failure(error) }
            }
            switch output {
            case .success(.needMoreData):
                return true
            case .success(.heartbeat):
                continue
            case .success(.frame(let frame)):
                let now = self.hub.clock.now()
                if !(await self.run { $0.receive(frame, now: now) }) { return false }
            case .failure(let error):
                self.logger.debug("STOMP protocol error", metadata: ["error": "\(error)"])
                return await self.run { $0.protocolError(error) }
            }
        }
    }
}
