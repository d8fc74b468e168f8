import Foundation
import Hummingbird
import Logging

/// `GET /openapi.json`: the OpenAPI 3.1 description of the REST API (issue 17 §6), checked in at
/// `Sources/Server/OpenAPI/openapi.json` and embedded as a package resource. `OpenAPITests` keeps
/// it in sync with the router; the e2e suite fuzzes the server from it (schemathesis).
struct OpenAPIController {
    let document: ByteBuffer?

    /// Reads the document from the resource bundle (nil, logged, when it is missing).
    static func loadDocument(logger: Logger) -> ByteBuffer? {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json", subdirectory: "OpenAPI"),
            let data = FileManager.default.contents(atPath: url.path)
        else {
            logger.error("the OpenAPI document is missing from the resource bundle")
            return nil
        }
        return ByteBuffer(bytes: data)
    }

    func addRoutes(to router: Router<LiveHubRequestContext>) {
        router.get("openapi.json") { _, _ -> Response in
            guard let document else { throw APIError.notFound("the OpenAPI document is not available in this build") }
            return Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-cache"],
                body: .init(byteBuffer: document))
        }
    }
}
