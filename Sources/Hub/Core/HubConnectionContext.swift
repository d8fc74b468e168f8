/// What a backend sees of a connection.
public struct HubConnectionContext: Sendable, Hashable {
    /// Process-unique connection id (also the key a "viewer" counts once by).
    public var connectionId: HubConnectionID
    /// The protocol-level session id (STOMP `session` header / Socket.IO `sid`).
    public var sessionId: String
    /// `nil` = guest.
    public var identity: HubIdentity?

    public init(connectionId: HubConnectionID, sessionId: String, identity: HubIdentity?) {
        self.connectionId = connectionId
        self.sessionId = sessionId
        self.identity = identity
    }
}

