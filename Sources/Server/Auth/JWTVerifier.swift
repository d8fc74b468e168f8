import Foundation
import JWTKit
import Logging
import Synchronization

/// What a verified token's claims must satisfy besides the signature (RFC 7519 §4.1).
public struct JWTPolicy: Sendable, Equatable {
    /// `LIVEHUB_JWT_LEEWAY` (30 s): clock skew allowed on `exp` and `nbf`.
    public var leeway: TimeInterval
    /// `LIVEHUB_JWT_ISSUER`: when set, `iss` must equal it.
    public var issuer: String?
    /// `LIVEHUB_JWT_AUDIENCE` (comma-separated): when set, `aud` (a string or an array) must name one.
    public var audiences: [String]

    public init(leeway: TimeInterval = 30, issuer: String? = nil, audiences: [String] = []) {
        self.leeway = leeway
        self.issuer = issuer
        self.audiences = audiences
    }
}

/// Verifies JSON Web Tokens (RFC 7519) with jwt-kit: the header's `alg` and `kid` pick a key of
/// the `JWTKeySet` (never `alg: none`), jwt-kit parses the token and checks the signature, then the
/// claims are checked here against `policy` (`exp` required). Synchronous: REST handlers and the
/// hub call it inline. The key set can be replaced while running (`reload`, on SIGHUP).
public final class JWTVerifier: Sendable {
    public let policy: JWTPolicy
    private let keys: Mutex<JWTKeySet>
    private static let parser = DefaultJWTParser()

    public init(keys: JWTKeySet, policy: JWTPolicy = JWTPolicy()) {
        self.keys = Mutex(keys)
        self.policy = policy
    }

    /// The keys in use now.
    public var keySet: JWTKeySet { self.keys.withLock { $0 } }

    /// The user a valid token names; a `TokenRefusal` saying why otherwise.
    public func verify(_ token: String, now: Date = Date()) throws(TokenRefusal) -> AuthUser {
        try self.verifyToken(token, now: now).user
    }

    /// The user a valid token names and when the token runs out (WebSockets close then).
    public func verifyToken(_ token: String, now: Date = Date()) throws(TokenRefusal) -> VerifiedToken {
        let bytes = Array(token.utf8)
        let parsed: (header: JWTHeader, payload: TokenClaims, signature: Data)
        do {
            parsed = try Self.parser.parse(bytes, as: TokenClaims.self)
        } catch {
            throw .malformed
        }
        guard let alg = parsed.header.alg, !alg.isEmpty else { throw .malformed }
        if alg.lowercased() == "none" { throw .unsigned }
        if parsed.header.fields["crit"] != nil { throw .criticalHeader }
        let candidates = try self.keySet.candidates(alg: alg, kid: parsed.header.kid)
        // The parse succeeded, so the token has exactly two dots; the signature covers what is before the second.
        guard let end = bytes.lastIndex(of: UInt8(ascii: ".")) else { throw .malformed }
        let signingInput = bytes[..<end]
        guard candidates.contains(where: { (try? $0.verify(parsed.signature, signs: signingInput)) == true }) else {
            throw .badSignature
        }
        return try self.check(parsed.payload, now: now)
    }

    /// RFC 7519 §4.1.4 `exp` (required), §4.1.5 `nbf`, §4.1.1 `iss`, §4.1.3 `aud`, then the user.
    func check(_ claims: TokenClaims, now: Date) throws(TokenRefusal) -> VerifiedToken {
        let nowSeconds = now.timeIntervalSince1970
        guard let expiry = try claims.numericDate("exp") else { throw .missingExpiry }
        guard nowSeconds < expiry + self.policy.leeway else { throw .expired }
        if let notBefore = try claims.numericDate("nbf"), nowSeconds + self.policy.leeway < notBefore {
            throw .notYetValid
        }
        if let issuer = self.policy.issuer, try claims.issuer() != issuer {
            throw .wrongIssuer(expected: issuer)
        }
        if !self.policy.audiences.isEmpty {
            let audiences = try claims.audiences()
            guard audiences.contains(where: self.policy.audiences.contains) else { throw .wrongAudience(expected: self.policy.audiences) }
        }
        return VerifiedToken(user: try claims.user(), expiresAt: Date(timeIntervalSince1970: expiry))
    }

    /// Re-reads `sources` (SIGHUP). A source that fails keeps every current key and logs why;
    /// returns whether the keys were replaced.
    @discardableResult
    public func reload(from sources: JWTKeySources, logger: Logger) async -> Bool {
        do {
            let keys = try await sources.load(logger: logger)
            self.keys.withLock { $0 = keys }
            logger.notice("JWT keys reloaded", metadata: ["algorithms": "\(keys.acceptedAlgorithms.joined(separator: ","))", "jwksKeys": "\(keys.jwksKeyCount)"])
            return true
        } catch {
            logger.error("JWT key reload failed; the previous keys stay in use", metadata: ["reason": "\(error)"])
            return false
        }
    }
}

extension JWTKeySet {
    /// The keys a token with `alg` and `kid` may be signed with: the JWKS key named by `kid` (its
    /// algorithm must match); else the secret or PEM key for `alg`; else, for a token without
    /// `kid`, every JWKS key for `alg`.
    func candidates(alg: String, kid: String?) throws(TokenRefusal) -> [any JWTAlgorithm] {
        if let kid, let named = self.byKeyID[kid] {
            guard let key = named[alg] else { throw .algorithmMismatch(kid: kid, alg: alg) }
            return [key]
        }
        if let key = self.byAlgorithm[alg] { return [key] }
        if kid == nil {
            let any = self.withoutKeyID.compactMap { $0[alg] } + self.byKeyID.values.compactMap { $0[alg] }
            if !any.isEmpty { return any }
        }
        if let kid, self.jwksKeyCount > 0 { throw .unknownKeyID(kid) }
        throw .unsupportedAlgorithm(alg, accepted: self.acceptedAlgorithms)
    }
}
