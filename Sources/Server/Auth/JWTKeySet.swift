import Foundation
import JWTKit
import Logging

/// The keys a token may be signed with, ready to verify (jwt-kit algorithms), by how a token picks one:
/// - `byAlgorithm`: the shared secret (HS256/384/512) and the PEM public key (RS/PS 256/384/512 for
///   RSA, ES256/384/512 for EC by curve), chosen by the token's `alg`;
/// - `byKeyID`: the JWKS keys, chosen by the token's `kid` (RFC 7515 §4.1.4), then `alg`;
/// - `withoutKeyID`: JWKS keys that have no `kid`, tried for tokens that carry none.
///
/// An HMAC algorithm is only ever keyed by the secret, so a token "signed" HS256 with the bytes of
/// a public key (algorithm confusion) finds no key made from those bytes.
public struct JWTKeySet: Sendable {
    var byAlgorithm: [String: any JWTAlgorithm] = [:]
    var byKeyID: [String: [String: any JWTAlgorithm]] = [:]
    var withoutKeyID: [[String: any JWTAlgorithm]] = []

    public init() {}

    public var isEmpty: Bool { byAlgorithm.isEmpty && byKeyID.isEmpty && withoutKeyID.isEmpty }

    /// Every algorithm some key verifies, sorted (for messages and the start-up banner).
    public var acceptedAlgorithms: [String] {
        var names = Set(byAlgorithm.keys)
        for keys in byKeyID.values { names.formUnion(keys.keys) }
        for keys in withoutKeyID { names.formUnion(keys.keys) }
        return names.sorted()
    }

    /// Number of JWKS keys (with and without `kid`).
    public var jwksKeyCount: Int { byKeyID.count + withoutKeyID.count }
}

/// A key source that cannot be used; start-up stops with this message, a reload keeps the old keys.
public struct JWTKeyError: Error, CustomStringConvertible, Equatable {
    public var variable: String
    public var reason: String
    public var description: String { "\(variable): \(reason)" }
}

/// Where the verification keys come from: `LIVEHUB_JWT_SECRET`, `LIVEHUB_JWT_PUBLIC_KEY` (a PEM
/// file) and `LIVEHUB_JWT_JWKS_FILE` (a JWKS file, RFC 7517 §5). Any combination may be set; each
/// token is checked against the key its header selects (`JWTKeySet`).
public struct JWTKeySources: Sendable, Equatable {
    public var secret: String?
    public var publicKeyPath: String?
    public var jwksPath: String?

    /// A JWKS file above this is refused (a real one is a few KiB).
    public static let maxFileBytes = 1 << 20

    public init(secret: String? = nil, publicKeyPath: String? = nil, jwksPath: String? = nil) {
        self.secret = secret
        self.publicKeyPath = publicKeyPath
        self.jwksPath = jwksPath
    }

    public var isEmpty: Bool { secret == nil && publicKeyPath == nil && jwksPath == nil }
    /// True when SIGHUP has files to re-read.
    public var hasFiles: Bool { publicKeyPath != nil || jwksPath != nil }

    /// Reads every source. Unusable keys inside a JWKS (encryption keys, unknown types) are skipped
    /// and logged; a JWKS with no usable key, an unreadable file or a bad PEM is an error.
    public func load(logger: Logger) async throws(JWTKeyError) -> JWTKeySet {
        var keys = JWTKeySet()
        if let secret {
            let length = secret.utf8.count
            guard length >= Self.minimumSecretBytes else {
                throw JWTKeyError(
                    variable: "LIVEHUB_JWT_SECRET",
                    reason: "the secret is \(length) bytes; HS256 needs at least \(Self.minimumSecretBytes) (RFC 7518 §3.2)")
            }
            keys.byAlgorithm.merge(await Self.hmacAlgorithms(secret: secret)) { $1 }
        }
        if let publicKeyPath {
            let pem = try Self.read(publicKeyPath, variable: "LIVEHUB_JWT_PUBLIC_KEY")
            keys.byAlgorithm.merge(try await Self.pemAlgorithms(pem)) { $1 }
        }
        if let jwksPath {
            let json = try Self.read(jwksPath, variable: "LIVEHUB_JWT_JWKS_FILE")
            let (byKeyID, withoutKeyID) = try await Self.jwksAlgorithms(json, logger: logger)
            keys.byKeyID = byKeyID
            keys.withoutKeyID = withoutKeyID
        }
        return keys
    }

    static func read(_ path: String, variable: String) throws(JWTKeyError) -> Data {
        let url = URL(fileURLWithPath: path)
        let size = (try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0
        guard size <= Self.maxFileBytes else {
            throw JWTKeyError(variable: variable, reason: "\(path) is larger than \(Self.maxFileBytes) bytes")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw JWTKeyError(variable: variable, reason: "cannot read \(path) (\(error.localizedDescription))")
        }
    }

    // MARK: Shared secret

    /// RFC 7518 §3.2: an HMAC key at least as long as the hash output.
    public static let minimumSecretBytes = 32

    /// HS256, HS384 and HS512 with the one secret (RFC 7518 §3.2), each only when the secret is at
    /// least as long as its hash (32, 48, 64 bytes): jwt-kit asserts that (a trap in debug builds,
    /// announced to become one in release builds), and auth services refuse shorter keys anyway.
    static func hmacAlgorithms(secret: String) async -> [String: any JWTAlgorithm] {
        var algorithms: [String: any JWTAlgorithm] = [:]
        let length = secret.utf8.count
        for (name, digest, bytes) in [("HS256", DigestAlgorithm.sha256, 32), ("HS384", .sha384, 48), ("HS512", .sha512, 64)] where length >= bytes {
            let collection = JWTKeyCollection()
            await collection.add(hmac: HMACKey(from: secret), digestAlgorithm: digest)
            algorithms[name] = try? await collection.getKey()
        }
        return algorithms
    }

    // MARK: PEM

    /// An RSA public key or certificate (RS256/384/512 and PS256/384/512, RFC 7518 §3.3 and §3.5),
    /// or an EC one (ES256 for P-256, ES384 for P-384, ES512 for P-521, §3.4).
    static func pemAlgorithms(_ data: Data) async throws(JWTKeyError) -> [String: any JWTAlgorithm] {
        let pem = String(decoding: data, as: UTF8.self)
        func refuse(_ reason: String) -> JWTKeyError { JWTKeyError(variable: "LIVEHUB_JWT_PUBLIC_KEY", reason: reason) }
        if pem.contains("PRIVATE KEY-----") {
            throw refuse("the file holds a private key; give the public key (or certificate) instead")
        }
        let isCertificate = pem.contains("-----BEGIN CERTIFICATE-----")
        var algorithms: [String: any JWTAlgorithm] = [:]
        var rsaError: (any Error)?
        do {
            let key = try isCertificate ? Insecure.RSA.PublicKey(certificatePEM: pem) : Insecure.RSA.PublicKey(pem: pem)
            for (bits, digest) in [("256", DigestAlgorithm.sha256), ("384", .sha384), ("512", .sha512)] {
                let rsa = JWTKeyCollection(), pss = JWTKeyCollection()
                await rsa.add(rsa: key, digestAlgorithm: digest)
                await pss.add(pss: key, digestAlgorithm: digest)
                algorithms["RS" + bits] = try? await rsa.getKey()
                algorithms["PS" + bits] = try? await pss.getKey()
            }
            return algorithms
        } catch {
            rsaError = error
        }
        let collection = JWTKeyCollection()
        if let key = try? (isCertificate ? ES256PublicKey(certificate: pem) : ES256PublicKey(pem: pem)) {
            await collection.add(ecdsa: key)
            algorithms["ES256"] = try? await collection.getKey()
        } else if let key = try? (isCertificate ? ES384PublicKey(certificate: pem) : ES384PublicKey(pem: pem)) {
            await collection.add(ecdsa: key)
            algorithms["ES384"] = try? await collection.getKey()
        } else if let key = try? (isCertificate ? ES512PublicKey(certificate: pem) : ES512PublicKey(pem: pem)) {
            await collection.add(ecdsa: key)
            algorithms["ES512"] = try? await collection.getKey()
        }
        guard algorithms.isEmpty else { return algorithms }
        throw refuse(
            "not a PEM RSA (2048 bits or more) or EC (P-256, P-384, P-521) public key or certificate"
                + (rsaError.map { " (as RSA: \($0))" } ?? ""))
    }

    // MARK: JWKS

    private struct RawKeySet: Decodable {
        var keys: [JWTHeaderField]
    }

    /// Signing keys of a JWKS (RFC 7517 §5). A key with `alg` verifies that algorithm only; one
    /// without verifies every algorithm of its type (RSA: RS/PS 256/384/512; EC: by `crv`; OKP:
    /// EdDSA). Keys with `use: enc`, `alg: RSA-OAEP` or a type jwt-kit does not know (`oct`) are
    /// skipped, with a log line for the unexpected ones.
    static func jwksAlgorithms(_ data: Data, logger: Logger) async throws(JWTKeyError)
        -> (byKeyID: [String: [String: any JWTAlgorithm]], withoutKeyID: [[String: any JWTAlgorithm]])
    {
        func refuse(_ reason: String) -> JWTKeyError { JWTKeyError(variable: "LIVEHUB_JWT_JWKS_FILE", reason: reason) }
        let raw: RawKeySet
        do {
            raw = try JSONDecoder().decode(RawKeySet.self, from: data)
        } catch {
            throw refuse("not a JWKS (a JSON object with a \"keys\" array): \(error)")
        }
        var byKeyID: [String: [String: any JWTAlgorithm]] = [:]
        var withoutKeyID: [[String: any JWTAlgorithm]] = []
        for (index, field) in raw.keys.enumerated() {
            let kid = field.asObject?["kid"]?.asString
            let name = kid.map { "kid \($0)" } ?? "key #\(index)"
            if field.asObject?["use"]?.asString == "enc" { continue }
            let jwk: JWK
            do {
                jwk = try JSONDecoder().decode(JWK.self, from: JSONEncoder().encode(field))
            } catch {
                logger.warning("JWKS: skipped a key jwt-kit cannot read", metadata: ["key": "\(name)", "error": "\(error)"])
                continue
            }
            if jwk.algorithm == .rsaOAEP { continue }
            let algorithms = await Self.algorithms(of: jwk, kid: kid ?? "livehub-jwks-\(index)")
            guard !algorithms.isEmpty else {
                logger.warning("JWKS: skipped a key that verifies no JWS algorithm", metadata: ["key": "\(name)", "kty": "\(jwk.keyType.rawValue)"])
                continue
            }
            if let kid {
                byKeyID[kid, default: [:]].merge(algorithms) { $1 }
            } else {
                withoutKeyID.append(algorithms)
            }
        }
        guard !byKeyID.isEmpty || !withoutKeyID.isEmpty else { throw refuse("the JWKS holds no usable signing key") }
        return (byKeyID, withoutKeyID)
    }

    /// jwt-kit's verifier for `jwk` under each algorithm it may sign with. Each gets a collection of
    /// its own with the algorithm fixed in the key: a JWK without `alg` in a shared collection takes
    /// its algorithm from the first token that names it, and keeps it.
    static func algorithms(of jwk: JWK, kid: String) async -> [String: any JWTAlgorithm] {
        let candidates: [JWK.Algorithm]
        if let algorithm = jwk.algorithm {
            candidates = [algorithm]
        } else {
            switch (jwk.keyType.rawValue, jwk.curve?.rawValue) {
            case ("RSA", _): candidates = [.rs256, .rs384, .rs512, .ps256, .ps384, .ps512]
            case ("EC", "P-256"?): candidates = [.es256]
            case ("EC", "P-384"?): candidates = [.es384]
            case ("EC", "P-521"?): candidates = [.es512]
            case ("OKP", _): candidates = [.eddsa]
            default: candidates = []
            }
        }
        var algorithms: [String: any JWTAlgorithm] = [:]
        for candidate in candidates where candidate != .rsaOAEP {
            var key = jwk
            key.algorithm = candidate
            key.keyIdentifier = JWKIdentifier(string: kid)
            let collection = JWTKeyCollection()
            guard (try? await collection.add(jwk: key)) != nil,
                let algorithm = try? await collection.getKey(for: JWKIdentifier(string: kid), alg: candidate.rawValue)
            else { continue }
            algorithms[candidate.rawValue] = algorithm
        }
        return algorithms
    }
}
