/// Settings of the STOMP endpoint. Defaults follow DESIGN.md and @stomp/stompjs.
public struct STOMPConfiguration: Sendable {
    /// `server` header of CONNECTED.
    public var serverName: String
    /// Server heart-beat offer `sx,sy` in ms (STOMP 1.2 "Heart-beating"): we can send every `sx`,
    /// we want to hear from the client every `sy`. stompjs defaults to 10000,10000.
    public var heartBeatSend: Int
    public var heartBeatReceive: Int
    /// Frame limits (64 KiB body — DESIGN.md "max frame 64 KiB").
    public var parserLimits: STOMPParserLimits
    /// A connection that has not sent CONNECT this long after it opened is sent an ERROR and
    /// closed. Counted from the WebSocket's opening; nothing the client sends moves it.
    public var connectTimeout: Duration
    /// Subscriptions one connection may hold (`/user/queue/errors` included). One more SUBSCRIBE is
    /// refused with `too-many-subscriptions`; the connection stays. Default 64: the live page
    /// holds 5 per room.
    public var maxSubscriptions: Int
    /// Rate of SEND frames per user (guests: per connection). DESIGN.md: 5 msgs/s.
    public var sendRateLimit: RateLimit
    /// Where refused SENDs/SUBSCRIBEs are reported (see `STOMPSession`).
    public var errorsDestination: String
    /// SEND destinations handled by the application (`LiveRoomBackend.handleSend`).
    public var applicationPrefix: String
    /// SUBSCRIBE destinations served by the hub's topics (checked by `LiveRoomBackend.canSubscribe`).
    public var brokerPrefixes: [String]
    /// SockJS `h` frame interval (sockjs-protocol: 25 s).
    public var sockJSHeartbeatInterval: Duration
    /// How often the session checks heart-beats / time-outs.
    public var tickInterval: Duration
    /// Largest WebSocket message accepted from a SockJS client (its JSON escaping inflates frames).
    public var maxSockJSMessageSize: Int
    /// Missed messages one recovering SUBSCRIBE is handed at most (`LIVEHUB_RECOVERY_MAX_MESSAGES`,
    /// default 1000); a longer gap ends with `recovered:false` (`Hub.recover`).
    public var maxRecoveredMessages: Int
    /// SENDs to destinations ending with one of these skip `sendRateLimit`: the backend limits
    /// them itself (the Server's reactions, `/app/live/{room}/react`, have their own rate).
    public var separatelyLimitedSendSuffixes: [String]

    public init(
        serverName: String = "LiveHub/1.0",
        heartBeatSend: Int = 10_000,
        heartBeatReceive: Int = 10_000,
        parserLimits: STOMPParserLimits = .init(),
        connectTimeout: Duration = .seconds(10),
        sendRateLimit: RateLimit = .stompSend,
        errorsDestination: String = "/user/queue/errors",
        applicationPrefix: String = "/app/",
        brokerPrefixes: [String] = ["/topic/"],
        sockJSHeartbeatInterval: Duration = .seconds(25),
        tickInterval: Duration = .milliseconds(500),
        maxSockJSMessageSize: Int = 6 * 64 * 1024 + 16 * 1024,
        maxSubscriptions: Int = 64,
        maxRecoveredMessages: Int = 1000,
        separatelyLimitedSendSuffixes: [String] = []
    ) {
        self.separatelyLimitedSendSuffixes = separatelyLimitedSendSuffixes
        self.maxRecoveredMessages = max(0, maxRecoveredMessages)
        self.serverName = serverName
        self.heartBeatSend = heartBeatSend
        self.heartBeatReceive = heartBeatReceive
        self.parserLimits = parserLimits
        self.connectTimeout = connectTimeout
        self.sendRateLimit = sendRateLimit
        self.errorsDestination = errorsDestination
        self.applicationPrefix = applicationPrefix
        self.brokerPrefixes = brokerPrefixes
        self.sockJSHeartbeatInterval = sockJSHeartbeatInterval
        self.tickInterval = tickInterval
        self.maxSockJSMessageSize = maxSockJSMessageSize
        self.maxSubscriptions = maxSubscriptions
    }
}

/// `Sec-WebSocket-Protocol` negotiation for STOMP over WebSocket.
public enum STOMPSubprotocol {
    /// Preference order.
    public static let supported = ["v12.stomp", "v11.stomp", "v10.stomp"]

    /// Given the client's offered subprotocols (header values, each possibly comma-separated),
    /// returns the one to echo (`v12.stomp` > `v11.stomp` > `v10.stomp`), or nil if none is
    /// offered (then send no `Sec-WebSocket-Protocol` header; plain WebSocket clients still work).
    public static func negotiate(offered: [String]) -> String? {
        let tokens = Set(offered.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: " \t").lowercased() })
        return self.supported.first { tokens.contains($0) }
    }

    public static func negotiate(offered header: String?) -> String? {
        guard let header else { return nil }
        return self.negotiate(offered: [header])
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
