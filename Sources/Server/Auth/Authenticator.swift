import Foundation
import Hummingbird
import Logging

/// Reads `Authorization: Bearer …` (REST) and turns tokens into users or 401s.
public struct Authenticator: Sendable {
    public let verifier: JWTVerifier
    /// Bearer token for internal calls (orders, notifications, nginx-rtmp callbacks).
    public let internalToken: String
    /// Loopback callers count as internal for `/callback/*` (dev mode, or
    /// `LIVEHUB_CALLBACK_TRUST_LOOPBACK=1`). Off by default: behind a reverse proxy on the same
    /// host every request comes from loopback.
    public let trustsLoopbackCallbacks: Bool

    public init(verifier: JWTVerifier, internalToken: String, trustsLoopbackCallbacks: Bool = false) {
        self.verifier = verifier
        self.internalToken = internalToken
        self.trustsLoopbackCallbacks = trustsLoopbackCallbacks
    }

    static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// The signed-in user; 401 when the token is missing, malformed, forged or expired.
    public func requireUser(_ request: Request, context: LiveHubRequestContext) throws -> AuthUser {
        guard let user = try optionalUser(request, context: context) else {
            throw APIError.unauthorized("sign in: an Authorization: Bearer <JWT> header is required")
        }
        return user
    }

    /// The user when a token is present (a present but bad token is still a 401); nil for guests.
    public func optionalUser(_ request: Request, context: LiveHubRequestContext) throws -> AuthUser? {
        if request.headers[.authorization] != nil && Self.bearerToken(request) == nil {
            throw APIError.unauthorized("the Authorization header must be 'Bearer <JWT>'")
        }
        guard let token = Self.bearerToken(request) else { return nil }
        do {
            return try verifier.verify(token)
        } catch {
            context.logger.info("refused token", metadata: ["reason": "\(error)"])
            throw APIError.unauthorized(error.description)
        }
    }

    /// A `SHOP_OWNER`; 403 for any other signed-in user.
    public func requireShopOwner(_ request: Request, context: LiveHubRequestContext) throws -> AuthUser {
        let user = try requireUser(request, context: context)
        guard user.isShopOwner else { throw APIError.forbidden("only a SHOP_OWNER may do this") }
        return user
    }

    /// nginx-rtmp callbacks: the internal token, or a loopback caller when `trustsLoopbackCallbacks`.
    public func requireCallbackCaller(_ request: Request, context: LiveHubRequestContext) throws {
        if trustsLoopbackCallbacks && context.isLoopbackPeer { return }
        try requireInternal(request)
    }

    /// The internal service token (constant-time comparison).
    public func requireInternal(_ request: Request) throws {
        guard let token = Self.bearerToken(request) else {
            throw APIError.unauthorized("an internal service token is required")
        }
        guard Self.constantTimeEquals(token, internalToken) else {
            throw APIError.forbidden("the internal service token is wrong")
        }
    }

    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<min(x.count, y.count) { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}
