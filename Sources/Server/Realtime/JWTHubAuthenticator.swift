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
            let verified = try verifier.verifyToken(token)
            var identity = verified.user
            identity.expiresAt = TokenDeadline.hubTime(expiresAt: verified.expiresAt, leeway: verifier.policy.leeway, now: Date(), hubNow: clock.now())
            return .identity(identity)
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
