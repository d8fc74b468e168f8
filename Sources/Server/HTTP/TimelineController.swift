import Foundation
import Hummingbird

/// `GET /v1/notifications/live/rooms/{id}/timeline?from=&to=&limit=&cursor=` (issue 21 §3;
/// contract §2): public, like `…/chats`. Every number is checked where it enters: `from`/`to`
/// finite seconds in 0…10^7 with from ≤ to, `limit` 1…1000, `cursor` as `TimelineCursor` parses
/// it; anything else is 400 `BAD_REQUEST`.
struct TimelineController {
    let reader: TimelineReader

    func addRoutes(to group: RouterGroup<LiveHubRequestContext>) {
        group.get("rooms/:id/timeline", use: timeline)
    }

    @Sendable func timeline(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let from = try Self.seconds(query["from"].map(String.init), name: "from")
        let to = try Self.seconds(query["to"].map(String.init), name: "to")
        if let from, let to, from > to { throw APIError.badRequest("from must not be after to") }
        let limit = try RoomController.integer(
            query["limit"].map(String.init), name: "limit", default: TimelineReader.defaultLimit, range: TimelineReader.limits)
        var cursor: TimelineCursor?
        if let raw = query["cursor"].map(String.init), !raw.isEmpty {
            cursor = try TimelineCursor(parsing: raw)
        }
        let page = try await reader.page(
            roomId: try context.parameters.require("id"), .init(from: from, to: to, limit: limit, cursor: cursor))
        return try JSONBody.response(page)
    }

    /// Seconds into the show: absent or empty → nil; else a finite number in 0…10^7.
    static func seconds(_ raw: String?, name: String) throws -> Double? {
        guard let raw, !raw.isEmpty else { return nil }
        guard raw.utf8.count <= 32, let value = Double(raw), value.isFinite, value >= 0, value <= TimelineReader.maxSeconds else {
            throw APIError.badRequest("\(name) must be a number of seconds in 0...10000000")
        }
        return value
    }
}
