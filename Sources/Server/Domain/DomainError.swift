/// Why the domain refused a request, in the domain's own terms. The HTTP layer maps it to a status
/// and the API's JSON error shape in one place (`JSONErrorMiddleware`, via `APIError(_:)`); the hub
/// backends map it to their refusal codes. Messages are shown to the caller: no secrets.
public enum DomainError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A field is outside its documented range (HTTP 422 `VALIDATION_FAILED`).
    case invalid(String)
    /// The request cannot be understood, e.g. a cursor that is not one (HTTP 400 `BAD_REQUEST`).
    case malformed(String)
    /// The room, product, chat or notification does not exist for this caller (HTTP 404).
    case notFound(String)
    /// The caller may not do this to this resource, e.g. not the room's owner (HTTP 403).
    case forbidden(String)
    /// The resource's state refuses the change, e.g. a LIVE room's key (HTTP 409).
    case conflict(String)
    /// The storage cannot be reached now, e.g. a node that lost its PostgreSQL (HTTP 503
    /// `DATABASE_UNAVAILABLE`); the same request may succeed once it is back.
    case unavailable(String)

    public var message: String {
        switch self {
        case .invalid(let message), .malformed(let message), .notFound(let message), .forbidden(let message), .conflict(let message),
             .unavailable(let message):
            return message
        }
    }

    public var description: String { message }
}
