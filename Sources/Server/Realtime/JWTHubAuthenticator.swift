import Hub

/// Tokens on WebSockets (`token` query parameter, STOMP CONNECT headers, Socket.IO `auth.token`)
/// are the same HS256 JWTs as on REST.
struct JWTHubAuthenticator: HubAuthenticator {
    let jwt: JWTCodec

    func authenticate(token: String) async -> HubAuthResult {
        do {
            return .identity(HubIdentity(try jwt.verify(token)))
        } catch {
            return .invalid(reason: error.description)
        }
    }
}

extension HubIdentity {
    init(_ user: AuthUser) {
        self.init(userId: user.userId, username: user.username, avatarUrl: user.avatarUrl, roles: user.roles)
    }
}

extension AuthUser {
    init(_ identity: HubIdentity) {
        self.init(userId: identity.userId, username: identity.username, avatarUrl: identity.avatarUrl, roles: identity.roles)
    }
}
