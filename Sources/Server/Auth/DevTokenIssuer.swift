import Foundation
import JWTKit

/// Signs HS256 tokens with the dev-mode secret (jwt-kit): the sample tokens printed at start-up and
/// the studio's `POST /v1/dev/tokens`. Only built in dev mode; tests use it with their own secret.
public struct DevTokenIssuer: Sendable {
    private let keys: JWTKeyCollection

    public init(secret: String) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
    }

    /// A token for `user`, valid for `lifetime` seconds from `now`.
    public func sign(_ user: AuthUser, lifetime: TimeInterval, now: Date = Date()) async throws -> String {
        try await self.sign(TokenClaims(user: user, issuedAt: now, expiresAt: now.addingTimeInterval(lifetime)))
    }

    /// Any claims (tests of the claim mapping).
    public func sign(_ claims: TokenClaims) async throws -> String {
        try await self.keys.sign(claims, header: JWTHeader(fields: ["typ": .string("JWT")]))
    }
}
