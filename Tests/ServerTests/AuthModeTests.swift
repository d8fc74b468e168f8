import Foundation
import Hummingbird
import HummingbirdTesting
import JWTKit
import Testing

@testable import Server

private let base = "/v1/notifications/live"

/// Dev mode only when asked; production start-up needs a key source and the internal token; the
/// dev-token endpoint and loopback trust for `/callback/*` exist only in dev mode (or on request).
@Suite struct AuthModeTests {
    @Test func productionStartUpWithoutAKeySourceStopsNamingTheVariable() async throws {
        let error = await #expect(throws: LiveHubStartupError.self) { try await TestHub.make { $0.jwtSecret = nil } }
        #expect(error?.message.hasPrefix("LIVEHUB_JWT_SECRET is not set") == true)
        #expect(error?.message.contains("LIVEHUB_JWT_JWKS_FILE") == true)
        #expect(error?.message.contains("--dev") == true)
        let noInternal = await #expect(throws: LiveHubStartupError.self) { try await TestHub.make { $0.internalToken = nil } }
        #expect(noInternal?.message.hasPrefix("LIVEHUB_INTERNAL_TOKEN is not set") == true)
    }

    @Test func anUnusableKeyFileStopsStartUpNamingTheVariable() async throws {
        let files = try TestKeys()
        let path = try files.write("{ nope", as: "jwks.json")
        let error = await #expect(throws: LiveHubStartupError.self) { try await TestHub.make { $0.jwtSecret = nil; $0.jwtJWKSPath = path } }
        #expect(error?.message.hasPrefix("LIVEHUB_JWT_JWKS_FILE") == true)
    }

    @Test func configurationReadsTheAuthVariablesAndRefusesBadValues() throws {
        let configuration = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_DEV": "1", "LIVEHUB_JWT_PUBLIC_KEY": "/keys/idp.pem", "LIVEHUB_JWT_JWKS_FILE": "/keys/jwks.json",
            "LIVEHUB_JWT_LEEWAY": "5", "LIVEHUB_JWT_ISSUER": "https://auth.example/realms/shop",
            "LIVEHUB_JWT_AUDIENCE": "livehub, shop-api", "LIVEHUB_CALLBACK_TRUST_LOOPBACK": "true",
        ])
        #expect(configuration.isDevMode)
        #expect(configuration.jwtKeySources == JWTKeySources(publicKeyPath: "/keys/idp.pem", jwksPath: "/keys/jwks.json"))
        #expect(configuration.jwtPolicy == JWTPolicy(leeway: 5, issuer: "https://auth.example/realms/shop", audiences: ["livehub", "shop-api"]))
        #expect(configuration.callbackTrustsLoopback)
        let defaults = try LiveHubConfiguration.fromEnvironment([:])
        #expect(!defaults.isDevMode)
        #expect(defaults.jwtLeeway == 30)
        #expect(!defaults.callbackTrustsLoopback)
        #expect(defaults.startupProblem?.hasPrefix("LIVEHUB_JWT_SECRET") == true)
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_DEV": "0"]).isDevMode == false)
        for (variable, value) in [("LIVEHUB_DEV", "maybe"), ("LIVEHUB_JWT_LEEWAY", "-1"), ("LIVEHUB_JWT_LEEWAY", "3601"), ("LIVEHUB_JWT_LEEWAY", "soon"), ("LIVEHUB_CALLBACK_TRUST_LOOPBACK", "2")] {
            #expect(throws: ConfigurationError.self, "\(variable)=\(value)") { try LiveHubConfiguration.fromEnvironment([variable: value]) }
        }
    }

    @Test func theBannerSaysWhichModeAndWhatTokensMustBe() throws {
        var production = LiveHubConfiguration()
        production.jwtJWKSPath = "/keys/jwks.json"
        production.jwtIssuer = "https://auth.example"
        let summary = StartupBanner.authSummary(configuration: production, acceptedAlgorithms: ["RS256", "PS256"])
        #expect(summary == "production: JWT RS256, PS256 from /keys/jwks.json (SIGHUP re-reads); exp required, leeway 30 s, iss https://auth.example")
        var dev = LiveHubConfiguration()
        dev.isDevMode = true
        #expect(StartupBanner.authSummary(configuration: dev, acceptedAlgorithms: ["HS256"]).hasPrefix("dev mode (--dev / LIVEHUB_DEV=1): JWT HS256"))
    }

    @Test func aTokenWithoutExpOrWithAWrongAudienceIs401WithAClearMessage() async throws {
        let t = try await TestHub.make { $0.jwtAudiences = ["livehub"] }
        let noExp = try await t.signer.sign(TokenClaims(["sub": "owner-1", "roles": ["SHOP_OWNER"], "aud": "livehub"]))
        let wrongAudience = try await t.signer.sign(TestKeys.claims(["sub": "owner-1", "roles": ["SHOP_OWNER"], "aud": "other"]))
        let good = try await t.signer.sign(TestKeys.claims(["sub": "owner-1", "roles": ["SHOP_OWNER"], "aud": ["account", "livehub"]]))
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: "\(base)/rooms/mine", method: .get, headers: bearer(noExp)) { response in
                let message = try expectError(response, .unauthorized, "UNAUTHORIZED")
                #expect(message == "the token has no exp claim (an expiry is required)")
            }
            try await client.execute(uri: "\(base)/rooms/mine", method: .get, headers: bearer(wrongAudience)) { response in
                let message = try expectError(response, .unauthorized, "UNAUTHORIZED")
                #expect(message == "the token is not meant for livehub")
            }
            try await client.execute(uri: "\(base)/rooms/mine", method: .get, headers: bearer(good)) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func theDevTokenEndpointIs404OutsideDevMode() async throws {
        let t = try await TestHub.make()
        #expect(t.hub.devTokenIssuer == nil)
        #expect(try await t.hub.devTokens() == nil)
        try await t.hub.application.test(.live) { client in
            try await client.execute(uri: "/v1/dev/tokens", method: .post, headers: [.contentType: "application/json"], body: json(#"{"role":"SHOP_OWNER"}"#)) { response in
                _ = try expectError(response, .notFound)
            }
        }
    }

    @Test func inDevModeLoopbackCallersGetDevTokensAndMayCallTheCallbacks() async throws {
        let t = try await TestHub.make { $0.jwtSecret = nil; $0.internalToken = nil; $0.isDevMode = true }
        try await t.hub.application.test(.live) { client in
            let token = try await client.execute(uri: "/v1/dev/tokens", method: .post, headers: [.contentType: "application/json"], body: json(#"{"role":"SHOP_OWNER"}"#)) { response in
                #expect(response.status == .ok)
                return try #require(try object(response)["token"] as? String)
            }
            #expect(try t.hub.verifier.verify(token).isShopOwner)
            let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(token), body: json(#"{"title":"dev"}"#)) { try decode(RoomView.self, $0) }
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post) { response in
                #expect(response.status == .ok)
            }
        }
    }

    /// A reverse proxy on the same host makes every request come from loopback: outside dev mode,
    /// loopback alone is not trusted unless LIVEHUB_CALLBACK_TRUST_LOOPBACK asks for it.
    @Test(arguments: [false, true])
    func outsideDevModeLoopbackCallbacksNeedTheInternalTokenUnlessTrusted(trustLoopback: Bool) async throws {
        let t = try await TestHub.make { $0.callbackTrustsLoopback = trustLoopback }
        try await t.hub.application.test(.live) { client in
            let room = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"prod"}"#)) { try decode(RoomView.self, $0) }
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post) { response in
                if trustLoopback {
                    #expect(response.status == .ok)
                } else {
                    _ = try expectError(response, .unauthorized)
                }
            }
            try await client.execute(uri: "\(base)/callback/start?name=\(room.streamKey!)", method: .post, headers: [.authorization: "Bearer \(TestHub.internalToken)"]) { response in
                #expect(response.status == .ok)
            }
        }
    }
}
