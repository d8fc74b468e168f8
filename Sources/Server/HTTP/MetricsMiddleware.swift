import Hummingbird

/// Counts every response by route template (`/v1/notifications/live/rooms/{id}`) and status.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = LiveHubRequestContext
    let metrics: LiveHubMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: response.status.code)
            return response
        } catch let error as any HTTPResponseError {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: error.status.code)
            throw error
        } catch {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: 500)
            throw error
        }
    }
}

/// The domain's refusals, unmatched routes and unexpected errors answer in the API's JSON error
/// shape (the only place a `DomainError` becomes an HTTP status).
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = LiveHubRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let refusal as DomainError {
            throw APIError(refusal)
        } catch let refusal as DealRefusal {
            throw APIError(refusal)
        } catch let failure as StockLookupError {
            throw APIError(failure)
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "NOT_FOUND" : (error.status.code < 500 ? "BAD_REQUEST" : "INTERNAL")
            throw APIError(error.status, code, error.body ?? error.status.reasonPhrase)
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            throw APIError(.internalServerError, "INTERNAL", "an internal error occurred")
        }
    }
}
