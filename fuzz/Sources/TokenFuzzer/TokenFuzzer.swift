import Crypto
import Foundation
import FuzzSupport
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
@_cdecl("TokenFuzzer_main")
public func tokenFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

let secret = "fuzz-secret-0123456789abcdef0123456789abcdef"
let codec = JWTCodec(secret: secret)

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
    if let user = try? codec.verify(token) {
        fuzzCheck(!user.userId.isEmpty, "a verified token with an empty user id")
    }
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
