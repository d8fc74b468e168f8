import Foundation

/// What the site's stock service knows of a product (the old service's Feign `StockServiceClient`,
/// `GET {LIVEHUB_STOCK_SERVICE_URL}/v1/products/{productId}`). Every field may be missing; the
/// values are already checked (`StockProductResponse.parse`).
public struct StockProduct: Sendable, Equatable {
    public var name: String?
    public var price: Double?
    public var imageUrl: String?
    public var stock: Int?

    public init(name: String? = nil, price: Double? = nil, imageUrl: String? = nil, stock: Int? = nil) {
        self.name = name
        self.price = price
        self.imageUrl = imageUrl
        self.stock = stock
    }
}

/// Why the stock service could not fill a product's details. `POST /rooms/{id}/products` answers
/// 404 `STOCK_PRODUCT_NOT_FOUND`, 502 `STOCK_SERVICE_UNAVAILABLE` or 504 `STOCK_SERVICE_TIMEOUT`
/// (`APIError(_: StockLookupError)`), and nothing is stored.
public enum StockLookupError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stock service answered 404 for this product id.
    case productNotFound(productId: String)
    /// Refused connection, an error status, a body that is not the product JSON or too large.
    case unavailable(reason: String)
    /// No complete answer within `LIVEHUB_LOOKUP_TIMEOUT` (or no connection within the connect timeout).
    case timedOut

    public var description: String {
        switch self {
        case .productNotFound(let productId): "product \(productId) was not found in the stock service"
        case .unavailable(let reason): "the stock service could not be used: \(reason)"
        case .timedOut: "the stock service did not answer in time"
        }
    }
}

/// The product lookup the domain asks (the real one is `HTTPStockService`; tests of the domain
/// may pass their own).
public protocol StockCatalog: Sendable {
    func product(id: String) async throws(StockLookupError) -> StockProduct
}

/// A user's display details from the site's user service (the old service's Feign
/// `UserServiceClient`, `GET {LIVEHUB_USER_SERVICE_URL}/v1/users/{userId}`).
public struct UserProfile: Sendable, Equatable {
    public var username: String?
    public var avatarUrl: String?

    public init(username: String? = nil, avatarUrl: String? = nil) {
        self.username = username
        self.avatarUrl = avatarUrl
    }
}

/// The user lookup the domain asks (the real one is `HTTPUserService`). Nil: no such user, or the
/// service failed (the caller keeps the token's claims either way).
public protocol UserDirectory: Sendable {
    func profile(userId: String) async -> UserProfile?
}
