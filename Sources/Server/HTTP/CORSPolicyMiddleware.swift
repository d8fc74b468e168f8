import Hummingbird

/// CORS on every response and `OPTIONS` preflights (DESIGN.md: `*` in dev, a list in prod).
/// Browsers' HLS players and the web pages call from other origins.
struct CORSPolicyMiddleware: RouterMiddleware {
    typealias Context = LiveHubRequestContext
    let allowedOrigins: [String]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // SockJS's routes answer CORS themselves (credentials and an echoed origin: SockJSHTTPRoutes).
        if SockJSHTTPRoutes.ownsCORS(path: request.uri.path) { return try await next(request, context) }
        let origin = request.headers[.origin]
        if request.method == .options {
            var response = Response(status: .noContent)
            apply(to: &response.headers, origin: origin)
            response.headers[.accessControlAllowMethods] = "GET, POST, PUT, DELETE, OPTIONS"
            response.headers[.accessControlAllowHeaders] =
                request.headers[.accessControlRequestHeaders] ?? "Authorization, Content-Type, Idempotency-Key"
            response.headers[.accessControlMaxAge] = "600"
            return response
        }
        do {
            var response = try await next(request, context)
            apply(to: &response.headers, origin: origin)
            return response
        } catch let error as APIError {
            var error = error
            apply(to: &error.headers, origin: origin)
            throw error
        }
    }

    /// The `Access-Control-Allow-Origin` that replaces a response's own `*` for `origin`: the
    /// origin itself when it is listed (and `*` is not), else nil.
    func allowedOrigin(for origin: String?) -> String? {
        guard !allowedOrigins.contains("*"), let origin, allowedOrigins.contains(origin) else { return nil }
        return origin
    }

    func apply(to headers: inout HTTPFields, origin: String?) {
        if allowedOrigins.contains("*") {
            headers[.accessControlAllowOrigin] = "*"
        } else if let origin, allowedOrigins.contains(origin) {
            headers[.accessControlAllowOrigin] = origin
            headers[.vary] = "Origin"
        }
        headers[.accessControlExposeHeaders] = "Content-Length, Content-Type"
    }
}
