import Crypto
import Foundation

/// The signed-in user a JWT names (DESIGN.md "Auth": `userId` else `sub`, `username` else `sub`,
/// `avatarUrl?`, `roles`, `exp`).
public struct AuthUser: Sendable, Equatable {
    public var userId: String
    public var username: String
    public var avatarUrl: String?
    public var roles: [String]

    public init(userId: String, username: String, avatarUrl: String? = nil, roles: [String] = []) {
        self.userId = userId
        self.username = username
        self.avatarUrl = avatarUrl
        self.roles = roles
    }

    public var isShopOwner: Bool { roles.contains("SHOP_OWNER") || roles.contains("ROLE_SHOP_OWNER") }
}

/// Why a token was refused; the message is safe to show the caller.
public enum JWTError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed
    case unsupportedAlgorithm(String)
    case badSignature
    case expired
    case notYetValid
    case missingSubject

    public var description: String {
        switch self {
        case .malformed: return "the token is not a well-formed JWT"
        case .unsupportedAlgorithm(let alg): return "the token algorithm \(alg) is not accepted (HS256 only)"
        case .badSignature: return "the token signature is invalid"
        case .expired: return "the token has expired"
        case .notYetValid: return "the token is not valid yet"
        case .missingSubject: return "the token names no user (userId or sub)"
        }
    }
}

/// HS256 JSON Web Tokens (RFC 7519 / RFC 7515) with a shared secret. Only `HS256` is accepted:
/// `alg: none` and every other algorithm are refused before any claim is read.
public struct JWTCodec: Sendable {
    private let secret: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: secret) }

    public init(secret: String) {
        self.secret = Array(secret.utf8)
    }

    /// Verifies the signature, `exp` and `nbf` (with `leeway` seconds of clock skew) and returns the user.
    public func verify(_ token: String, now: Date = Date(), leeway: TimeInterval = 0) throws(JWTError) -> AuthUser {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerData = Base64URL.decode(parts[0]),
            let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any]
        else { throw .malformed }
        guard let alg = header["alg"] as? String else { throw .malformed }
        guard alg == "HS256" else { throw .unsupportedAlgorithm(alg) }
        guard let signature = Base64URL.decode(parts[2]), signature.count == 32 else { throw .badSignature }
        let signingInput = Data("\(parts[0]).\(parts[1])".utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key) else {
            throw .badSignature
        }
        guard let payloadData = Base64URL.decode(parts[1]),
            let claims = try? JSONSerialization.jsonObject(with: payloadData) as? [String: Any]
        else { throw .malformed }
        let nowSeconds = now.timeIntervalSince1970
        if let exp = Self.number(claims["exp"]) {
            guard nowSeconds < exp + leeway else { throw .expired }
        } else if claims["exp"] != nil {
            throw .malformed
        }
        if let nbf = Self.number(claims["nbf"]), nowSeconds + leeway < nbf { throw .notYetValid }
        let subject = Self.string(claims["sub"])
        guard let userId = Self.string(claims["userId"]) ?? subject, !userId.isEmpty else { throw .missingSubject }
        let username = Self.string(claims["username"]) ?? subject ?? userId
        var roles: [String] = []
        if let list = claims["roles"] as? [Any] {
            roles = list.compactMap { $0 as? String }
        } else if let single = claims["roles"] as? String {
            roles = single.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        } else if let single = claims["role"] as? String {
            roles = [single]
        }
        return AuthUser(userId: userId, username: username, avatarUrl: Self.string(claims["avatarUrl"]), roles: roles)
    }

    /// Signs a token for `user` valid for `lifetime` (dev tokens, tests).
    public func sign(_ user: AuthUser, lifetime: TimeInterval, now: Date = Date()) -> String {
        var claims: [String: Any] = [
            "sub": user.userId,
            "userId": user.userId,
            "username": user.username,
            "roles": user.roles,
            "iat": Int(now.timeIntervalSince1970),
            "exp": Int(now.timeIntervalSince1970 + lifetime),
        ]
        if let avatarUrl = user.avatarUrl { claims["avatarUrl"] = avatarUrl }
        return sign(claims: claims)
    }

    /// Signs arbitrary claims with HS256.
    public func sign(claims: [String: Any]) -> String {
        let header = Base64URL.encode(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = Base64URL.encode((try? JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])) ?? Data("{}".utf8))
        let signature = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(payload)".utf8), using: key)
        return "\(header).\(payload).\(Base64URL.encode(Data(signature)))"
    }

    private static func number(_ value: Any?) -> Double? {
        if let value = value as? Int { return Double(value) }
        if let value = value as? Double { return value }
        return nil
    }

    private static func string(_ value: Any?) -> String? {
        switch value {
        case let string as String: return string
        case let number as NSNumber: return number.stringValue
        default: return nil
        }
    }
}

/// base64url without padding (RFC 7515 §2).
enum Base64URL {
    static func encode(_ data: Data) -> String {
        data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode<S: StringProtocol>(_ text: S) -> Data? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        let remainder = base64.count % 4
        if remainder == 1 { return nil }
        if remainder > 0 { base64 += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: base64)
    }
}
