import Foundation
import Hub
import JWTKit
import Logging
import Testing
import _CryptoExtras

@testable import Server

/// Keys and signers made fresh for each test (no key material in the repository).
struct TestKeys {
    /// 64 bytes: long enough for HS512 (RFC 7518 §3.2).
    static let secret = "test-secret-that-is-long-enough-for-hs512-0123456789abcdefghijkl"
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jwt-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func write(_ text: String, as name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    static func rsaKey() throws -> JWTKit.Insecure.RSA.PrivateKey {
        try JWTKit.Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
    }

    /// A JWKS entry for an RSA public key (RFC 7518 §6.3.1).
    static func rsaJWK(_ key: JWTKit.Insecure.RSA.PrivateKey, kid: String, alg: String? = nil, use: String? = nil) throws -> String {
        let (modulus, exponent) = try key.publicKey.getKeyPrimitives()
        var members = [#""kty":"RSA""#, #""kid":"\#(kid)""#, #""n":"\#(TestBase64URL.encode(modulus))""#, #""e":"\#(TestBase64URL.encode(exponent))""#]
        if let alg { members.append(#""alg":"\#(alg)""#) }
        if let use { members.append(#""use":"\#(use)""#) }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// A JWKS entry for a P-256 public key (RFC 7518 §6.2.1).
    static func ecJWK(_ key: ES256PrivateKey, kid: String, alg: String? = "ES256") throws -> String {
        let (x, y) = try #require(key.publicKey.parameters)
        return #"{"kty":"EC","crv":"P-256","kid":"\#(kid)","x":"\#(x)","y":"\#(y)""# + (alg.map { #","alg":"\#($0)""# } ?? "") + "}"
    }

    static func claims(_ extra: [String: JWTHeaderField] = [:], lifetime: TimeInterval = 600) -> TokenClaims {
        var values: [String: JWTHeaderField] = ["sub": "u1", "exp": .int(Int(Date().timeIntervalSince1970 + lifetime))]
        values.merge(extra) { $1 }
        return TokenClaims(values)
    }

    static func sign(_ claims: TokenClaims, with add: (JWTKeyCollection) async throws -> Void, kid: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        try await add(keys)
        return try await keys.sign(claims, kid: kid.map { JWKIdentifier(string: $0) })
    }

    static func hmac(_ claims: TokenClaims, secret: String = secret, digest: DigestAlgorithm = .sha256) async throws -> String {
        try await sign(claims) { await $0.add(hmac: HMACKey(from: secret), digestAlgorithm: digest) }
    }

    static func verifier(_ sources: JWTKeySources, policy: JWTPolicy = JWTPolicy()) async throws -> JWTVerifier {
        JWTVerifier(keys: try await sources.load(logger: Logger(label: "test")), policy: policy)
    }
}

@Suite struct JWTTests {
    let logger = Logger(label: "jwt-tests")

    func secretVerifier(_ policy: JWTPolicy = JWTPolicy()) async throws -> JWTVerifier {
        try await TestKeys.verifier(JWTKeySources(secret: TestKeys.secret), policy: policy)
    }

    // MARK: Shared secret

    @Test(arguments: [DigestAlgorithm.sha256, .sha384, .sha512])
    func hs256_384_512TokensVerifyWithTheOneSecret(digest: DigestAlgorithm) async throws {
        let verifier = try await secretVerifier()
        let user = AuthUser(userId: "u1", username: "Ann", avatarUrl: "https://x/a.png", roles: ["SHOP_OWNER"])
        let now = Date()
        let token = try await TestKeys.hmac(TokenClaims(user: user, issuedAt: now, expiresAt: now.addingTimeInterval(60)), digest: digest)
        let verified = try verifier.verifyToken(token)
        #expect(verified.user.userId == "u1" && verified.user.username == "Ann" && verified.user.avatarUrl == "https://x/a.png")
        #expect(verified.user.isShopOwner)
        #expect(Int(verified.expiresAt.timeIntervalSince1970) == TokenClaims.seconds(now.addingTimeInterval(60)))
    }

    @Test func aSecretShorterThanTheHashIsNotUsedForThatHash() async throws {
        let short = await #expect(throws: JWTKeyError.self) { try await JWTKeySources(secret: "too-short").load(logger: logger) }
        #expect(short?.description == "LIVEHUB_JWT_SECRET: the secret is 9 bytes; HS256 needs at least 32 (RFC 7518 §3.2)")
        let forty = String(repeating: "k", count: 40)
        let verifier = try await TestKeys.verifier(JWTKeySources(secret: forty))
        #expect(verifier.keySet.acceptedAlgorithms == ["HS256"])
        #expect(try verifier.verify(try await TestKeys.hmac(TestKeys.claims(), secret: forty)).userId == "u1")
        let hs384 = try await TestKeys.hmac(TestKeys.claims(), secret: TestKeys.secret, digest: .sha384)
        #expect(throws: TokenRefusal.unsupportedAlgorithm("HS384", accepted: ["HS256"])) { try verifier.verify(hs384) }
    }

    @Test func theDevSignerMakesTokensTheVerifierAccepts() async throws {
        let token = try await DevTokenIssuer(secret: TestKeys.secret).sign(AuthUser(userId: "d", username: "Dev", roles: ["USER"]), lifetime: 60)
        #expect(try await secretVerifier().verify(token).userId == "d")
    }

    @Test func aTokenSignedWithAnotherSecretOrTamperedIsRefused() async throws {
        let verifier = try await secretVerifier()
        let other = try await TestKeys.hmac(TestKeys.claims(), secret: "another-secret-another-secret-another-secret-another-secret-0123")
        #expect(throws: TokenRefusal.badSignature) { try verifier.verify(other) }
        let token = try await TestKeys.hmac(TestKeys.claims())
        let parts = token.split(separator: ".")
        let forged = TestBase64URL.encode(#"{"sub":"admin","roles":["SHOP_OWNER"],"exp":9999999999}"#)
        #expect(throws: TokenRefusal.badSignature) { try verifier.verify("\(parts[0]).\(forged).\(parts[2])") }
    }

    // MARK: Claim mapping

    @Test func subStandsInForUserIdAndUsername() async throws {
        let user = try await secretVerifier().verify(try await TestKeys.hmac(TestKeys.claims(["sub": "42"])))
        #expect(user.userId == "42" && user.username == "42" && user.roles.isEmpty)
    }

    @Test func numericUserIdsAreAcceptedAsText() async throws {
        let verifier = try await secretVerifier()
        #expect(try verifier.verify(try await TestKeys.hmac(TestKeys.claims(["userId": 7]))).userId == "7")
        #expect(try verifier.verify(try await TestKeys.hmac(TestKeys.claims(["userId": .decimal(1e300)]))).userId == "1e+300")
    }

    @Test func rolesComeAsAnArrayACommaStringARoleOrKeycloakRealmAccess() async throws {
        let verifier = try await secretVerifier()
        func roles(_ extra: [String: JWTHeaderField]) async throws -> [String] {
            try verifier.verify(try await TestKeys.hmac(TestKeys.claims(extra))).roles
        }
        #expect(try await roles(["roles": ["USER", "SHOP_OWNER"]]) == ["USER", "SHOP_OWNER"])
        #expect(try await roles(["roles": "USER, ROLE_SHOP_OWNER"]) == ["USER", "ROLE_SHOP_OWNER"])
        #expect(try await roles(["role": "SHOP_OWNER"]) == ["SHOP_OWNER"])
        #expect(try await roles(["realm_access": ["roles": ["offline_access", "SHOP_OWNER"]]]) == ["offline_access", "SHOP_OWNER"])
        #expect(try await roles(["roles": ["USER"], "realm_access": ["roles": ["USER", "SHOP_OWNER"]]]) == ["USER", "SHOP_OWNER"])
        #expect(try await roles(["roles": 5]) == [])
    }

    @Test func keycloakPreferredUsernameAndOIDCPictureAreUsed() async throws {
        let user = try await secretVerifier().verify(
            try await TestKeys.hmac(TestKeys.claims(["sub": "f3c1-uuid", "preferred_username": "ann", "picture": "https://x/p.png"])))
        #expect(user.userId == "f3c1-uuid" && user.username == "ann" && user.avatarUrl == "https://x/p.png")
    }

    @Test func aTokenNamingNoUserIsRefused() async throws {
        let token = try await TestKeys.hmac(TokenClaims(["exp": .int(Int(Date().timeIntervalSince1970) + 60)]))
        await #expect(throws: TokenRefusal.missingSubject) { try await secretVerifier().verify(token) }
    }

    // MARK: Registered claims

    @Test func expIsRequired() async throws {
        let token = try await TestKeys.hmac(TokenClaims(["sub": "u1"]))
        let refusal = await #expect(throws: TokenRefusal.missingExpiry) { try await secretVerifier().verify(token) }
        #expect(refusal?.description == "the token has no exp claim (an expiry is required)")
    }

    @Test(arguments: [JWTHeaderField.string("9999999999"), .bool(true), .array([1]), .object(["a": 1])])
    func expOfTheWrongTypeIsRefusedClearly(exp: JWTHeaderField) async throws {
        let token = try await TestKeys.hmac(TokenClaims(["sub": "u1", "exp": exp]))
        await #expect(throws: TokenRefusal.badClaim("exp", expected: "a number of seconds since 1970")) { try await secretVerifier().verify(token) }
    }

    @Test func aHugeExpIsAcceptedAndItsHubDeadlineIsClamped() async throws {
        let token = try await TestKeys.hmac(TokenClaims(["sub": "u1", "exp": .decimal(1e300)]))
        let expiresAt = try await secretVerifier().verifyToken(token).expiresAt
        let deadline = TokenDeadline.hubTime(expiresAt: expiresAt, leeway: 30, now: Date(), hubNow: .seconds(5))
        #expect(deadline == .seconds(5) + .milliseconds(Int64(TokenDeadline.maxLifetime * 1000)))
        #expect(TokenDeadline.hubTime(expiresAt: Date(timeIntervalSince1970: -1e300), leeway: 0, now: Date(), hubNow: .seconds(5)) == .seconds(5))
    }

    @Test func aNumberTooLargeForJSONDecodingIsMalformedNotATrap() async throws {
        // 1e400 is not a Double: JSONDecoder refuses it, and so does the token.
        let header = TestBase64URL.encode(#"{"alg":"HS256","typ":"JWT"}"#)
        let payload = TestBase64URL.encode(#"{"sub":"u1","exp":1e400}"#)
        await #expect(throws: TokenRefusal.malformed) { try await secretVerifier().verify("\(header).\(payload).c2ln") }
    }

    @Test func expiryHonoursTheLeeway() async throws {
        let token = try await TestKeys.hmac(TestKeys.claims(lifetime: -10))
        #expect(try await secretVerifier(JWTPolicy(leeway: 30)).verify(token).userId == "u1")
        await #expect(throws: TokenRefusal.expired) { try await secretVerifier(JWTPolicy(leeway: 5)).verify(token) }
        let later = try await TestKeys.hmac(TestKeys.claims(lifetime: 60))
        await #expect(throws: TokenRefusal.expired) { try await secretVerifier(JWTPolicy(leeway: 0)).verify(later, now: Date().addingTimeInterval(61)) }
    }

    @Test func aTokenNotYetValidIsRefused() async throws {
        let token = try await TestKeys.hmac(TestKeys.claims(["nbf": .int(Int(Date().timeIntervalSince1970) + 600)]))
        await #expect(throws: TokenRefusal.notYetValid) { try await secretVerifier().verify(token) }
    }

    @Test func issuerAndAudienceAreCheckedWhenConfigured() async throws {
        let policy = JWTPolicy(issuer: "https://auth.example/realms/shop", audiences: ["livehub", "shop-api"])
        let verifier = try await secretVerifier(policy)
        let good = try await TestKeys.hmac(TestKeys.claims(["iss": "https://auth.example/realms/shop", "aud": ["account", "livehub"]]))
        #expect(try verifier.verify(good).userId == "u1")
        let single = try await TestKeys.hmac(TestKeys.claims(["iss": "https://auth.example/realms/shop", "aud": "shop-api"]))
        #expect(try verifier.verify(single).userId == "u1")
        let wrongIssuer = try await TestKeys.hmac(TestKeys.claims(["iss": "https://evil.example", "aud": "livehub"]))
        #expect(throws: TokenRefusal.wrongIssuer(expected: policy.issuer!)) { try verifier.verify(wrongIssuer) }
        let noIssuer = try await TestKeys.hmac(TestKeys.claims(["aud": "livehub"]))
        #expect(throws: TokenRefusal.wrongIssuer(expected: policy.issuer!)) { try verifier.verify(noIssuer) }
        let wrongAudience = try await TestKeys.hmac(TestKeys.claims(["iss": "https://auth.example/realms/shop", "aud": ["account"]]))
        #expect(throws: TokenRefusal.wrongAudience(expected: policy.audiences)) { try verifier.verify(wrongAudience) }
        let noAudience = try await TestKeys.hmac(TestKeys.claims(["iss": "https://auth.example/realms/shop"]))
        #expect(throws: TokenRefusal.wrongAudience(expected: policy.audiences)) { try verifier.verify(noAudience) }
        let badAudience = try await TestKeys.hmac(TestKeys.claims(["iss": "https://auth.example/realms/shop", "aud": 5]))
        #expect(throws: TokenRefusal.badClaim("aud", expected: "a string or an array of strings")) { try verifier.verify(badAudience) }
        // Without a policy, iss and aud are not looked at.
        #expect(try await secretVerifier().verify(wrongIssuer).userId == "u1")
    }

    // MARK: Algorithms

    @Test(arguments: ["none", "None", "NONE"])
    func algNoneIsRefused(alg: String) async throws {
        let header = TestBase64URL.encode(#"{"alg":"\#(alg)","typ":"JWT"}"#)
        let payload = TestBase64URL.encode(#"{"sub":"u1","exp":9999999999}"#)
        await #expect(throws: TokenRefusal.unsigned) { try await secretVerifier().verify("\(header).\(payload).") }
    }

    @Test func aCritHeaderIsRefused() async throws {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: TestKeys.secret), digestAlgorithm: .sha256)
        let token = try await keys.sign(TestKeys.claims(), header: JWTHeader(fields: ["crit": .array([.string("b64")]), "b64": .bool(false)]))
        await #expect(throws: TokenRefusal.criticalHeader) { try await secretVerifier().verify(token) }
    }

    @Test(arguments: ["", "abc", "a.b", "a.b.c.d", "!!.??.**", "eyJhbGciOiJIUzI1NiJ9.e30", "e30.e30.e30", "W10.W10.W10"])
    func garbageIsMalformed(token: String) async throws {
        let verifier = try await secretVerifier()
        #expect(throws: TokenRefusal.self) { try verifier.verify(token) }
    }

    @Test func rs256AndPS256TokensVerifyWithAPEMPublicKey() async throws {
        let files = try TestKeys()
        let key = try TestKeys.rsaKey()
        let path = try files.write(key.publicKey.pemRepresentation, as: "rsa.pem")
        let verifier = try await TestKeys.verifier(JWTKeySources(publicKeyPath: path))
        #expect(verifier.keySet.acceptedAlgorithms == ["PS256", "PS384", "PS512", "RS256", "RS384", "RS512"])
        for digest in [DigestAlgorithm.sha256, .sha512] {
            let rs = try await TestKeys.sign(TestKeys.claims()) { await $0.add(rsa: key, digestAlgorithm: digest) }
            let ps = try await TestKeys.sign(TestKeys.claims()) { await $0.add(pss: key, digestAlgorithm: digest) }
            #expect(try verifier.verify(rs).userId == "u1")
            #expect(try verifier.verify(ps).userId == "u1")
        }
        let otherKey = try TestKeys.rsaKey()
        let forged = try await TestKeys.sign(TestKeys.claims()) { await $0.add(rsa: otherKey, digestAlgorithm: .sha256) }
        #expect(throws: TokenRefusal.badSignature) { try verifier.verify(forged) }
        // Only the secret verifies HMAC tokens: none is configured here.
        await #expect(throws: TokenRefusal.self) { try verifier.verify(try await TestKeys.hmac(TestKeys.claims())) }
    }

    @Test func es256TokensVerifyWithAPEMPublicKey() async throws {
        let files = try TestKeys()
        let key = ES256PrivateKey()
        let path = try files.write(key.publicKey.pemRepresentation, as: "ec.pem")
        let verifier = try await TestKeys.verifier(JWTKeySources(publicKeyPath: path))
        #expect(verifier.keySet.acceptedAlgorithms == ["ES256"])
        let token = try await TestKeys.sign(TestKeys.claims()) { await $0.add(ecdsa: key) }
        #expect(try verifier.verify(token).userId == "u1")
        let other = try await TestKeys.sign(TestKeys.claims()) { await $0.add(ecdsa: ES256PrivateKey()) }
        #expect(throws: TokenRefusal.badSignature) { try verifier.verify(other) }
        let rsa = try await TestKeys.sign(TestKeys.claims()) { await $0.add(rsa: try TestKeys.rsaKey(), digestAlgorithm: .sha256) }
        #expect(throws: TokenRefusal.unsupportedAlgorithm("RS256", accepted: ["ES256"])) { try verifier.verify(rsa) }
    }

    @Test func algorithmConfusionWithThePublicKeyAsHMACSecretIsRefused() async throws {
        let files = try TestKeys()
        let pem = try TestKeys.rsaKey().publicKey.pemRepresentation
        let path = try files.write(pem, as: "rsa.pem")
        let confused = try await TestKeys.hmac(TestKeys.claims(), secret: pem)
        let pemOnly = try await TestKeys.verifier(JWTKeySources(publicKeyPath: path))
        let refusal = #expect(throws: TokenRefusal.self) { try pemOnly.verify(confused) }
        #expect(refusal == .unsupportedAlgorithm("HS256", accepted: pemOnly.keySet.acceptedAlgorithms))
        let both = try await TestKeys.verifier(JWTKeySources(secret: TestKeys.secret, publicKeyPath: path))
        #expect(throws: TokenRefusal.badSignature) { try both.verify(confused) }
        #expect(try both.verify(try await TestKeys.hmac(TestKeys.claims())).userId == "u1")
    }

    @Test func unusablePEMFilesStopWithAClearMessage() async throws {
        let files = try TestKeys()
        let privatePath = try files.write(try TestKeys.rsaKey().pemRepresentation, as: "private.pem")
        let privateError = await #expect(throws: JWTKeyError.self) { try await JWTKeySources(publicKeyPath: privatePath).load(logger: logger) }
        #expect(privateError?.description.contains("LIVEHUB_JWT_PUBLIC_KEY") == true)
        #expect(privateError?.description.contains("private key") == true)
        let garbage = try files.write("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", as: "garbage.pem")
        await #expect(throws: JWTKeyError.self) { try await JWTKeySources(publicKeyPath: garbage).load(logger: logger) }
        let missing = await #expect(throws: JWTKeyError.self) { try await JWTKeySources(publicKeyPath: "/nonexistent/key.pem").load(logger: logger) }
        #expect(missing?.description.contains("cannot read /nonexistent/key.pem") == true)
    }

    // MARK: JWKS

    @Test func jwksKeysAreChosenByKid() async throws {
        let files = try TestKeys()
        let rsa = try TestKeys.rsaKey(), ec = ES256PrivateKey()
        let encryption = try TestKeys.rsaKey()
        let jwks = #"{"keys":[\#(try TestKeys.rsaJWK(rsa, kid: "rsa-1")),\#(try TestKeys.ecJWK(ec, kid: "ec-1")),\#(try TestKeys.rsaJWK(encryption, kid: "enc-1", alg: "RSA-OAEP", use: "enc")),{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#
        let path = try files.write(jwks, as: "jwks.json")
        let verifier = try await TestKeys.verifier(JWTKeySources(jwksPath: path))
        #expect(verifier.keySet.jwksKeyCount == 2)
        // An RSA key without alg verifies RS* and PS* (Spring Authorization Server publishes such keys).
        let rs = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rsa-1") }, kid: "rsa-1")
        let ps = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(pss: rsa, digestAlgorithm: .sha256, kid: "rsa-1") }, kid: "rsa-1")
        let es = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(ecdsa: ec, kid: "ec-1") }, kid: "ec-1")
        #expect(try verifier.verify(rs).userId == "u1")
        #expect(try verifier.verify(ps).userId == "u1")
        #expect(try verifier.verify(rs).userId == "u1")  // PS256 first did not pin the key to PS256
        #expect(try verifier.verify(es).userId == "u1")
        let unknown = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rsa-2") }, kid: "rsa-2")
        #expect(throws: TokenRefusal.unknownKeyID("rsa-2")) { try verifier.verify(unknown) }
        let mismatch = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(rsa: rsa, digestAlgorithm: .sha256, kid: "ec-1") }, kid: "ec-1")
        #expect(throws: TokenRefusal.algorithmMismatch(kid: "ec-1", alg: "RS256")) { try verifier.verify(mismatch) }
        let viaEncryptionKey = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(rsa: encryption, digestAlgorithm: .sha256, kid: "enc-1") }, kid: "enc-1")
        #expect(throws: TokenRefusal.unknownKeyID("enc-1")) { try verifier.verify(viaEncryptionKey) }
        // A token without kid is tried against the JWKS keys of its algorithm.
        let noKid = try await TestKeys.sign(TestKeys.claims()) { await $0.add(rsa: rsa, digestAlgorithm: .sha256) }
        #expect(try verifier.verify(noKid).userId == "u1")
    }

    @Test func aJWKSKeyWithAlgVerifiesThatAlgorithmOnly() async throws {
        let files = try TestKeys()
        let rsa = try TestKeys.rsaKey()
        let path = try files.write(#"{"keys":[\#(try TestKeys.rsaJWK(rsa, kid: "k", alg: "RS256"))]}"#, as: "jwks.json")
        let verifier = try await TestKeys.verifier(JWTKeySources(jwksPath: path))
        let rs = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(rsa: rsa, digestAlgorithm: .sha256, kid: "k") }, kid: "k")
        let ps = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(pss: rsa, digestAlgorithm: .sha256, kid: "k") }, kid: "k")
        #expect(try verifier.verify(rs).userId == "u1")
        #expect(throws: TokenRefusal.algorithmMismatch(kid: "k", alg: "PS256")) { try verifier.verify(ps) }
    }

    @Test func aJWKSWithoutUsableKeysIsRefused() async throws {
        let files = try TestKeys()
        for (name, text) in [("empty", #"{"keys":[]}"#), ("oct", #"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#), ("json", "{"), ("shape", #"{"keys":5}"#)] {
            let path = try files.write(text, as: "\(name).json")
            let error = await #expect(throws: JWTKeyError.self, "\(name)") { try await JWTKeySources(jwksPath: path).load(logger: logger) }
            #expect(error?.variable == "LIVEHUB_JWT_JWKS_FILE")
        }
    }

    @Test func reloadingTheJWKSAcceptsANewKidAndKeepsTheOldKeysOnABadFile() async throws {
        let files = try TestKeys()
        let first = try TestKeys.rsaKey(), second = try TestKeys.rsaKey()
        let path = try files.write(#"{"keys":[\#(try TestKeys.rsaJWK(first, kid: "2026-01"))]}"#, as: "jwks.json")
        let sources = JWTKeySources(secret: TestKeys.secret, jwksPath: path)
        let verifier = try await TestKeys.verifier(sources)
        let old = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(rsa: first, digestAlgorithm: .sha256, kid: "2026-01") }, kid: "2026-01")
        let new = try await TestKeys.sign(TestKeys.claims(), with: { await $0.add(rsa: second, digestAlgorithm: .sha256, kid: "2026-02") }, kid: "2026-02")
        #expect(try verifier.verify(old).userId == "u1")
        #expect(throws: TokenRefusal.unknownKeyID("2026-02")) { try verifier.verify(new) }

        _ = try files.write(#"{"keys":[\#(try TestKeys.rsaJWK(first, kid: "2026-01")),\#(try TestKeys.rsaJWK(second, kid: "2026-02"))]}"#, as: "jwks.json")
        #expect(await verifier.reload(from: sources, logger: logger))
        #expect(try verifier.verify(new).userId == "u1")
        #expect(try verifier.verify(old).userId == "u1")

        _ = try files.write("{ not json", as: "jwks.json")
        #expect(await verifier.reload(from: sources, logger: logger) == false)
        #expect(try verifier.verify(new).userId == "u1")
        #expect(try verifier.verify(try await TestKeys.hmac(TestKeys.claims())).userId == "u1")
    }

    // MARK: Hub identities

    @Test func aWebSocketIdentityExpiresOnTheHubClockAfterTheLeeway() async throws {
        let clock = ManualHubClock(.seconds(100))
        let verifier = try await secretVerifier(JWTPolicy(leeway: 2))
        let authenticator = JWTHubAuthenticator(verifier: verifier, clock: clock.clock)
        let token = try await TestKeys.hmac(TestKeys.claims(lifetime: 10))
        guard case .identity(let identity) = await authenticator.authenticate(token: token) else {
            Issue.record("token refused")
            return
        }
        let expiresAt = try #require(identity.expiresAt)
        // exp is a whole second: 9-10 s left, plus 2 s of leeway.
        #expect(expiresAt > .seconds(110) && expiresAt <= .seconds(112) + .milliseconds(50))
        let expired = try await TestKeys.hmac(TestKeys.claims(lifetime: -10))
        #expect(await authenticator.authenticate(token: expired) == .invalid(reason: "the token has expired"))
    }
}
