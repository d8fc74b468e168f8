import Foundation
import Hummingbird

/// Flash deals under `/v1/notifications/live` (issue 22 §1): the owner creates and cancels, anyone
/// lists, a signed-in viewer claims. Refusals of a claim or a cancel are 409 with their code
/// (`SOLD_OUT`, `OVER_LIMIT`, `NOT_STARTED`, `DEAL_ENDED`, `DEAL_STARTED`; `JSONErrorMiddleware`).
struct DealController {
    let deals: DealService
    let auth: Authenticator
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<LiveHubRequestContext>) {
        group.post("rooms/:id/deals", use: create)
        group.get("rooms/:id/deals", use: list)
        group.delete("rooms/:id/deals/:dealId", use: cancel)
        group.post("rooms/:id/deals/:dealId/claims", use: claim)
    }

    @Sendable func create(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let body = try await JSONBody.decode(CreateDealRequest.self, from: request, limit: maxBodyBytes)
        let deal = try await deals.create(roomId: try context.parameters.require("id"), body, by: owner)
        return try JSONBody.response(deal, status: .created)
    }

    @Sendable func list(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        try JSONBody.response(try await deals.list(roomId: try context.parameters.require("id")))
    }

    @Sendable func cancel(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let deal = try await deals.cancel(
            roomId: try context.parameters.require("id"), dealId: try context.parameters.require("dealId"), by: owner)
        return try JSONBody.response(deal)
    }

    @Sendable func claim(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let buyer = try auth.requireUser(request, context: context)
        // An empty body claims one unit.
        let body: ClaimDealRequest
        let length = request.headers[.contentLength]
        if length == "0" || (length == nil && request.headers[.transferEncoding] == nil) {
            body = ClaimDealRequest()
        } else {
            body = try await JSONBody.decode(ClaimDealRequest.self, from: request, limit: maxBodyBytes)
        }
        let claim = try await deals.claim(
            roomId: try context.parameters.require("id"), dealId: try context.parameters.require("dealId"), body, by: buyer)
        return try JSONBody.response(claim, status: .created)
    }
}

extension APIError {
    /// A deal's refusal: 404 for an unknown deal, 409 otherwise, with the refusal's code.
    init(_ refusal: DealRefusal) {
        self.init(refusal.isNotFound ? .notFound : .conflict, refusal.code, refusal.description)
    }
}
