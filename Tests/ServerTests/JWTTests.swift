import Foundation
import Testing

@testable import Server

@Suite struct JWTTests {
    let codec = JWTCodec(secret: "test-secret-that-is-long-enough-0123456789")

    @Test func aSignedTokenVerifiesWithItsClaims() throws {
        let token = codec.sign(AuthUser(userId: "u1", username: "Ann", avatarUrl: "https://x/a.png", roles: ["SHOP_OWNER"]), lifetime: 60)
        let user = try codec.verify(token)
        #expect(user == AuthUser(userId: "u1", username: "Ann", avatarUrl: "https://x/a.png", roles: ["SHOP_OWNER"]))
        #expect(user.isShopOwner)
    }

    @Test func subIsUsedWhenUserIdAndUsernameAreAbsent() throws {
        let token = codec.sign(claims: ["sub": "42", "exp": Int(Date().timeIntervalSince1970) + 60])
        let user = try codec.verify(token)
        #expect(user.userId == "42")
        #expect(user.username == "42")
        #expect(user.roles.isEmpty)
    }

    @Test func numericUserIdsAreAccepted() throws {
        let token = codec.sign(claims: ["userId": 7, "username": "seven", "exp": Int(Date().timeIntervalSince1970) + 60])
        #expect(try codec.verify(token).userId == "7")
    }

    @Test func anExpiredTokenIsRefused() {
        let token = codec.sign(AuthUser(userId: "u1", username: "Ann"), lifetime: -1)
        #expect(throws: JWTError.expired) { try codec.verify(token) }
    }

    @Test func aTokenSignedWithAnotherSecretIsRefused() {
        let token = JWTCodec(secret: "another-secret").sign(AuthUser(userId: "u1", username: "Ann"), lifetime: 60)
        #expect(throws: JWTError.badSignature) { try codec.verify(token) }
    }

    @Test func algNoneIsRefused() {
        let header = Base64URL.encode(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
        let payload = Base64URL.encode(Data(#"{"sub":"u1","exp":9999999999}"#.utf8))
        #expect(throws: JWTError.unsupportedAlgorithm("none")) { try codec.verify("\(header).\(payload).") }
    }

    @Test func aTamperedPayloadIsRefused() {
        let token = codec.sign(AuthUser(userId: "u1", username: "Ann"), lifetime: 60)
        let parts = token.split(separator: ".")
        let forged = Base64URL.encode(Data(#"{"sub":"admin","roles":["SHOP_OWNER"],"exp":9999999999}"#.utf8))
        #expect(throws: JWTError.badSignature) { try codec.verify("\(parts[0]).\(forged).\(parts[2])") }
    }

    @Test(arguments: ["", "abc", "a.b", "a.b.c.d", "!!.??.**", "eyJhbGciOiJIUzI1NiJ9.e30"])
    func garbageIsMalformed(token: String) {
        #expect(throws: JWTError.self) { try codec.verify(token) }
    }
}
