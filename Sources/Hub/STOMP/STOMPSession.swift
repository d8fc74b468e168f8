/// A SUBSCRIBE waiting for `LiveRoomBackend.canSubscribe`.
public struct STOMPSubscriptionRequest: Sendable, Hashable {
    public var id: String
    public var destination: String
    public var receipt: String?
    /// `recover-offset` + `recover-epoch`: the last position the client saw on this destination.
    public var recover: HubStreamPosition?

    public init(id: String, destination: String, receipt: String? = nil, recover: HubStreamPosition? = nil) {
        self.id = id
        self.destination = destination
        self.receipt = receipt
        self.recover = recover
    }
}

/// An application SEND waiting for the rate limiter and `LiveRoomBackend.handleSend`.
public struct STOMPSendRequest: Sendable, Hashable {
    public var destination: String
    public var body: [UInt8]
    public var contentType: String?
    public var receipt: String?

    public init(destination: String, body: [UInt8], contentType: String? = nil, receipt: String? = nil) {
        self.destination = destination
        self.body = body
        self.contentType = contentType
        self.receipt = receipt
    }
}

/// Per-connection STOMP 1.2 state machine (no I/O; returns actions the driver performs).
///
/// ## Refused application requests (the connection stays open)
/// A SEND refused by the backend (guest chat, too long, ended/unknown room), by the rate limiter
/// (`rate-limited`) or because it does not target `/app/…` (`forbidden-destination`), and a
/// SUBSCRIBE refused by the backend, to a non-`/topic/` destination (`invalid-destination`) or
/// beyond `maxSubscriptions` (`too-many-subscriptions`), are reported like this:
/// 1. a MESSAGE to every subscription the connection holds on `/user/queue/errors`
///    (headers `destination:/user/queue/errors`, `subscription:<id>`, `message-id`,
///    `content-type:application/json`, `error-code:<code>`, and `receipt-id:<r>` when the request
///    had a `receipt`), body `{"error":"<code>","message":"<text>","destination":"<dest>"[,"receiptId":"<r>"]}`;
/// 2. then, if the request carried a `receipt` header, a RECEIPT (so `watchForReceipt`/`deactivate`
///    never hang) with extra headers `status:refused`, `error-code:<code>`, `message:<text>`.
///    Accepted requests get a plain RECEIPT (no `status`).
/// No ERROR frame is sent: in STOMP an ERROR ends the connection.
///
/// ## Fatal errors (ERROR frame with `message` header and a text body, then close)
/// Malformed frames and limits (parser errors), a frame before CONNECT, a second CONNECT, an
/// unsupported version, a bad `heart-beat` header, SUBSCRIBE without `destination`/`id` or with a
/// duplicate `id`, SEND without `destination`, a server command sent by the client, invalid,
/// expired or badly signed tokens, no CONNECT within `connectTimeout`, and a user over the hub's
/// per-user connection limit. A connection whose token runs out while connected
/// (`HubIdentity.expiresAt`) gets an ERROR with `message:token expired`, so that the client
/// reconnects with a fresh token; guests have no expiry.
///
/// Transactions (BEGIN/COMMIT/ABORT) and ACK/NACK are accepted and ignored (only `ack:auto`
/// semantics are offered); they still get their RECEIPT.
public struct STOMPSession: Sendable {
    public enum Action: Sendable, Hashable {
        /// Write this frame to the client.
        case send(STOMPFrame)
        /// Write a heart-beat (EOL).
        case sendHeartbeat
        /// Verify the token, then call `authenticationFinished`.
        case authenticate(token: String)
        /// CONNECT completed: register this identity (nil = guest) with the hub.
        case connected(identity: HubIdentity?)
        /// Ask `LiveRoomBackend.canSubscribe`, then call `subscriptionDecided`.
        case authorizeSubscription(STOMPSubscriptionRequest)
        /// Hub topic subscription with `variant` = subscription id.
        case subscribe(topic: String, id: String)
        /// The same after handing over what was missed since `since` and the recovery marker
        /// (`Hub.recover`).
        case subscribeRecovering(topic: String, id: String, since: HubStreamPosition)
        case unsubscribe(topic: String, id: String)
        /// Rate-limit, call `LiveRoomBackend.handleSend`, then call `sendFinished`.
        case deliver(STOMPSendRequest)
        /// Close the connection after writing what was queued.
        case close(HubCloseReason)
    }

    enum State: Sendable, Hashable {
        case awaitingConnect
        case authenticating
        case connected
        case closed
    }

    public let configuration: STOMPConfiguration
    public let sessionId: String
    private(set) var state: State = .awaitingConnect
    public private(set) var version = "1.2"
    /// Negotiated server → client heart-beat period in ms (0 = off).
    public private(set) var outgoingHeartbeat = 0
    /// Negotiated client → server heart-beat period in ms (0 = off).
    public private(set) var incomingHeartbeat = 0
    public private(set) var identity: HubIdentity?
    /// subscription id → destination
    public private(set) var subscriptions: [String: String] = [:]
    /// ids subscribed to `configuration.errorsDestination`, in order
    public private(set) var errorSubscriptionIds: [String] = []
    private var queryToken: String?
    private var preauthenticated: HubIdentity?
    private var pendingConnectReceipt: String?
    private var openedAt: Duration
    private var lastInboundAt: Duration
    private var errorCounter = 0

    /// - Parameters:
    ///   - queryToken: the `token` query parameter of the WebSocket URL, if any.
    ///   - identity: an identity the Server already verified (e.g. from an `Authorization` header on
    ///     the upgrade request); used when CONNECT carries no token.
    public init(configuration: STOMPConfiguration = .init(), sessionId: String, queryToken: String? = nil, identity: HubIdentity? = nil, now: Duration) {
        self.configuration = configuration
        self.sessionId = sessionId
        self.queryToken = queryToken.flatMap { $0.isEmpty ? nil : $0 }
        self.preauthenticated = identity
        self.openedAt = now
        self.lastInboundAt = now
    }

    public var isConnected: Bool { self.state == .connected }
    public var isClosed: Bool { self.state == .closed }

    /// Any inbound bytes (frames or heart-beat EOLs) keep the connection alive.
    public mutating func noteInbound(now: Duration) {
        self.lastInboundAt = now
    }

    // MARK: Frames

    public mutating func receive(_ frame: STOMPFrame, now: Duration) -> [Action] {
        self.lastInboundAt = now
        switch self.state {
        case .closed:
            return []
        case .authenticating:
            // The driver processes frames one at a time, so this only happens if it is misused.
            return self.fatal("frame received before CONNECTED", receipt: nil)
        case .awaitingConnect:
            guard frame.command == .connect || frame.command == .stomp else {
                return self.fatal("expected CONNECT or STOMP frame, got \(frame.command.rawValue)", receipt: frame.headers["receipt"])
            }
            return self.handleConnect(frame)
        case .connected:
            break
        }
        let receipt = frame.headers["receipt"]
        switch frame.command {
        case .connect, .stomp:
            return self.fatal("already connected", receipt: receipt)
        case .subscribe:
            return self.handleSubscribe(frame, receipt: receipt)
        case .unsubscribe:
            guard let id = frame.headers["id"] ?? (self.version == "1.0" ? frame.headers["destination"] : nil) else {
                return self.fatal("UNSUBSCRIBE requires an id header", receipt: receipt)
            }
            var actions: [Action] = []
            if let destination = self.subscriptions.removeValue(forKey: id) {
                if destination == self.configuration.errorsDestination {
                    self.errorSubscriptionIds.removeAll { $0 == id }
                } else if self.isBrokerDestination(destination) {
                    actions.append(.unsubscribe(topic: destination, id: id))
                }
            }
            actions.append(contentsOf: self.receiptActions(receipt))
            return actions
        case .send:
            guard let destination = frame.headers["destination"], !destination.isEmpty else {
                return self.fatal("SEND requires a destination header", receipt: receipt)
            }
            guard destination.hasPrefix(self.configuration.applicationPrefix) else {
                return self.refusal(
                    destination: destination, code: "forbidden-destination",
                    message: "SEND is only allowed to \(self.configuration.applicationPrefix)… destinations", receipt: receipt)
            }
            return [.deliver(STOMPSendRequest(destination: destination, body: frame.body, contentType: frame.headers["content-type"], receipt: receipt))]
        case .ack, .nack, .begin, .commit, .abort:
            return self.receiptActions(receipt)
        case .disconnect:
            self.state = .closed
            return self.receiptActions(receipt) + [.close(.normal)]
        case .connected, .message, .receipt, .error:
            return self.fatal("\(frame.command.rawValue) is a server frame", receipt: receipt)
        }
    }

    /// A parser error (malformed frame, limits): ERROR then close.
    public mutating func protocolError(_ error: STOMPParseError) -> [Action] {
        self.fatal(error.description, receipt: nil)
    }

    /// A transport-level problem (e.g. oversized WebSocket message, bad SockJS JSON).
    public mutating func protocolError(message: String) -> [Action] {
        self.fatal(message, receipt: nil)
    }

    // MARK: CONNECT

    private mutating func handleConnect(_ frame: STOMPFrame) -> [Action] {
        let receipt = frame.headers["receipt"]
        // STOMP 1.2 "Protocol Negotiation": absent accept-version means 1.0.
        let offered = (frame.headers["accept-version"] ?? "1.0").split(separator: ",").map { $0.trimmingCharacters(in: " ") }
        guard let version = ["1.2", "1.1", "1.0"].first(where: offered.contains) else {
            self.state = .closed
            var headers: STOMPHeaders = ["version": "1.2,1.1,1.0", "message": "Supported protocol versions are 1.2,1.1,1.0", "content-type": "text/plain"]
            if let receipt { headers.append("receipt-id", receipt) }
            return [.send(STOMPFrame(.error, headers: headers, body: "Supported protocol versions are 1.2,1.1,1.0")), .close(.protocolError("unsupported STOMP version"))]
        }
        self.version = version
        if let hb = frame.headers["heart-beat"] {
            guard let (cx, cy) = Self.heartBeat(hb) else {
                return self.fatal("invalid heart-beat header '\(hb.prefix(64))'", receipt: receipt)
            }
            let sx = self.configuration.heartBeatSend
            let sy = self.configuration.heartBeatReceive
            self.outgoingHeartbeat = (sx == 0 || cy == 0) ? 0 : max(sx, cy)
            self.incomingHeartbeat = (cx == 0 || sy == 0) ? 0 : max(cx, sy)
        } else {
            self.outgoingHeartbeat = 0
            self.incomingHeartbeat = 0
        }
        self.pendingConnectReceipt = receipt
        if let token = Self.token(from: frame.headers) ?? self.queryToken {
            self.state = .authenticating
            return [.authenticate(token: token)]
        }
        return self.completeConnect(identity: self.preauthenticated)
    }

    /// Longest heart-beat period honoured, in ms (one hour). STOMP 1.2 "Heart-beating" sets no upper
    /// bound; a larger value (e.g. `9223372036854775807`) means "practically never" and is clamped
    /// here, so that doubling it for the time-out can never overflow.
    static let maximumHeartBeatMilliseconds = 3_600_000

    /// STOMP 1.2 `heart-beat:cx,cy`: two non-negative decimal integers (ms), each clamped to
    /// `maximumHeartBeatMilliseconds` however many digits it has. nil when malformed (empty, a
    /// sign, anything but digits).
    static func heartBeat(_ header: String) -> (Int, Int)? {
        let parts = header.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        var values: [Int] = []
        for part in parts {
            let digits = part.trimmingCharacters(in: " ")
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            // More than 18 digits cannot fit the clamp anyway (and might not fit an Int).
            let value = digits.utf8.count > 18 ? Int.max : Int(digits)!
            values.append(min(value, Self.maximumHeartBeatMilliseconds))
        }
        return (values[0], values[1])
    }

    /// `text` with CR and LF replaced by spaces, for the headers of a frame that is not escaped.
    static func singleLine(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else { return text }
        return String(decoding: text.utf8.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }, as: UTF8.self)
    }

    /// `Authorization: Bearer <jwt>` (or a bare value), else `token`.
    static func token(from headers: STOMPHeaders) -> String? {
        if let auth = headers["Authorization"] ?? headers["authorization"] {
            let t = auth.trimmingCharacters(in: " ")
            let lower = t.lowercased()
            let token = lower.hasPrefix("bearer ") ? String(t.dropFirst(7)).trimmingCharacters(in: " ") : t
            if !token.isEmpty { return token }
        }
        if let t = headers["token"], !t.isEmpty { return t }
        return nil
    }

    public mutating func authenticationFinished(_ result: HubAuthResult) -> [Action] {
        guard self.state == .authenticating else { return [] }
        switch result {
        case .identity(let identity):
            return self.completeConnect(identity: identity)
        case .invalid(let reason):
            return self.fatal("invalid token (\(reason))", receipt: self.pendingConnectReceipt)
        }
    }

    private mutating func completeConnect(identity: HubIdentity?) -> [Action] {
        self.state = .connected
        self.identity = identity
        var headers: STOMPHeaders = [
            "version": self.version,
            "heart-beat": "\(self.configuration.heartBeatSend),\(self.configuration.heartBeatReceive)",
            "server": self.configuration.serverName,
            "session": self.sessionId,
        ]
        // CONNECTED headers are not escaped (STOMP 1.2 "Value Encoding"): a line break in a user
        // name from a token would start a header of its own.
        if let identity { headers.append("user-name", Self.singleLine(identity.username)) }
        var actions: [Action] = [.connected(identity: identity), .send(STOMPFrame(.connected, headers: headers))]
        actions.append(contentsOf: self.receiptActions(self.pendingConnectReceipt))
        self.pendingConnectReceipt = nil
        return actions
    }

    /// The hub refused the identity CONNECT authenticated: its user already holds the most
    /// connections allowed (`HubConfiguration.maxConnectionsPerUser`). ERROR, then close.
    public mutating func userConnectionLimitReached(limit: Int) -> [Action] {
        self.fatal("too many connections for this user (limit \(limit)); close another tab or connection first", receipt: nil)
    }

    // MARK: SUBSCRIBE

    private func isBrokerDestination(_ destination: String) -> Bool {
        self.configuration.brokerPrefixes.contains { destination.hasPrefix($0) }
    }

    private mutating func handleSubscribe(_ frame: STOMPFrame, receipt: String?) -> [Action] {
        guard let destination = frame.headers["destination"], !destination.isEmpty else {
            return self.fatal("SUBSCRIBE requires a destination header", receipt: receipt)
        }
        // STOMP 1.0 made `id` optional.
        guard let id = frame.headers["id"] ?? (self.version == "1.0" ? destination : nil), !id.isEmpty else {
            return self.fatal("SUBSCRIBE requires an id header", receipt: receipt)
        }
        guard self.subscriptions[id] == nil else {
            return self.fatal("subscription id '\(id)' is already in use", receipt: receipt)
        }
        guard self.subscriptions.count < self.configuration.maxSubscriptions else {
            return self.refusal(
                destination: destination, code: "too-many-subscriptions",
                message: "a connection holds at most \(self.configuration.maxSubscriptions) subscriptions; UNSUBSCRIBE one first",
                receipt: receipt)
        }
        if destination == self.configuration.errorsDestination {
            self.subscriptions[id] = destination
            self.errorSubscriptionIds.append(id)
            return self.receiptActions(receipt)
        }
        guard self.isBrokerDestination(destination) else {
            return self.refusal(
                destination: destination, code: "invalid-destination",
                message: "cannot subscribe to \(destination)", receipt: receipt)
        }
        var recover: HubStreamPosition?
        switch Self.recoverPosition(frame.headers) {
        case .none: break
        case .position(let p): recover = p
        case .invalid(let why):
            return self.refusal(destination: destination, code: "invalid-recover-header", message: why, receipt: receipt)
        }
        return [.authorizeSubscription(STOMPSubscriptionRequest(id: id, destination: destination, receipt: receipt, recover: recover))]
    }

    /// What a SUBSCRIBE's `recover-offset` and `recover-epoch` headers ask for.
    public enum RecoverHeaders: Sendable, Hashable {
        case none
        case position(HubStreamPosition)
        case invalid(String)
    }

    /// Longest `recover-epoch` accepted.
    public static let maximumEpochLength = 64

    /// `recover-offset`: decimal digits only, at most 19, within `Int64` (offsets are database row
    /// numbers); `recover-epoch`: 1…64 of `[A-Za-z0-9_-]`. Both or neither. Never traps.
    public static func recoverPosition(_ headers: STOMPHeaders) -> RecoverHeaders {
        let offsetText = headers["recover-offset"]
        let epochText = headers["recover-epoch"]
        if offsetText == nil && epochText == nil { return .none }
        guard let offsetText, let epochText else {
            return .invalid("recover-offset and recover-epoch go together: send both (the last offset and epoch seen) or neither")
        }
        let digits = offsetText.utf8
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let offset = UInt64(offsetText), offset <= UInt64(Int64.max)
        else {
            return .invalid("recover-offset must be a decimal number 0...\(Int64.max) (the offset header of the last MESSAGE seen)")
        }
        let epochBytes = epochText.utf8
        guard !epochBytes.isEmpty, epochBytes.count <= Self.maximumEpochLength,
            epochBytes.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
        else {
            return .invalid("recover-epoch must be 1-\(Self.maximumEpochLength) letters, digits, '-' or '_' (the epoch header of the last MESSAGE seen)")
        }
        return .position(HubStreamPosition(offset: offset, epoch: epochText))
    }

    public mutating func subscriptionDecided(_ request: STOMPSubscriptionRequest, _ decision: SubscribeDecision) -> [Action] {
        guard self.state == .connected else { return [] }
        switch decision {
        case .allow:
            guard self.subscriptions[request.id] == nil else {
                return self.fatal("subscription id '\(request.id)' is already in use", receipt: request.receipt)
            }
            self.subscriptions[request.id] = request.destination
            if let since = request.recover {
                return [.subscribeRecovering(topic: request.destination, id: request.id, since: since)] + self.receiptActions(request.receipt)
            }
            return [.subscribe(topic: request.destination, id: request.id)] + self.receiptActions(request.receipt)
        case .refuse(let code, let message):
            return self.refusal(destination: request.destination, code: code, message: message, receipt: request.receipt)
        }
    }

    // MARK: SEND

    public mutating func sendFinished(_ request: STOMPSendRequest, _ outcome: SendOutcome) -> [Action] {
        guard self.state == .connected else { return [] }
        switch outcome {
        case .accepted:
            return self.receiptActions(request.receipt)
        case .refused(let code, let message):
            return self.refusal(destination: request.destination, code: code, message: message, receipt: request.receipt)
        }
    }

    // MARK: Time

    /// Call periodically. `lastOutboundAt` = when the writer last wrote anything to the socket.
    public mutating func tick(now: Duration, lastOutboundAt: Duration) -> [Action] {
        switch self.state {
        case .awaitingConnect:
            if now - self.openedAt >= self.configuration.connectTimeout {
                return self.fatal("no CONNECT frame received in time", receipt: nil, reason: .timeout)
            }
            return []
        case .authenticating, .closed:
            return []
        case .connected:
            var actions: [Action] = []
            if let expiresAt = self.identity?.expiresAt, now >= expiresAt {
                return self.fatal(Self.tokenExpired, receipt: nil)
            }
            if self.incomingHeartbeat > 0 && now - self.lastInboundAt > .milliseconds(2 * self.incomingHeartbeat) {
                self.state = .closed
                return [.close(.timeout)]
            }
            if self.outgoingHeartbeat > 0 && now - lastOutboundAt >= .milliseconds(self.outgoingHeartbeat) {
                actions.append(.sendHeartbeat)
            }
            return actions
        }
    }

    /// The earliest `now` at which `tick` can act, given what it knows now (nil: it may act at any
    /// tick). Only ever early: `lastInboundAt` and `lastOutboundAt` only move forward, and a frame
    /// that changes the state is followed by a tick anyway (`ConnectionTicker.Ticket.wake`).
    public func nextTickDeadline(lastOutboundAt: Duration) -> Duration? {
        switch self.state {
        case .awaitingConnect:
            return self.openedAt + self.configuration.connectTimeout
        case .authenticating:
            return nil
        case .closed:
            return .hubNever
        case .connected:
            var due = self.identity?.expiresAt ?? .hubNever
            if self.incomingHeartbeat > 0 { due = min(due, self.lastInboundAt + .milliseconds(2 * self.incomingHeartbeat)) }
            if self.outgoingHeartbeat > 0 { due = min(due, lastOutboundAt + .milliseconds(self.outgoingHeartbeat)) }
            return due
        }
    }

    /// The ERROR `message` when the token runs out.
    public static let tokenExpired = "token expired"

    // MARK: Helpers

    private func receiptActions(_ receipt: String?) -> [Action] {
        guard let receipt else { return [] }
        return [.send(STOMPFrame(.receipt, headers: ["receipt-id": receipt]))]
    }

    private mutating func refusal(destination: String, code: String, message: String, receipt: String?) -> [Action] {
        var actions: [Action] = []
        if !self.errorSubscriptionIds.isEmpty {
            var body: JSONValue = ["error": .string(code), "message": .string(message), "destination": .string(destination)]
            if let receipt, case .object(var members) = body {
                members.append(("receiptId", .string(receipt)))
                body = .object(members)
            }
            let bytes = body.jsonBytes
            for id in self.errorSubscriptionIds {
                self.errorCounter += 1
                var headers: STOMPHeaders = [
                    "destination": self.configuration.errorsDestination,
                    "subscription": id,
                    "message-id": "\(self.sessionId)-e\(self.errorCounter)",
                    "content-type": "application/json",
                    "error-code": code,
                ]
                if let receipt { headers.append("receipt-id", receipt) }
                actions.append(.send(STOMPFrame(.message, headers: headers, body: bytes)))
            }
        }
        if let receipt {
            actions.append(.send(STOMPFrame(.receipt, headers: ["receipt-id": receipt, "status": "refused", "error-code": code, "message": message])))
        }
        return actions
    }

    private mutating func fatal(_ message: String, receipt: String?, reason: HubCloseReason? = nil) -> [Action] {
        self.state = .closed
        var headers: STOMPHeaders = ["message": message, "content-type": "text/plain"]
        if let receipt { headers.append("receipt-id", receipt) }
        return [.send(STOMPFrame(.error, headers: headers, body: message)), .close(reason ?? .protocolError(message))]
    }
}
