import Foundation
import HTTPTypes
import Hummingbird

/// The caller's bell under `/v1/notifications` and the internal create endpoint
/// `POST /internal/notifications` (DESIGN.md "REST").
struct NotificationController {
    let notifications: NotificationService
    let auth: Authenticator
    let maxBodyBytes: Int

    func addRoutes(to router: Router<LiveHubRequestContext>) {
        let bell = router.group("v1/notifications")
        bell.get("", use: list)
        bell.get("unread-count", use: unreadCount)
        bell.post("read-all", use: readAll)
        bell.post(":id/read", use: read)
        router.post("internal/notifications", use: create)
    }

    @Sendable func list(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let query = request.uri.queryParameters
        let limit = try RoomController.integer(query["limit"].map(String.init), name: "limit", default: 20, range: 1...100)
        let cursor = query["cursor"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        return try JSONBody.response(try await notifications.list(userId: user.userId, limit: limit, cursor: cursor))
    }

    @Sendable func unreadCount(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        return try JSONBody.response(["count": try await notifications.unreadCount(userId: user.userId)])
    }

    @Sendable func read(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let key = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let key, key.count > 200 { throw APIError.badRequest("Idempotency-Key is longer than 200 characters") }
        let outcome = try await notifications.markRead(id: try context.parameters.require("id"), userId: user.userId, idempotencyKey: key)
        return try JSONBody.response(outcome)
    }

    @Sendable func readAll(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        return try JSONBody.response(try await notifications.markAllRead(userId: user.userId))
    }

    @Sendable func create(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        try auth.requireInternal(request)
        let body = try await JSONBody.decode(CreateNotificationRequest.self, from: request, limit: maxBodyBytes)
        return try JSONBody.response(try await notifications.create(body), status: .created)
    }
}
