/// Who is on the other end of a connection. `nil` wherever a `HubIdentity?` appears means a guest.
/// The Server uses this one type for every signed-in user (its `AuthUser` is this type).
///
/// The Server builds this from verified JWT claims (`userId` else `sub`, `username` else `sub`,
/// `avatarUrl?`, `roles`, `exp`); the hub uses `userId` (per-user socket sets, rate limits) and
/// `expiresAt`.
public struct HubIdentity: Sendable, Hashable {
    public var userId: String
    public var username: String
    public var avatarUrl: String?
    public var roles: [String]
    /// When the credential runs out, on the hub's clock (`HubClock.now()`); nil = never (and for
    /// users that are not on a WebSocket: REST requests check the token's `exp` themselves). A STOMP
    /// connection then gets `ERROR` `message:token expired` and is closed; a Socket.IO socket gets
    /// an `error` event `token_expired`, `41` and is closed, unless an `AUTH` refreshed it.
    public var expiresAt: Duration?

    public init(userId: String, username: String, avatarUrl: String? = nil, roles: [String] = [], expiresAt: Duration? = nil) {
        self.userId = userId
        self.username = username
        self.avatarUrl = avatarUrl
        self.roles = roles
        self.expiresAt = expiresAt
    }
}

/// Result of checking a bearer token.
public enum HubAuthResult: Sendable, Hashable {
    /// A valid token.
    case identity(HubIdentity)
    /// Expired, bad signature, `alg: none`, malformed… `reason` is shown to the client
    /// (STOMP `ERROR` `message` header, Socket.IO `connect_error` message), so keep it short and
    /// free of secrets, e.g. `"token expired"`.
    case invalid(reason: String)
}

/// Implemented by the Server (JWT, jwt-kit). Called by the STOMP adapter for the `token` query
/// parameter / CONNECT `Authorization: Bearer …` / CONNECT `token` header, and by the Socket.IO
/// adapter for the handshake `auth.token` and the `AUTH` event.
public protocol HubAuthenticator: Sendable {
    func authenticate(token: String) async -> HubAuthResult
}

/// An authenticator that refuses every token (useful in tests and when auth is not wired yet).
public struct RejectingAuthenticator: HubAuthenticator {
    public init() {}
    public func authenticate(token: String) async -> HubAuthResult { .invalid(reason: "authentication unavailable") }
}
