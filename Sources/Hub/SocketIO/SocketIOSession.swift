import NIOCore

/// Settings of the Socket.IO endpoint (engine.io v4 defaults).
public struct SocketIOConfiguration: Sendable {
    /// What to do with a namespace CONNECT (`40` / `40{}`) that carries no `auth.token` when the
    /// Server did not pass an already verified identity either.
    public enum MissingTokenPolicy: Sendable, Hashable {
        /// Answer `44{"message":"missing token"}` (socket.io-client `connect_error`).
        case reject
        /// Accept (`40{"sid"}`), then require an `AUTH` event (`42N["AUTH",{"token":"…"}]`)
        /// within `timeout` of the connection's first such join (once per connection: leaving
        /// with `41` and joining again does not move it); any other event before it gets an
        /// `unauthenticated` error; on time-out the socket gets `41` and the connection is closed.
        case requireAuthEvent(timeout: Duration)
    }

    /// ms between server pings (`2`).
    public var pingInterval: Int
    /// ms the client may take beyond `pingInterval` before it is considered gone.
    public var pingTimeout: Int
    /// Largest Engine.IO packet accepted, in bytes (announced in the handshake).
    public var maxPayload: Int
    /// A connection that has not joined the namespace by then is closed (socket.io `connectTimeout`).
    public var connectTimeout: Duration
    /// Inbound events per user (guests: per connection). DESIGN.md: 10 msgs/s.
    public var inboundRateLimit: RateLimit
    public var missingToken: MissingTokenPolicy
    /// Name of the authentication event (`AUTH`).
    public var authEventName: String
    /// How often timers are checked.
    public var tickInterval: Duration

    public init(
        pingInterval: Int = 25_000,
        pingTimeout: Int = 20_000,
        maxPayload: Int = 1_000_000,
        connectTimeout: Duration = .seconds(45),
        inboundRateLimit: RateLimit = .socketIOInbound,
        missingToken: MissingTokenPolicy = .reject,
        authEventName: String = "AUTH",
        tickInterval: Duration = .milliseconds(500)
    ) {
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
        self.connectTimeout = connectTimeout
        self.inboundRateLimit = inboundRateLimit
        self.missingToken = missingToken
        self.authEventName = authEventName
        self.tickInterval = tickInterval
    }
}

/// An inbound event waiting for the rate limiter and `BellBackend.handleEvent`.
public struct SocketIOEventRequest: Sendable, Hashable {
    public var name: String
    /// First argument after the name (`.null` if none).
    public var payload: JSONValue
    public var ackId: Int?

    public init(name: String, payload: JSONValue, ackId: Int? = nil) {
        self.name = name
        self.payload = payload
        self.ackId = ackId
    }
}

/// Per-connection Engine.IO v4 + Socket.IO v5 state machine for the default namespace (no I/O).
///
/// ## Authentication
/// - `40{"token":"…"}` → token verified → `40{"sid":"…"}`; invalid/expired →
///   `44{"message":"invalid token: <reason>"}` (the client may retry on the same connection).
/// - `40` / `40{}` without a token: the identity the Server passed (from the upgrade request's
///   `token` query parameter or `Authorization` header) is used; otherwise
///   `SocketIOConfiguration.missingToken` decides: `.reject` (default) → `44{"message":"missing token"}`,
///   or `.requireAuthEvent` → joined as unauthenticated until an `AUTH` event succeeds.
/// - `42N["AUTH",{"token":"…"}]` (or `["AUTH","<token>"]`) at any time after joining sets or
///   refreshes the identity (moving the socket between per-user sets); acked with
///   `{"ok":true,"userId":"…"}` or `{"error":"invalid_token","message":"…"}`.
/// - A user already holding the hub's per-user connection limit is refused (`.admit` →
///   `admissionDecided`): `44{"message":"too many connections for this user …"}` on connect,
///   `{"error":"too_many_connections",…}` for `AUTH`.
///
/// ## Errors that keep the connection
/// Events before authentication (`unauthenticated`), over the rate limit (`rate_limited`), binary
/// packets `45`/`46` (`binary_not_supported`; attachments are dropped) and backend errors are
/// answered with an ack `43N[{"error":code,"message":text}]` when the client asked for one,
/// otherwise with an `error` event `42["error",{"error":code,"message":text,"event":name}]`.
/// Other namespaces get `44/<nsp>,{"message":"Invalid namespace"}`.
///
/// ## Fatal
/// Undecodable Engine.IO/Socket.IO packets, an oversized packet, ping time-out
/// (pingInterval + pingTimeout without any packet), no namespace CONNECT within `connectTimeout`.
///
/// ## Token expiry
/// When the identity's token runs out (`HubIdentity.expiresAt`; an `AUTH` with a fresh token
/// moves it) the socket gets `42["error",{"error":"token_expired","message":"token expired"}]`,
/// then `41` (socket.io-client: `disconnect` with "io server disconnect"; it does not reconnect by
/// itself, the app connects again with a fresh token), then the connection closes (1008
/// "token expired"). Sockets without an identity are not affected.
public struct SocketIOSession: Sendable {
    public enum AuthPurpose: Sendable, Hashable {
        case connect
        case authEvent(ackId: Int?)
    }

    public enum Action: Sendable, Hashable {
        /// Write this text frame (an Engine.IO packet).
        case send(String)
        /// Verify `token`, then call `authenticationFinished`.
        case authenticate(token: String, purpose: AuthPurpose)
        /// Move the socket into `identity`'s per-user set (`Hub.setIdentity`, which enforces the
        /// per-user connection limit), then call `admissionDecided`. Comes before the connect reply
        /// or the AUTH ack, so a refused socket never looks joined.
        case admit(identity: HubIdentity, purpose: AuthPurpose)
        /// The socket is now in the namespace as `identity` (nil = waiting for AUTH): register it
        /// in the hub's per-user set and tell the backend.
        case joined(identity: HubIdentity?)
        /// The socket's identity changed from `previous` (nil = unauthenticated) to `identity`.
        case identityChanged(previous: HubIdentity?, identity: HubIdentity)
        /// The socket left the namespace (`41`): remove it from the per-user set.
        case left(identity: HubIdentity?)
        /// Rate-limit, call `BellBackend.handleEvent`, then call `eventFinished`.
        case dispatch(SocketIOEventRequest)
        case close(HubCloseReason)
    }

    enum State: Sendable, Hashable {
        case awaitingConnect
        case authenticating
        case connected
        case closed
    }

    public let configuration: SocketIOConfiguration
    /// Engine.IO session id (handshake).
    public let engineSid: String
    /// Socket.IO socket id (`40{"sid"}`).
    public let socketSid: String
    /// Transports the handshake offers to upgrade to (`["websocket"]` on long-polling).
    public let upgrades: [String]
    private(set) var state: State = .awaitingConnect
    public private(set) var identity: HubIdentity?
    private let preauthenticated: HubIdentity?
    private var openedAt: Duration
    private var lastInboundAt: Duration
    private var lastPingAt: Duration
    /// When an unauthenticated socket must have sent `AUTH`: set once per connection, at its first
    /// namespace join without a token. Leaving (`41`) and joining again does not move it.
    private var authDeadline: Duration?
    /// The `AUTH` event whose identity waits for `admissionDecided` (its ack id).
    private var pendingAuthEvent: (previous: HubIdentity?, identity: HubIdentity, ackId: Int?)?

    public init(
        configuration: SocketIOConfiguration = .init(), engineSid: String, socketSid: String, identity: HubIdentity? = nil, upgrades: [String] = [],
        now: Duration
    ) {
        self.configuration = configuration
        self.engineSid = engineSid
        self.upgrades = upgrades
        self.socketSid = socketSid
        self.preauthenticated = identity
        self.openedAt = now
        self.lastInboundAt = now
        self.lastPingAt = now
    }

    public var isConnected: Bool { self.state == .connected }
    public var isClosed: Bool { self.state == .closed }

    mutating func markClosed() { self.state = .closed }

    /// The Engine.IO handshake, to send first.
    public func open() -> [Action] {
        [.send(EngineIOPacket.handshake(
            sid: self.engineSid, upgrades: self.upgrades, pingInterval: self.configuration.pingInterval,
            pingTimeout: self.configuration.pingTimeout, maxPayload: self.configuration.maxPayload
        ).encoded)]
    }

    /// A text WebSocket message from the client.
    public mutating func receive(_ text: String, now: Duration) -> [Action] {
        guard self.state != .closed else { return [] }
        self.lastInboundAt = now
        guard text.utf8.count <= self.configuration.maxPayload else {
            self.state = .closed
            return [.close(.tooLarge)]
        }
        let packet: EngineIOPacket
        do {
            packet = try EngineIOPacket.decode(text)
        } catch {
            self.state = .closed
            return [.close(.protocolError(error.description))]
        }
        switch packet {
        case .ping(let d): return [.send(EngineIOPacket.pong(d).encoded)]
        case .pong, .noop, .upgrade: return []
        case .close:
            return self.closeNow(.normal)
        case .open:
            return self.closeNow(.protocolError("unexpected open packet"))
        case .message(let d):
            let sio: SocketIOPacket
            do {
                sio = try SocketIOPacket.decode(d)
            } catch {
                return self.closeNow(.protocolError(error.description))
            }
            return self.handle(sio, now: now)
        }
    }

    /// A binary WebSocket message: attachments are not supported and are dropped.
    public mutating func receiveBinary(now: Duration) -> [Action] {
        self.lastInboundAt = now
        return []
    }

    private mutating func closeNow(_ reason: HubCloseReason) -> [Action] {
        var actions: [Action] = []
        if self.state == .connected { actions.append(.left(identity: self.identity)) }
        self.state = .closed
        actions.append(.close(reason))
        return actions
    }

    /// The last notification the client saw (`lastNotificationId` in the namespace CONNECT's auth
    /// object or the latest `AUTH` payload): its missed ones are replayed when it joins. Only an id
    /// of 1-128 printable ASCII characters (or an integer) is kept; anything else is ignored.
    public private(set) var lastNotificationId: String?

    /// Takes the id (replayed once).
    public mutating func takeLastNotificationId() -> String? {
        defer { self.lastNotificationId = nil }
        return self.lastNotificationId
    }

    static func lastNotificationId(in value: JSONValue?) -> String? {
        guard let value = value?["lastNotificationId"] else { return nil }
        let text = value.stringValue ?? value.intValue.map(String.init)
        guard let text, !text.isEmpty, text.utf8.count <= 128, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return text
    }

    private mutating func handle(_ packet: SocketIOPacket, now: Duration) -> [Action] {
        if packet.namespace != "/" {
            if packet.type == .connect {
                let err = SocketIOPacket(type: .connectError, namespace: packet.namespace, data: ["message": "Invalid namespace"])
                return [.send(err.engineIOText)]
            }
            return []
        }
        switch packet.type {
        case .connect:
            guard self.state == .awaitingConnect else { return [] }
            self.lastNotificationId = Self.lastNotificationId(in: packet.data)
            if let token = Self.token(in: packet.data) {
                self.state = .authenticating
                return [.authenticate(token: token, purpose: .connect)]
            }
            if let pre = self.preauthenticated {
                self.state = .authenticating
                return [.admit(identity: pre, purpose: .connect)]
            }
            switch self.configuration.missingToken {
            case .reject:
                return [.send(Self.connectError("missing token"))]
            case .requireAuthEvent(let timeout):
                // Once per connection: a socket that leaves and joins again keeps its first deadline.
                if self.authDeadline == nil { self.authDeadline = now + timeout }
                return self.join(nil)
            }
        case .disconnect:
            guard self.state == .connected else { return [] }
            let previous = self.identity
            self.state = .awaitingConnect
            self.identity = nil
            return [.left(identity: previous)]
        case .event:
            guard self.state == .connected, let name = packet.eventName else { return [] }
            let args = packet.eventArguments
            if name == self.configuration.authEventName {
                if let last = Self.lastNotificationId(in: args.first) { self.lastNotificationId = last }
                guard let token = Self.token(in: args.first) ?? args.first?.stringValue, !token.isEmpty else {
                    return [.send(Self.errorReply(ackId: packet.ackId, code: "invalid_token", message: "missing token", event: name))]
                }
                return [.authenticate(token: token, purpose: .authEvent(ackId: packet.ackId))]
            }
            guard self.identity != nil else {
                return [.send(Self.errorReply(ackId: packet.ackId, code: "unauthenticated", message: "send AUTH first", event: name))]
            }
            return [.dispatch(SocketIOEventRequest(name: name, payload: args.first ?? .null, ackId: packet.ackId))]
        case .binaryEvent, .binaryAck:
            guard self.state == .connected else { return [] }
            return [.send(Self.errorReply(ackId: packet.ackId, code: "binary_not_supported", message: "binary packets are not supported", event: packet.eventName ?? ""))]
        case .ack, .connectError:
            return []
        }
    }

    static func token(in value: JSONValue?) -> String? {
        guard let t = value?["token"]?.stringValue, !t.isEmpty else { return nil }
        return t
    }

    private mutating func join(_ identity: HubIdentity?) -> [Action] {
        self.state = .connected
        self.identity = identity
        if identity != nil { self.authDeadline = nil }  // met: a token was accepted
        let reply = SocketIOPacket(type: .connect, data: ["sid": .string(self.socketSid)])
        return [.send(reply.engineIOText), .joined(identity: identity)]
    }

    static func connectError(_ message: String) -> String {
        SocketIOPacket(type: .connectError, data: ["message": .string(message)]).engineIOText
    }

    /// `43N[{"error","message"}]` with an ack id, else `42["error",{"error","message","event"}]`.
    public static func errorReply(ackId: Int?, code: String, message: String, event: String) -> String {
        if let ackId {
            return SocketIOPacket(type: .ack, ackId: ackId, data: [["error": .string(code), "message": .string(message)]]).engineIOText
        }
        return SocketIOPacket(type: .event, data: ["error", ["error": .string(code), "message": .string(message), "event": .string(event)]]).engineIOText
    }

    public mutating func authenticationFinished(_ result: HubAuthResult, purpose: AuthPurpose) -> [Action] {
        switch purpose {
        case .connect:
            guard self.state == .authenticating else { return [] }
            switch result {
            case .identity(let identity):
                return [.admit(identity: identity, purpose: .connect)]
            case .invalid(let reason):
                self.state = .awaitingConnect
                return [.send(Self.connectError("invalid token: \(reason)"))]
            }
        case .authEvent(let ackId):
            guard self.state == .connected else { return [] }
            switch result {
            case .identity(let identity):
                self.pendingAuthEvent = (self.identity, identity, ackId)
                return [.admit(identity: identity, purpose: purpose)]
            case .invalid(let reason):
                return [.send(Self.errorReply(ackId: ackId, code: "invalid_token", message: reason, event: self.configuration.authEventName))]
            }
        }
    }

    /// The hub's answer to `.admit`: joined (or re-identified), or refused because the user already
    /// holds `limit` connections: a connect error (`44`, socket.io-client `connect_error`; the
    /// socket stays out of the namespace and may retry) or an `AUTH` error reply.
    public mutating func admissionDecided(_ admitted: Bool, identity: HubIdentity, purpose: AuthPurpose, limit: Int) -> [Action] {
        let refusal = "too many connections for this user (limit \(limit)); close another tab first"
        switch purpose {
        case .connect:
            guard self.state == .authenticating else { return [] }
            guard admitted else {
                self.state = .awaitingConnect
                return [.send(Self.connectError(refusal))]
            }
            return self.join(identity)
        case .authEvent(let ackId):
            guard self.state == .connected, let pending = self.pendingAuthEvent else { return [] }
            self.pendingAuthEvent = nil
            guard admitted else {
                return [.send(Self.errorReply(ackId: ackId, code: "too_many_connections", message: refusal, event: self.configuration.authEventName))]
            }
            self.identity = identity
            self.authDeadline = nil  // met: a token was accepted
            var actions: [Action] = []
            if pending.previous != identity { actions.append(.identityChanged(previous: pending.previous, identity: identity)) }
            if let ackId {
                actions.append(.send(SocketIOPacket(type: .ack, ackId: ackId, data: [["ok": true, "userId": .string(identity.userId)]]).engineIOText))
            }
            return actions
        }
    }
    /// `42["error",{"error":"token_expired","message":"token expired"}]`, sent before `41` at expiry.
    public static let tokenExpiredNotice = SocketIOPacket(
        type: .event, data: ["error", ["error": "token_expired", "message": "token expired"]]).engineIOText

    /// The rate limiter refused the event.
    public func rateLimited(_ request: SocketIOEventRequest) -> [Action] {
        [.send(Self.errorReply(ackId: request.ackId, code: "rate_limited", message: "too many messages", event: request.name))]
    }

    public func eventFinished(_ request: SocketIOEventRequest, _ result: BellEventResult) -> [Action] {
        guard self.state == .connected else { return [] }
        switch result {
        case .ack(let value):
            guard let ackId = request.ackId else { return [] }
            return [.send(SocketIOPacket(type: .ack, ackId: ackId, data: [value]).engineIOText)]
        case .error(let code, let message):
            return [.send(Self.errorReply(ackId: request.ackId, code: code, message: message, event: request.name))]
        }
    }

    /// The earliest `now` at which `tick` can act, given what it knows now. Only ever early: the
    /// clocks it derives from only move forward, and a frame that changes the state is followed by
    /// a tick anyway (`ConnectionTicker.Ticket.wake`).
    public func nextTickDeadline() -> Duration {
        if self.state == .closed { return .hubNever }
        var due = min(
            self.lastInboundAt + .milliseconds(self.configuration.pingInterval + self.configuration.pingTimeout),
            self.lastPingAt + .milliseconds(self.configuration.pingInterval))
        if self.state == .awaitingConnect { due = min(due, self.openedAt + self.configuration.connectTimeout) }
        if self.identity == nil, let deadline = self.authDeadline { due = min(due, deadline) }
        if self.state == .connected, let expiresAt = self.identity?.expiresAt { due = min(due, expiresAt) }
        return due
    }

    /// Call periodically: server pings, ping time-out, connect and AUTH time-outs, token expiry.
    public mutating func tick(now: Duration) -> [Action] {
        if self.state == .closed { return [] }
        if now - self.lastInboundAt > .milliseconds(self.configuration.pingInterval + self.configuration.pingTimeout) {
            return self.closeNow(.timeout)
        }
        if self.state == .awaitingConnect && now - self.openedAt > self.configuration.connectTimeout {
            return self.closeNow(.timeout)
        }
        // Once the socket has joined without a token, the deadline stands until a token is accepted,
        // whether it is in the namespace now or has left it (`41`): leaving and joining again in a
        // loop must not keep it alive.
        if self.identity == nil, self.state != .authenticating, let deadline = self.authDeadline, now >= deadline {
            let goodbye = self.state == .connected ? [Action.send(SocketIOPacket(type: .disconnect).engineIOText)] : []
            return goodbye + self.closeNow(.protocolError("authentication timeout"))
        }
        if self.state == .connected, let expiresAt = self.identity?.expiresAt, now >= expiresAt {
            return [.send(Self.tokenExpiredNotice), .send(SocketIOPacket(type: .disconnect).engineIOText)]
                + self.closeNow(.protocolError("token expired"))
        }
        if now - self.lastPingAt >= .milliseconds(self.configuration.pingInterval) {
            self.lastPingAt = now
            return [.send(EngineIOPacket.ping("").encoded)]
        }
        return []
    }
}

/// Encodes hub pushes as Socket.IO events: `42["<event>",<payload>]`, once per push for all the
/// user's sockets.
public struct SocketIOEventEncoder: HubMessageEncoder {
    public init() {}

    public func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame {
        var out = ByteBuffer()
        out.reserveCapacity(message.payload.readableBytes + message.destination.utf8.count + 8)
        out.writeStaticString("42[")
        JSONWriter.writeString(message.destination, into: &out)
        if message.payload.readableBytes > 0 {
            out.writeStaticString(",")
            var p = message.payload
            out.writeBuffer(&p)
        }
        out.writeStaticString("]")
        return .text(out)
    }
}

extension HubWireFormat {
    /// Socket.IO v5 over Engine.IO v4 WebSocket.
    public static let socketIO = HubWireFormat(name: "socketio", protocolName: "socketio", encoder: SocketIOEventEncoder(), acceptsUserMessages: true)
}
