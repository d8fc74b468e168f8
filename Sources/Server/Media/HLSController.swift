import HLS
import Hummingbird
import HTTPTypes

/// `GET /hls/{roomId}/{file}`: LL-HLS from memory, under the room id only (never the stream key).
/// The file-name grammar, statuses and cache rules live in `HLSService` (see its URL table).
struct HLSController {
    let hls: HLSService

    func addRoutes(to router: Router<LiveHubRequestContext>) {
        router.get("hls/:roomId/:file") { request, context -> Response in
            let roomId = try context.parameters.require("roomId")
            let file = try context.parameters.require("file")
            let answer = await hls.handle(roomId: roomId, file: file, query: request.uri.queryDictionary)
            var headers = HTTPFields()
            for (name, value) in answer.headers {
                if let field = HTTPField.Name(name) { headers[field] = value }
            }
            return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: answer.body))
        }
    }
}
