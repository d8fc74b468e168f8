import Foundation
import Hub

/// Tokens on WebSockets (`token` query parameter, STOMP CONNECT headers, Socket.IO `auth.token`
/// and `AUTH`) are verified like REST ones. The identity carries when the token runs out, on the
/// hub's clock (`HubIdentity.expiresAt`: `exp` plus the leeway), so the hub closes the connection then.
struct JWTHubAuthenticator: HubAuthenticator {
    let verifier: JWTVerifier
    let clock: HubClock

    func authenticate(token: String) async -> HubAuthResult {
        do {
            let user = try verifier.verify(token)
            let expiresAt = user.expiresAt.map {
                TokenDeadline.hubTime(expiresAt: $0, leeway: verifier.policy.leeway, now: Date(), hubNow: clock.now())
            }
            return .identity(HubIdentity(user, expiresAt: expiresAt))
        } catch {
            return .invalid(reason: error.description)
        }
    }
}

/// A token's `exp` (wall clock) as a `HubClock` time.
enum TokenDeadline {
    /// Longer than any token lives; keeps the conversion far from `Duration`'s limits.
    static let maxLifetime: TimeInterval = 10 * 365 * 24 * 3600

    /// `hubNow` + the time left until `expiresAt` + `leeway` (clamped to 0…10 years, so a huge or
    /// past `exp` cannot overflow).
    static func hubTime(expiresAt: Date, leeway: TimeInterval, now: Date, hubNow: Duration) -> Duration {
        let left = expiresAt.timeIntervalSince(now) + leeway
        let clamped = left.isNaN ? 0 : min(max(left, 0), maxLifetime)
        return hubNow + .milliseconds(Int64(clamped * 1000))
    }
}

extension HubIdentity {
    init(_ user: AuthUser, expiresAt: Duration? = nil) {
        self.init(userId: user.userId, username: user.username, avatarUrl: user.avatarUrl, roles: user.roles, expiresAt: expiresAt)
    }
}

extension AuthUser {
    init(_ identity: HubIdentity) {
        self.init(userId: identity.userId, username: identity.username, avatarUrl: identity.avatarUrl, roles: identity.roles)
    }
}
