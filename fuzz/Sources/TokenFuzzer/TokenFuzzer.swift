import Crypto
import Dispatch
import Foundation
import FuzzSupport
import JWTKit
import Logging
import Synchronization
@testable import Server

/// Bearer tokens as every client presents them (REST `Authorization`, the WebSocket `token` query
/// parameter, STOMP CONNECT headers, Socket.IO `auth.token`): the JWT verifier and its claim mapping.
///
/// | mode (byte % 2) | what is fed |
/// |---|---|
/// | 0 | any text as a token |
/// | 1 | a token correctly signed with the server's secret whose header and claims are fuzzed JSON — what a compromised or buggy auth service could send — so the claim mapping (`exp`, `nbf`, `userId`/`sub`, `roles`) sees arbitrary values |
///
/// Invariant: a token is either refused with a reason or yields a user with a non-empty id.
///
/// Mode 0's text is also read as the replay timeline's query values (issue 21): its opaque
/// `cursor` (`TimelineCursor`) and its `from`/`to` seconds. Invariants: a cursor that parses is
/// in range and writes back to text that parses to itself; accepted seconds are finite, in 0…10^7.
@_cdecl("TokenFuzzer_main")
public func tokenFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = verifier
    return runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

let secret = "fuzz-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123"

/// The server's verifier with the keys a deployment may have: the shared secret (HS256/384/512)
/// and an EC P-256 public key (ES256) in a PEM file, loaded as at start-up.
let verifier: JWTVerifier = {
    let pem = FileManager.default.temporaryDirectory.appendingPathComponent("livehub-fuzz-es256.pem")
    try! ES256PrivateKey().publicKey.pemRepresentation.write(to: pem, atomically: true, encoding: .utf8)
    let sources = JWTKeySources(secret: secret, publicKeyPath: pem.path)
    let loaded = Mutex<JWTKeySet?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let keys = try await sources.load(logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        loaded.withLock { $0 = keys }
        done.signal()
    }
    done.wait()
    return JWTVerifier(keys: loaded.withLock { $0! }, policy: JWTPolicy(issuer: nil))
}()

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    var input = FuzzInput(Array(bytes.dropFirst()))
    let token: String
    if mode % 2 == 0 {
        token = String(decoding: input.rest(), as: UTF8.self)
    } else {
        let header = input.chunk(maximum: 200)
        let claims = input.rest()
        token = signed(header: header.isEmpty ? Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8) : header, claims: claims)
    }
    if let user = try? verifier.verify(token) {
        fuzzCheck(!user.userId.isEmpty, "a verified token with an empty user id")
    }
    if mode % 2 == 0 { fuzzTimelineQuery(token) }
}

/// `header.claims.signature` with an HS256 signature over exactly these bytes.
func signed(header: [UInt8], claims: [UInt8]) -> String {
    func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
    let input = base64URL(header) + "." + base64URL(claims)
    let signature = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(secret.utf8)))
    return input + "." + base64URL(Array(signature))
}

func fuzzTimelineQuery(_ text: String) {
    if let cursor = try? TimelineCursor(parsing: text) {
        fuzzCheck((0...WallClock.maxMs).contains(cursor.atMs) && cursor.seq >= 0, "a timeline cursor out of range: \(cursor)")
        fuzzCheck((try? TimelineCursor(parsing: cursor.text)) == cursor, "a timeline cursor does not parse back to itself: \(text)")
    }
    if let seconds = try? TimelineController.seconds(text, name: "from") {
        fuzzCheck(seconds.isFinite && seconds >= 0 && seconds <= TimelineReader.maxSeconds, "timeline seconds accepted: \(text)")
    }
}
