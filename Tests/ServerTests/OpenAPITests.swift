import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

/// Issue 17 §6: `/openapi.json` describes the whole REST API and stays in sync with the router.
@Suite struct OpenAPITests {
    /// Routes the document leaves out on purpose (its `info.description` says why): the HLS files
    /// are a file-name grammar for players with plain-text refusals (README "HLS"); SockJS's HTTP
    /// transports are sockjs-protocol's, held and streamed SockJS frames (README "Live-room hub");
    /// `/socket.io` is Engine.IO's long-polling transport, not REST (README "Notification bell").
    static let undocumentedRoutes: Set<String> = [
        "GET /hls/{roomId}/{file}", "GET /socket.io", "POST /socket.io",
        "POST /ws/live/{server}/{session}/xhr", "POST /ws/live/{server}/{session}/xhr_streaming", "POST /ws/live/{server}/{session}/xhr_send",
        "OPTIONS /ws/live/{server}/{session}/xhr", "OPTIONS /ws/live/{server}/{session}/xhr_streaming",
        "OPTIONS /ws/live/{server}/{session}/xhr_send", "OPTIONS /ws/live/info",
    ]

    static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    /// The served document, parsed.
    func document(_ t: TestHub) async throws -> [String: Any] {
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: "/openapi.json", method: .get, headers: [.origin: "https://shop.example"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                #expect(response.headers[.accessControlAllowOrigin] == "*")
                return try object(response)
            }
        }
    }

    /// `METHOD /path` of every operation in the document.
    func operations(_ document: [String: Any]) throws -> [String: [String: Any]] {
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var operations: [String: [String: Any]] = [:]
        for (path, item) in paths {
            for (method, operation) in item where Self.methods.contains(method) {
                operations["\(method.uppercased()) \(path)"] = try #require(operation as? [String: Any])
            }
        }
        return operations
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedOperationIsARoute() async throws {
        let t = try await TestHub.make()
        let document = try await document(t)
        #expect(document["openapi"] as? String == "3.1.0")
        let info = try #require(document["info"] as? [String: Any])
        #expect(info["version"] as? String == LiveHubVersion.string, "info.version follows LiveHub's version")
        let documented = Set(try operations(document).keys)
        let routes = Set(t.hub.routes)
        #expect(routes.count == t.hub.routes.count, "a route is registered twice")
        #expect(routes.count > 25, "the router's routes could not be read")
        let missing = routes.subtracting(documented).subtracting(Self.undocumentedRoutes)
        #expect(missing.isEmpty, "routes missing from Sources/Server/OpenAPI/openapi.json: \(missing.sorted())")
        let stale = documented.subtracting(routes)
        #expect(stale.isEmpty, "operations in openapi.json that the router does not answer: \(stale.sorted())")
        let gone = Self.undocumentedRoutes.subtracting(routes)
        #expect(gone.isEmpty, "undocumentedRoutes names routes that no longer exist: \(gone.sorted())")
    }

    /// Refusals are `{error, message}` everywhere; every operation says who may call it; a path's
    /// parameters are declared; a token-protected operation documents its 401.
    @Test func everyOperationDocumentsItsSecurityParametersAndErrorShape() async throws {
        let t = try await TestHub.make()
        let document = try await document(t)
        let components = try #require(document["components"] as? [String: Any])
        let sharedResponses = try #require(components["responses"] as? [String: [String: Any]])
        let schemes = try #require(components["securitySchemes"] as? [String: Any])
        #expect(Set(schemes.keys) == ["userToken", "internalToken"])
        func resolve(_ response: [String: Any]) throws -> [String: Any] {
            guard let reference = response["$ref"] as? String else { return response }
            let name = try #require(reference.split(separator: "/").last.map(String.init))
            return try #require(sharedResponses[name], "unknown response \(reference)")
        }
        for (name, operation) in try operations(document) {
            let security = try #require(operation["security"] as? [[String: [String]]], "\(name): no security requirement")
            let responses = try #require(operation["responses"] as? [String: [String: Any]])
            #expect(responses.keys.contains { $0.hasPrefix("2") }, "\(name): no success response")
            for (status, raw) in responses where status.hasPrefix("4") || status.hasPrefix("5") {
                guard name != "GET /healthz" || status != "503" else { continue }  // health answers its own shape
                let response = try resolve(raw)
                let content = try #require(response["content"] as? [String: [String: Any]], "\(name) \(status): no content")
                let schema = try #require(content["application/json"]?["schema"] as? [String: Any], "\(name) \(status): not JSON")
                #expect(schema["$ref"] as? String == "#/components/schemas/Error", "\(name) \(status): not the Error schema")
            }
            if security.contains(where: { !$0.isEmpty }) {
                #expect(responses["401"] != nil, "\(name): a token is accepted, so 401 must be documented")
            }
            let path = String(name.split(separator: " ")[1])
            let placeholders = Set(path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) })
            let parameters = (operation["parameters"] as? [[String: Any]]) ?? []
            let declared = Set(parameters.filter { $0["in"] as? String == "path" }.compactMap { $0["name"] as? String })
            #expect(placeholders == declared, "\(name): path parameters \(placeholders.sorted()) declared as \(declared.sorted())")
        }
    }
}
