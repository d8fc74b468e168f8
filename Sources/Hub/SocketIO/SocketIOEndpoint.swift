public import Logging
public import NIOCore
import Synchronization

/// The notification-bell Socket.IO endpoint (Engine.IO v4 WebSocket transport, default
/// namespace). The Server calls `attach` for each WebSocket upgraded on `/socket.io/` (after
/// checking `EIO=4&transport=websocket`), optionally with an identity it verified from the upgrade
/// request. Frames above `configuration.maxPayload` close the session (the upgrade's frame limit
/// should be at least that).
/// Pushes go through `hub.sendToUser(userId:event:payload:)`.
public struct SocketIOEndpoint: Sendable {
    public let hub: Hub
    public let backend: any BellBackend
    public let authenticator: any HubAuthenticator
    public let configuration: SocketIOConfiguration
    /// Per-user inbound event limiter (guests are keyed by connection).
    public let rateLimiter: RateLimiter

    public init(hub: Hub, backend: any BellBackend, authenticator: any HubAuthenticator, configuration: SocketIOConfiguration = .init()) {
        self.hub = hub
        self.backend = backend
        self.authenticator = authenticator
        self.configuration = configuration
        self.rateLimiter = RateLimiter(limit: configuration.inboundRateLimit, clock: hub.clock)
    }

    /// Runs one Engine.IO/Socket.IO session on a just-upgraded NIO channel (its pipeline ends with
    /// NIO's WebSocket frame codecs) without a task of its own while idle
    /// (`ConnectionRunner.attach`). Call on the channel's event loop; returns at once.
    public func attach(to channel: any Channel, identity: HubIdentity? = nil, logger: Logger) {
        guard let session = self.open(identity: identity, logger: logger) else {
            ConnectionRunner.refuse(channel: channel, frames: [], code: 1001, reason: "server shutting down")
            return
        }
        ConnectionRunner.attach(session, to: channel, hub: self.hub)
    }

    /// Registers a connection; nil while the hub is shutting down. `engineSid` names the Engine.IO
    /// session (a long-polling one is found by it); `upgrades` is what its handshake offers.
    func open(identity: HubIdentity?, logger: Logger, engineSid: String = SessionID.make(), upgrades: [String] = []) -> HubSessionHandle? {
        guard let connection = try? self.hub.register(format: .socketIO) else { return nil }
        var logger = logger
        logger[metadataKey: "hub.connection"] = "\(connection.id)"
        let session = SocketIOSession(
            configuration: self.configuration, engineSid: engineSid, socketSid: SessionID.make(),
            identity: identity, upgrades: upgrades, now: self.hub.clock.now())
        let proto = SocketIOProtocol(endpoint: self, connection: connection)
        let driver = HubSessionDriver(hub: self.hub, connection: connection, session: session, proto: proto, rateLimiter: self.rateLimiter, logger: logger)
        let assembler = Mutex(MessageAssembler(maxSize: self.configuration.maxPayload))
        let (hub, backend, rateLimiter) = (self.hub, self.backend, self.rateLimiter)
        return HubSessionHandle(
            connection: connection,
            tickInterval: self.configuration.tickInterval,
            start: { _ = await driver.run { $0.open() } },
            coalesce: { $0 },
            goodbye: { reason in
                reason == .shutdown ? [.text(ByteBuffer(string: EngineIOPacket.close.encoded))] : []
            },
            onFrame: { frame in
                switch assembler.withLock({ $0.add(frame) }) {
                case .partial:
                    return true
                case .tooLarge:
                    driver.logger.debug("Socket.IO packet above maxPayload")
                    return await driver.run { $0.closeForOversize() }
                case .message(let isText, let buffer):
                    let now = hub.clock.now()
                    if !isText {
                        return await driver.run { $0.receiveBinary(now: now) }
                    }
                    let text = String(buffer: buffer)
                    return await driver.run { $0.receive(text, now: now) }
                }
            },
            onTick: { await driver.tick() },
            nextTickDue: { driver.nextTickDue() },
            finish: { [logger] in
                let unregistration = hub.unregister(connection)
                rateLimiter.forget(connection.guestRateLimitKey)
                if let identity = proto.takeJoinedIdentity() {
                    await backend.userDisconnected(
                        proto.context(identity: identity, driver: driver), identity: identity,
                        wasLastConnectionOfUser: unregistration.wasLastConnectionOfUser)
                }
                logger.debug("Socket.IO connection closed", metadata: ["slow": "\(connection.wasDroppedAsSlow)"])
            })
    }
}

extension SocketIOSession {
    /// An Engine.IO packet above `maxPayload`: close.
    mutating func closeForOversize() -> [Action] {
        var actions: [Action] = []
        if self.isConnected { actions.append(.left(identity: self.identity)) }
        actions.append(.close(.tooLarge))
        self.markClosed()
        return actions
    }
}

extension SocketIOSession: HubSession {
    mutating func tick(now: Duration, lastOutboundAt: Duration) -> [Action] { self.tick(now: now) }
    func nextTickDeadline(lastOutboundAt: Duration) -> Duration? { self.nextTickDeadline() }
}

/// Socket.IO's half of a connection the `HubSessionDriver` runs: Engine.IO packets are text frames;
/// authentication, admission into a user's set (the per-user limit), joins and leaves, and events go
/// to the endpoint's authenticator, the hub and the `BellBackend`.
final class SocketIOProtocol: HubSessionProtocol {
    typealias Session = SocketIOSession

    let endpoint: SocketIOEndpoint
    let connection: HubConnection
    /// The identity registered with the backend (`userConnected` called, `userDisconnected` not yet).
    private let joined = Mutex<HubIdentity?>(nil)
    /// What the hub answered the last `.admit` (the socket moved between per-user sets there), for
    /// the `.joined` / `.identityChanged` that follows it.
    private let admission = Mutex<Hub.IdentityChange?>(nil)

    init(endpoint: SocketIOEndpoint, connection: HubConnection) {
        self.endpoint = endpoint
        self.connection = connection
    }

    func takeJoinedIdentity() -> HubIdentity? {
        self.joined.withLock { j in
            defer { j = nil }
            return j
        }
    }

    private func takeAdmission() -> Hub.IdentityChange? {
        self.admission.withLock { a in
            defer { a = nil }
            return a
        }
    }

    /// The events the socket missed since its `lastNotificationId` (`BellBackend.missedEvents`),
    /// to this socket alone, in order; asked once per id given.
    func replayMissed(identity: HubIdentity, driver: HubSessionDriver<SocketIOProtocol>) async {
        guard let last = driver.session.withLock({ $0.takeLastNotificationId() }) else { return }
        let backend = self.endpoint.backend
        let events = await onOwnTask { await backend.missedEvents(after: last, identity: identity) }
        let encoder = self.connection.format.encoder
        for e in events {
            let frame = encoder.encode(HubMessage(destination: e.event, payload: e.payload), variant: "")
            driver.hub.send(frame, to: self.connection)
        }
    }

    func context(identity: HubIdentity?, driver: HubSessionDriver<SocketIOProtocol>) -> HubConnectionContext {
        HubConnectionContext(connectionId: self.connection.id, sessionId: driver.session.withLock { $0.socketSid }, identity: identity)
    }

    func step(_ action: SocketIOSession.Action) -> HubSessionStep<SocketIOSession>? {
        switch action {
        case .send(let text): return .send(.text(ByteBuffer(string: text)))
        case .dispatch(let request): return .rateLimited { $0.rateLimited(request) }
        case .close(let reason): return .close(reason)
        case .authenticate, .admit, .joined, .identityChanged, .left: return nil
        }
    }

    func perform(_ action: SocketIOSession.Action, driver: HubSessionDriver<SocketIOProtocol>) async -> HubFollowUp<SocketIOSession.Action> {
        let (hub, backend) = (driver.hub, self.endpoint.backend)
        switch action {
        case .authenticate(let token, let purpose):
            hub.recordInbound(self.connection)
            let authenticator = self.endpoint.authenticator
            let result = await onOwnTask { await authenticator.authenticate(token: token) }
            return .then(driver.session.withLock { $0.authenticationFinished(result, purpose: purpose) })
        case .admit(let identity, let purpose):
            let change = hub.setIdentity(identity, for: self.connection)
            let limit = hub.configuration.maxConnectionsPerUser ?? 0
            if change.refusedAtUserLimit {
                driver.logger.info("Socket.IO join refused: user connection limit", metadata: ["user": "\(identity.userId)", "limit": "\(limit)"])
            } else {
                self.admission.withLock { $0 = change }
            }
            return .then(driver.session.withLock { $0.admissionDecided(!change.refusedAtUserLimit, identity: identity, purpose: purpose, limit: limit) })
        case .joined(let identity):
            guard let identity else { return .nothing }  // waiting for AUTH
            let change = self.takeAdmission() ?? hub.setIdentity(identity, for: self.connection)
            self.joined.withLock { $0 = identity }
            let (context, flag) = (self.context(identity: identity, driver: driver), change.isFirstConnectionOfUser)
            await onOwnTask { await backend.userConnected(context, identity: identity, isFirstConnectionOfUser: flag) }
            await self.replayMissed(identity: identity, driver: driver)
            return .nothing
        case .identityChanged(let previous, let identity):
            let change = self.takeAdmission() ?? hub.setIdentity(identity, for: self.connection)
            self.joined.withLock { $0 = identity }
            if let previous, previous.userId != identity.userId {
                let (context, flag) = (self.context(identity: previous, driver: driver), change.previousUserRemoved)
                await onOwnTask { await backend.userDisconnected(context, identity: previous, wasLastConnectionOfUser: flag) }
            }
            if previous?.userId != identity.userId {
                let (context, flag) = (self.context(identity: identity, driver: driver), change.isFirstConnectionOfUser)
                await onOwnTask { await backend.userConnected(context, identity: identity, isFirstConnectionOfUser: flag) }
            }
            await self.replayMissed(identity: identity, driver: driver)
            return .nothing
        case .left(let identity):
            let change = hub.setIdentity(nil, for: self.connection)
            self.joined.withLock { $0 = nil }
            if let identity {
                let (context, flag) = (self.context(identity: identity, driver: driver), change.previousUserRemoved)
                await onOwnTask { await backend.userDisconnected(context, identity: identity, wasLastConnectionOfUser: flag) }
            }
            return .nothing
        case .dispatch(let request):
            // Within the rate limit (the driver checked it).
            guard let identity = self.connection.identity else { return .nothing }
            let context = self.context(identity: identity, driver: driver)
            let result = await onOwnTask {
                await backend.handleEvent(name: request.name, payload: request.payload, connection: context, identity: identity)
            }
            return .then(driver.session.withLock { $0.eventFinished(request, result) })
        case .send, .close:
            return .nothing  // common steps, done by the driver
        }
    }
}
