import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Server

/// SockJS's HTTP routes (`SockJSHTTPRoutes`) through the router: their configuration, CORS (with
/// credentials, an echoed origin, 403 for an origin not allowed) and the `xhr`/`xhr_send` answers.
@Suite("SockJS HTTP routes")
struct SockJSRoutesTests {
    @Test func theSockJSLimitsHaveDefaultsAndAreReadFromTheEnvironment() throws {
        let defaults = LiveHubConfiguration()
        #expect(defaults.sockJSMaxSessions == 10_000 && defaults.sockJSDisconnectDelay == .seconds(5))
        #expect(defaults.sockJSStreamBytes == 131_072 && defaults.sockJSMaxMessageBytes == 409_600)
        let c = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_SOCKJS_MAX_SESSIONS": "3", "LIVEHUB_SOCKJS_DISCONNECT_DELAY": "0.5",
            "LIVEHUB_SOCKJS_STREAM_BYTES": "4096", "LIVEHUB_SOCKJS_MAX_MESSAGE_BYTES": "2048",
        ])
        #expect(c.sockJSMaxSessions == 3 && c.sockJSDisconnectDelay == .milliseconds(500))
        #expect(c.sockJSStreamBytes == 4096 && c.sockJSMaxMessageBytes == 2048)
        for (name, value) in [
            ("LIVEHUB_SOCKJS_MAX_SESSIONS", "0"), ("LIVEHUB_SOCKJS_DISCONNECT_DELAY", "61"), ("LIVEHUB_SOCKJS_DISCONNECT_DELAY", "0"),
            ("LIVEHUB_SOCKJS_STREAM_BYTES", "10"), ("LIVEHUB_SOCKJS_MAX_MESSAGE_BYTES", "99999999999999999999"),
        ] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
    }

    @Test func pollingAndSendingThroughTheRouter() async throws {
        let t = try await TestHub.make { $0.sockJSMaxMessageBytes = 2048 }
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: "/ws/live/000/abc/xhr", method: .post, headers: [.origin: "https://shop.example"]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "o\n")
                #expect(response.headers[.contentType] == "application/javascript; charset=UTF-8")
                #expect(response.headers[.cacheControl] == "no-store, no-cache, must-revalidate, max-age=0")
                #expect(response.headers[.accessControlAllowOrigin] == "https://shop.example")
                #expect(response.headers[.accessControlAllowCredentials] == "true")
                #expect(response.headers[.setCookie] == nil)
            }
            let send = { (body: String) in
                try await client.execute(uri: "/ws/live/000/abc/xhr_send", method: .post, body: ByteBuffer(string: body)) { $0 }
            }
            let accepted = try await send(#"["CONNECT\naccept-version:1.2\n\n\u0000"]"#)
            #expect(accepted.status == .noContent && accepted.body.readableBytes == 0)
            #expect(accepted.headers[.contentType] == "text/plain; charset=UTF-8")
            let broken = try await send(#"["x"#)
            #expect(broken.status == .internalServerError && String(buffer: broken.body) == "Broken JSON encoding.")
            let empty = try await send("")
            #expect(empty.status == .internalServerError && String(buffer: empty.body) == "Payload expected.")
            let large = try await send(#"[""# + String(repeating: "x", count: 3000) + #""]"#)
            #expect(large.status == .contentTooLarge)
            try await client.execute(uri: "/ws/live/000/other/xhr_send", method: .post, body: ByteBuffer(string: #"["x"]"#)) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/ws/live/000/a.b/xhr", method: .post) { response in
                #expect(response.status == .notFound)
            }
            // The router's test channel is not active: a poll held on it is let go within a second,
            // empty; the CONNECTED comes on one of the next.
            var answered = ""
            for _ in 0..<10 where answered.isEmpty {
                try await client.execute(uri: "/ws/live/000/abc/xhr", method: .post) { response in
                    answered = String(buffer: response.body)
                    #expect(response.headers[.accessControlAllowOrigin] == "*")
                }
            }
            #expect(answered.hasPrefix(#"a["CONNECTED\nversion:1.2\n"#))
        }
    }

    @Test func anOriginOutsideTheListIsRefusedAndAListedOneIsEchoed() async throws {
        let t = try await TestHub.make { $0.corsOrigins = ["https://shop.example"] }
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: "/ws/live/000/abc/xhr", method: .post, headers: [.origin: "https://evil.example"]) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/ws/live/000/abc/xhr_send", method: .options, headers: [.origin: "https://evil.example"]) { response in
                #expect(response.status == .forbidden)
            }
            let headers: HTTPFields = [.origin: "https://shop.example", .accessControlRequestHeaders: "content-type"]
            try await client.execute(uri: "/ws/live/000/abc/xhr_streaming", method: .options, headers: headers) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowMethods] == "OPTIONS, POST")
                #expect(response.headers[.accessControlAllowOrigin] == "https://shop.example")
                #expect(response.headers[.accessControlAllowCredentials] == "true")
                #expect(response.headers[.accessControlAllowHeaders] == "content-type")
                #expect(response.headers[.cacheControl] == "public, max-age=31536000")
                #expect(response.headers[.expires] != nil)
            }
            try await client.execute(uri: "/ws/live/info", method: .get, headers: [.origin: "https://shop.example"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.accessControlAllowOrigin] == "https://shop.example")
            }
            // the rest of the API keeps its own CORS policy
            try await client.execute(uri: "/healthz", method: .get, headers: [.origin: "https://evil.example"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
        }
    }
}
