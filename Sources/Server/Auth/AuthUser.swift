import Foundation
import Hub

/// The signed-in user a JWT names (DESIGN.md "Auth"; claim mapping in `TokenClaims.user`): the
/// hub's `HubIdentity`, one type for REST, the domain and the WebSockets. Its `expiresAt` is set
/// only on a WebSocket's identity (`JWTHubAuthenticator`, on the hub's clock).
public typealias AuthUser = HubIdentity

extension HubIdentity {
    public var isShopOwner: Bool { roles.contains("SHOP_OWNER") || roles.contains("ROLE_SHOP_OWNER") }
}

/// A token that passed every check: who it names and its `exp` (RFC 7519 §4.1.4).
public struct VerifiedToken: Sendable, Equatable {
    public var user: AuthUser
    public var expiresAt: Date
}

/// Why a token was refused; the description is safe to show the caller (it names no key or secret).
public enum TokenRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not three base64url parts of JSON (RFC 7519 §7.2).
    case malformed
    /// `alg: none` (RFC 7518 §3.6): never accepted.
    case unsigned
    /// An algorithm no configured key signs with.
    case unsupportedAlgorithm(String, accepted: [String])
    /// A `kid` the JWKS does not hold, and no other key for the algorithm.
    case unknownKeyID(String)
    /// The `kid` is known but its key is not for this algorithm (RFC 7517 §4.4).
    case algorithmMismatch(kid: String, alg: String)
    /// RFC 7515 §4.1.11: an extension the token says must be understood, which LiveHub does not.
    case criticalHeader
    case badSignature
    /// `exp` is required (a token without one would be valid forever).
    case missingExpiry
    /// A registered claim of the wrong JSON type, e.g. `exp` as a string.
    case badClaim(String, expected: String)
    case expired
    case notYetValid
    case wrongIssuer(expected: String)
    case wrongAudience(expected: [String])
    case missingSubject

    public var description: String {
        switch self {
        case .malformed: "the token is not a well-formed JWT"
        case .unsigned: "unsigned tokens (alg none) are not accepted"
        case .unsupportedAlgorithm(let alg, let accepted):
            accepted.isEmpty
                ? "the token algorithm \(alg) is not accepted: no key is configured"
                : "the token algorithm \(alg) is not accepted (accepted: \(accepted.joined(separator: ", ")))"
        case .unknownKeyID(let kid): "no key with kid \(kid) is known"
        case .algorithmMismatch(let kid, let alg): "the key \(kid) does not sign with \(alg)"
        case .criticalHeader: "the token has a crit header LiveHub does not understand"
        case .badSignature: "the token signature is invalid"
        case .missingExpiry: "the token has no exp claim (an expiry is required)"
        case .badClaim(let name, let expected): "the token's \(name) claim must be \(expected)"
        case .expired: "the token has expired"
        case .notYetValid: "the token is not valid yet"
        case .wrongIssuer(let expected): "the token was not issued by \(expected)"
        case .wrongAudience(let expected): "the token is not meant for \(expected.joined(separator: " or "))"
        case .missingSubject: "the token names no user (userId or sub)"
        }
    }
}
