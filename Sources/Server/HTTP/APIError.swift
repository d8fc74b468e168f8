import Foundation
import Hummingbird

/// Every refused request answers `{"error": code, "message": text}` with a proper status
/// (DESIGN.md "REST").
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// The one mapping of the domain's refusals to HTTP (DESIGN.md "REST" error codes).
    public init(_ refusal: DomainError) {
        switch refusal {
        case .invalid(let message): self = .validation(message)
        case .malformed(let message): self = .badRequest(message)
        case .notFound(let message): self = .notFound(message)
        case .forbidden(let message): self = .forbidden(message)
        case .conflict(let message): self = .conflict(message)
        case .unavailable(let message): self = APIError(.serviceUnavailable, "DATABASE_UNAVAILABLE", message)
        }
    }

    /// A failed stock-service lookup (`POST /rooms/{id}/products`).
    public init(_ failure: StockLookupError) {
        switch failure {
        case .productNotFound: self.init(.notFound, "STOCK_PRODUCT_NOT_FOUND", failure.description)
        case .unavailable: self.init(.badGateway, "STOCK_SERVICE_UNAVAILABLE", failure.description)
        case .timedOut: self.init(.gatewayTimeout, "STOCK_SERVICE_TIMEOUT", failure.description)
        }
    }

    public static func badRequest(_ message: String) -> APIError { APIError(.badRequest, "BAD_REQUEST", message) }
    public static func validation(_ message: String) -> APIError { APIError(.unprocessableContent, "VALIDATION_FAILED", message) }
    public static func unauthorized(_ message: String) -> APIError {
        var error = APIError(.unauthorized, "UNAUTHORIZED", message)
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }
    public static func forbidden(_ message: String) -> APIError { APIError(.forbidden, "FORBIDDEN", message) }
    public static func notFound(_ message: String) -> APIError { APIError(.notFound, "NOT_FOUND", message) }
    public static func conflict(_ message: String) -> APIError { APIError(.conflict, "CONFLICT", message) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        let body = try JSONEncoder().encode(["error": code, "message": message])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
