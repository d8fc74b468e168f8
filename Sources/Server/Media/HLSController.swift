import HLS
import Hummingbird
import HTTPTypes

/// `GET /hls/{roomId}/{file}`: LL-HLS from memory, under the room id only (never the stream key).
/// The file-name grammar, statuses and cache rules live in `HLSService` (see its URL table).
/// In cluster mode (`proxy` set), a room packaged by another node is fetched from it
/// (`HLSOriginProxy`), unless the request itself came from a node's proxy.
struct HLSController {
    let hls: HLSService
    var proxy: HLSOriginProxy? = nil

    func addRoutes(to router: Router<LiveHubRequestContext>) {
        router.get("hls/:roomId/:file") { request, context -> Response in
            let roomId = try context.parameters.require("roomId")
            let file = try context.parameters.require("file")
            let query = request.uri.queryDictionary
            if let proxy, !hls.hasStream(roomId: roomId), request.headers[HTTPField.Name.liveHubProxied] == nil,
                let answer = await proxy.answer(roomId: roomId, file: file, query: query)
            {
                return Self.response(status: answer.status, headers: answer.headers, body: answer.body)
            }
            let answer = await hls.handle(roomId: roomId, file: file, query: query)
            return Self.response(status: answer.status, headers: answer.headers, body: answer.body)
        }
    }

    private static func response(status: Int, headers pairs: [(String, String)], body: ByteBuffer) -> Response {
        var headers = HTTPFields()
        for (name, value) in pairs {
            if let field = HTTPField.Name(name) { headers.append(HTTPField(name: field, value: value)) }
        }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: body))
    }
}

extension HTTPField.Name {
    /// `X-LiveHub-Proxied`: the request comes from another node's HLS proxy (`HLSOriginProxy`).
    static let liveHubProxied = HTTPField.Name(HLSOriginProxy.proxiedHeader)!
}
