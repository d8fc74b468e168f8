import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// `GET`s JSON from one of the site's services (the old service's Feign clients) with
/// AsyncHTTPClient: the service token as `Authorization: Bearer …`, a connect timeout and a total
/// deadline, redirects not followed, the body bounded (README "Lookups in other services").
final class ServiceLookupClient: Sendable {
    struct Settings: Sendable {
        /// `http(s)://host[:port][/prefix]`, no trailing slash.
        var baseURL: String
        var token: String?
        var connectTimeout: Duration
        var timeout: Duration
        var maxBodyBytes: Int
    }

    enum Outcome: Sendable, Equatable {
        case body(ByteBuffer)
        case notFound
        case failed(String)
        case timedOut
    }

    let settings: Settings
    private let client: HTTPClient
    private let logger: Logger

    init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: TimeAmount(settings.connectTimeout), read: TimeAmount(settings.timeout))
        configuration.httpVersion = .http1Only
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The client's connections close with it (without a blocking wait: this may run anywhere).
    deinit {
        client.shutdown { _ in }
    }

    /// `GET {baseURL}/{path segments…}`, each segment percent-encoded.
    func get(_ segments: [String]) async -> Outcome {
        let path = segments.map { $0.addingPercentEncoding(withAllowedCharacters: Self.segmentCharacters) ?? "" }.joined(separator: "/")
        var request = HTTPClientRequest(url: "\(settings.baseURL)/\(path)")
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "LiveHub")
        if let token = settings.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        do {
            let response = try await client.execute(request, timeout: TimeAmount(settings.timeout), logger: logger)
            switch response.status.code {
            case 200..<300:
                do {
                    return .body(try await response.body.collect(upTo: settings.maxBodyBytes))
                } catch is NIOTooManyBytesError {
                    return .failed("the answer is larger than \(settings.maxBodyBytes) bytes")
                }
            case 404:
                return .notFound
            default:
                return .failed("it answered HTTP \(response.status.code)")
            }
        } catch let error as HTTPClientError
            where [.deadlineExceeded, .connectTimeout, .readTimeout, .getConnectionFromPoolTimeout].contains(error)
        {
            return .timedOut
        } catch {
            if error is CancellationError { return .failed("the request was cancelled") }
            logger.notice("service lookup failed", metadata: ["url": "\(settings.baseURL)", "error": "\(error)"])
            return .failed("the request failed (\(Self.describe(error)))")
        }
    }

    /// Unreserved characters (RFC 3986 §2.3): everything else in an id is percent-encoded.
    static let segmentCharacters = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}

/// `StockCatalog` over HTTP: `GET {LIVEHUB_STOCK_SERVICE_URL}/v1/products/{productId}`.
struct HTTPStockService: StockCatalog {
    let client: ServiceLookupClient

    func product(id: String) async throws(StockLookupError) -> StockProduct {
        switch await client.get(["v1", "products", id]) {
        case .body(let body): return try StockProductResponse.parse(body.readableBytesView)
        case .notFound: throw .productNotFound(productId: id)
        case .failed(let reason): throw .unavailable(reason: reason)
        case .timedOut: throw .timedOut
        }
    }
}

/// `UserDirectory` over HTTP: `GET {LIVEHUB_USER_SERVICE_URL}/v1/users/{userId}`; nil on any failure.
struct HTTPUserService: UserDirectory {
    let client: ServiceLookupClient

    func profile(userId: String) async -> UserProfile? {
        guard case .body(let body) = await client.get(["v1", "users", userId]) else { return nil }
        return UserProfileResponse.parse(body.readableBytesView)
    }
}

/// The lookups a configuration asks for (none when their URLs are unset).
struct ServiceLookups {
    var stock: HTTPStockService?
    var userProfiles: UserProfileCache?

    init(configuration: LiveHubConfiguration, internalToken: String, logger: Logger) {
        func client(_ baseURL: String) -> ServiceLookupClient {
            ServiceLookupClient(
                settings: .init(
                    baseURL: baseURL, token: configuration.serviceToken ?? (internalToken.isEmpty ? nil : internalToken),
                    connectTimeout: configuration.lookupConnectTimeout, timeout: configuration.lookupTimeout,
                    maxBodyBytes: configuration.lookupMaxBodyBytes),
                logger: logger)
        }
        stock = configuration.stockServiceURL.map { HTTPStockService(client: client($0)) }
        userProfiles = configuration.userServiceURL.map {
            UserProfileCache(
                directory: HTTPUserService(client: client($0)),
                limits: .init(entries: configuration.userCacheEntries, ttl: configuration.userCacheTTL, maxInFlight: configuration.userLookupConcurrency))
        }
    }
}
