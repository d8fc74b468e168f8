import Foundation
import HTTPTypes
import Hummingbird

/// Products, chat history, pins and orders under `/v1/notifications/live` (DESIGN.md "REST").
struct LiveRoomController {
    let live: LiveRoomService
    let auth: Authenticator
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<LiveHubRequestContext>) {
        group.post("rooms/:id/products", use: addProduct)
        group.get("rooms/:id/products", use: products)
        group.put("rooms/:id/products/:liveProductId/feature", use: feature)
        group.delete("rooms/:id/products/:liveProductId", use: removeProduct)
        group.get("rooms/:id/chats", use: chats)
        group.put("rooms/:id/chats/:chatId/pin", use: pin)
        group.post("orders", use: order)
    }

    @Sendable func addProduct(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let body = try await JSONBody.decode(AddProductRequest.self, from: request, limit: maxBodyBytes)
        let product = try await live.addProduct(roomId: try context.parameters.require("id"), body, by: owner)
        return try JSONBody.response(product, status: .created)
    }

    @Sendable func products(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        try JSONBody.response(try await live.products(roomId: try context.parameters.require("id")))
    }

    @Sendable func feature(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let list = try await live.feature(
            roomId: try context.parameters.require("id"), liveProductId: try context.parameters.require("liveProductId"), by: owner)
        return try JSONBody.response(list)
    }

    @Sendable func removeProduct(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let list = try await live.removeProduct(
            roomId: try context.parameters.require("id"), liveProductId: try context.parameters.require("liveProductId"), by: owner)
        return try JSONBody.response(list)
    }

    @Sendable func chats(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let limit = try RoomController.integer(query["limit"].map(String.init), name: "limit", default: 50, range: 1...500)
        let before = query["before"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        return try JSONBody.response(try await live.history(roomId: try context.parameters.require("id"), limit: limit, before: before))
    }

    @Sendable func pin(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let chat = try await live.pin(roomId: try context.parameters.require("id"), chatId: try context.parameters.require("chatId"), by: owner)
        return try JSONBody.response(chat)
    }

    /// Replaces the Kafka consumer of the old service: the order service posts each live order,
    /// the `LiveOrderEvent` as it was on the topic; without an `orderId` the `Idempotency-Key`
    /// header names the order.
    @Sendable func order(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        try auth.requireInternal(request)
        let event = try await JSONBody.decode(LiveOrderEvent.self, from: request, limit: maxBodyBytes)
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]?.trimmingCharacters(in: .whitespaces)
        if let idempotencyKey, idempotencyKey.count > 200 { throw APIError.badRequest("Idempotency-Key is longer than 200 characters") }
        let outcome = try await live.applyOrder(event, idempotencyKey: idempotencyKey)
        return try JSONBody.response(outcome, status: outcome.applied ? .created : .ok)
    }
}
