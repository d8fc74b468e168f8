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

    /// Registers a connection; nil while the hub is shutting down.
    func open(identity: HubIdentity?, logger: Logger) -> HubSessionHandle? {
        guard let connection = try? self.hub.register(format: .socketIO) else { return nil }
        var logger = logger
        logger[metadataKey: "hub.connection"] = "\(connection.id)"
        let session = SocketIOSession(
            configuration: self.configuration, engineSid: SessionID.make(), socketSid: SessionID.make(),
            identity: identity, now: self.hub.clock.now())
        let driver = SocketIOConnectionDriver(endpoint: self, connection: connection, session: session, logger: logger)
        let assembler = Mutex(MessageAssembler(maxSize: self.configuration.maxPayload))
        let (hub, backend, rateLimiter) = (self.hub, self.backend, self.rateLimiter)
        return HubSessionHandle(
            connection: connection,
            tickInterval: self.configuration.tickInterval,
            start: { _ = await driver.perform(driver.session.withLock { $0.open() }) },
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
                    return await driver.perform(driver.session.withLock { $0.closeForOversize() })
                case .message(let isText, let buffer):
                    let now = driver.endpoint.hub.clock.now()
                    if !isText {
                        return await driver.perform(driver.session.withLock { $0.receiveBinary(now: now) })
                    }
                    let text = String(buffer: buffer)
                    return await driver.perform(driver.session.withLock { $0.receive(text, now: now) })
                }
            },
            onTick: {
                let now = driver.endpoint.hub.clock.now()
                return await driver.perform(driver.session.withLock { $0.tick(now: now) })
            },
            nextTickDue: { driver.session.withLock { $0.nextTickDeadline() } },
            finish: { [logger] in
                let unregistration = hub.unregister(connection)
                rateLimiter.forget(connection.guestRateLimitKey)
                if let identity = driver.takeJoinedIdentity() {
                    await backend.userDisconnected(
                        driver.context(identity: identity), identity: identity,
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

/// Performs a `SocketIOSession`'s actions for one connection.
final class SocketIOConnectionDriver: Sendable {
    let endpoint: SocketIOEndpoint
    let connection: HubConnection
    let session: Mutex<SocketIOSession>
    let logger: Logger
    /// The identity registered with the backend (`userConnected` called, `userDisconnected` not yet).
    private let joined = Mutex<HubIdentity?>(nil)
    /// What the hub answered the last `.admit` (the socket moved between per-user sets there), for
    /// the `.joined` / `.identityChanged` that follows it.
    private let admission = Mutex<Hub.IdentityChange?>(nil)

    init(endpoint: SocketIOEndpoint, connection: HubConnection, session: SocketIOSession, logger: Logger) {
        self.endpoint = endpoint
        self.connection = connection
        self.session = Mutex(session)
        self.logger = logger
    }

    var hub: Hub { self.endpoint.hub }

    func takeJoinedIdentity() -> HubIdentity? {
        self.joined.withLock { j in
            let v = j
            j = nil
            return v
        }
    }

    private func takeAdmission() -> Hub.IdentityChange? {
        self.admission.withLock { a in
            defer { a = nil }
            return a
        }
    }

    func context(identity: HubIdentity?) -> HubConnectionContext {
        HubConnectionContext(connectionId: self.connection.id, sessionId: self.session.withLock { $0.socketSid }, identity: identity)
    }

    private func send(_ text: String) {
        self.hub.send(.text(ByteBuffer(string: text)), to: self.connection)
    }

    func perform(_ initial: [SocketIOSession.Action]) async -> Bool {
        var work = initial[...]
        var open = true
        while let action = work.popFirst() {
            var next: [SocketIOSession.Action] = []
            switch action {
            case .send(let text):
                self.send(text)
            case .authenticate(let token, let purpose):
                self.hub.recordInbound(self.connection)
                let authenticator = self.endpoint.authenticator
                let result = await onOwnTask { await authenticator.authenticate(token: token) }
                next = self.session.withLock { $0.authenticationFinished(result, purpose: purpose) }
            case .admit(let identity, let purpose):
                let change = self.hub.setIdentity(identity, for: self.connection)
                let limit = self.hub.configuration.maxConnectionsPerUser ?? 0
                if change.refusedAtUserLimit {
                    self.logger.info("Socket.IO join refused: user connection limit", metadata: ["user": "\(identity.userId)", "limit": "\(limit)"])
                } else {
                    self.admission.withLock { $0 = change }
                }
                next = self.session.withLock { $0.admissionDecided(!change.refusedAtUserLimit, identity: identity, purpose: purpose, limit: limit) }
            case .joined(let identity):
                guard let identity else { continue }  // waiting for AUTH
                let change = self.takeAdmission() ?? self.hub.setIdentity(identity, for: self.connection)
                self.joined.withLock { $0 = identity }
                let (backend, context, flag) = (self.endpoint.backend, self.context(identity: identity), change.isFirstConnectionOfUser)
                await onOwnTask { await backend.userConnected(context, identity: identity, isFirstConnectionOfUser: flag) }
            case .identityChanged(let previous, let identity):
                let change = self.takeAdmission() ?? self.hub.setIdentity(identity, for: self.connection)
                self.joined.withLock { $0 = identity }
                if let previous, previous.userId != identity.userId {
                    let (backend, context, flag) = (self.endpoint.backend, self.context(identity: previous), change.previousUserRemoved)
                    await onOwnTask { await backend.userDisconnected(context, identity: previous, wasLastConnectionOfUser: flag) }
                }
                if previous?.userId != identity.userId {
                    let (backend, context, flag) = (self.endpoint.backend, self.context(identity: identity), change.isFirstConnectionOfUser)
                    await onOwnTask { await backend.userConnected(context, identity: identity, isFirstConnectionOfUser: flag) }
                }
            case .left(let identity):
                let change = self.hub.setIdentity(nil, for: self.connection)
                self.joined.withLock { $0 = nil }
                if let identity {
                    let (backend, context, flag) = (self.endpoint.backend, self.context(identity: identity), change.previousUserRemoved)
                    await onOwnTask { await backend.userDisconnected(context, identity: identity, wasLastConnectionOfUser: flag) }
                }
            case .dispatch(let request):
                self.hub.recordInbound(self.connection)
                let key = self.connection.rateLimitKey
                guard self.endpoint.rateLimiter.allow(key) else {
                    self.hub.recordRateLimited(self.connection)
                    next = self.session.withLock { $0.rateLimited(request) }
                    break
                }
                guard let identity = self.connection.identity else { continue }
                let (backend, context) = (self.endpoint.backend, self.context(identity: identity))
                let result = await onOwnTask {
                    await backend.handleEvent(name: request.name, payload: request.payload, connection: context, identity: identity)
                }
                next = self.session.withLock { $0.eventFinished(request, result) }
            case .close(let reason):
                self.hub.close(self.connection, reason: reason)
                open = false
            }
            if !next.isEmpty { work = next[...] + work }
        }
        return open
    }
}
