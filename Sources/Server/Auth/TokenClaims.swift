import Foundation
import JWTKit

/// A token's payload as JSON values (RFC 7519 §4: any JSON object), decoded with jwt-kit's
/// `JWTHeaderField` so that no claim of an unexpected type fails the decoding (nesting is bounded
/// by jwt-kit). The registered claims are checked by `JWTVerifier` with its clock and policy, and
/// `user` maps the rest; neither traps on any value (a huge `exp`, `exp` as a string, …).
public struct TokenClaims: JWTPayload, Equatable {
    public var values: [String: JWTHeaderField]

    public init(_ values: [String: JWTHeaderField]) {
        self.values = values
    }

    public init(from decoder: any Decoder) throws {
        self.values = try decoder.singleValueContainer().decode([String: JWTHeaderField].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.values)
    }

    /// Claims are checked by `JWTVerifier.check(_:now:)`, which knows the leeway, issuer and audience.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// The claims of a token for `user`, valid until `expiresAt` (dev tokens, tests).
    public init(user: AuthUser, issuedAt: Date, expiresAt: Date) {
        var values: [String: JWTHeaderField] = [
            "sub": .string(user.userId),
            "userId": .string(user.userId),
            "username": .string(user.username),
            "roles": .array(user.roles.map { .string($0) }),
            "iat": .int(Self.seconds(issuedAt)),
            "exp": .int(Self.seconds(expiresAt)),
        ]
        if let avatarUrl = user.avatarUrl { values["avatarUrl"] = .string(avatarUrl) }
        self.values = values
    }

    /// Whole seconds since 1970, clamped to ±10,000 years (no trap on any `Date`).
    static func seconds(_ date: Date) -> Int {
        let limit = 315_576_000_000.0
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite else { return 0 }
        return Int(min(max(seconds, -limit), limit).rounded(.down))
    }

    // MARK: Registered claims (RFC 7519 §4.1)

    /// A NumericDate claim (`exp`, `nbf`): nil when absent; a refusal when it is not a number.
    func numericDate(_ name: String) throws(TokenRefusal) -> Double? {
        switch self.values[name] {
        case nil, .null?: return nil
        case .int(let seconds)?: return Double(seconds)
        case .decimal(let seconds)? where seconds.isFinite: return seconds
        default: throw .badClaim(name, expected: "a number of seconds since 1970")
        }
    }

    /// `iss` (a string) when present.
    func issuer() throws(TokenRefusal) -> String? {
        switch self.values["iss"] {
        case nil, .null?: return nil
        case .string(let issuer)?: return issuer
        default: throw .badClaim("iss", expected: "a string")
        }
    }

    /// `aud`: a string or an array of strings (RFC 7519 §4.1.3).
    func audiences() throws(TokenRefusal) -> [String] {
        switch self.values["aud"] {
        case nil, .null?: return []
        case .string(let audience)?: return [audience]
        case .array(let list)?:
            var audiences: [String] = []
            for item in list {
                guard case .string(let audience) = item else { throw .badClaim("aud", expected: "a string or an array of strings") }
                audiences.append(audience)
            }
            return audiences
        default: throw .badClaim("aud", expected: "a string or an array of strings")
        }
    }

    // MARK: The user

    /// DESIGN.md "Auth": `userId` (string or number) else `sub`; `username` else
    /// `preferred_username` (Keycloak, OIDC) else the user id; `avatarUrl` else `picture` (OIDC);
    /// roles from `roles` (array, or comma-separated string) else `role`, plus Keycloak's
    /// `realm_access.roles`.
    func user() throws(TokenRefusal) -> AuthUser {
        let subject = Self.text(self.values["sub"])
        guard let userId = Self.text(self.values["userId"]) ?? subject, !userId.isEmpty else { throw .missingSubject }
        let username = Self.text(self.values["username"]) ?? Self.text(self.values["preferred_username"]) ?? userId
        let avatarUrl = Self.text(self.values["avatarUrl"]) ?? Self.text(self.values["picture"])
        var roles: [String] = []
        switch self.values["roles"] {
        case .array(let list)?:
            roles = list.compactMap(\.asString)
        case .string(let list)?:
            roles = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        default:
            if let role = self.values["role"]?.asString { roles = [role] }
        }
        if case .object(let realmAccess)? = self.values["realm_access"], case .array(let list)? = realmAccess["roles"] {
            for role in list.compactMap(\.asString) where !roles.contains(role) { roles.append(role) }
        }
        return AuthUser(userId: userId, username: username, avatarUrl: avatarUrl, roles: roles)
    }

    /// A string, or a number written as an integer when it is one (`7`, not `7.0`).
    static func text(_ value: JWTHeaderField?) -> String? {
        switch value {
        case .string(let string)?: return string
        case .int(let number)?: return String(number)
        case .decimal(let number)?: return "\(number)"
        default: return nil
        }
    }
}
