import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// `LIVEHUB_DATABASE_URL`, read once at start-up: `postgres://user:pass@host:port/db?sslmode=…`
/// (libpq's URI form, postgresql.org/docs/15/libpq-connect.html §34.1.1.2). `host` may be a
/// percent-encoded Unix socket directory (`postgres://user@%2Ftmp%2Fpg/db`).
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(parsing raw: String) throws {
        guard let url = URLComponents(string: raw), let scheme = url.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw PostgresURLError("a postgres:// URL such as postgres://livehub:secret@127.0.0.1:5432/livehub")
        }
        guard let host = url.percentEncodedHost.flatMap({ $0.removingPercentEncoding }), !host.isEmpty else {
            throw PostgresURLError("a host (postgres://user:pass@HOST:port/db)")
        }
        guard let user = url.user, !user.isEmpty else { throw PostgresURLError("a user name (postgres://USER:pass@host:port/db)") }
        let port = url.port ?? 5432
        guard (1...65535).contains(port) else { throw PostgresURLError("a port from 1 to 65535") }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw PostgresURLError("a database name (postgres://user:pass@host:port/DB)") }
        var tls = TLSMode.disable
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable", "allow": tls = .disable
                case "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw PostgresURLError("sslmode one of disable, prefer, require")
                }
            default:
                throw PostgresURLError("no query parameter but sslmode (found \(item.name))")
            }
        }
        self.host = host
        self.port = port
        self.username = user
        self.password = url.password
        self.database = database
        self.tls = tls
    }

    /// Whether `host` names a Unix socket directory (it starts with `/`).
    public var isUnixSocket: Bool { host.hasPrefix("/") }

    /// The URL without its password, for logs.
    public var description: String {
        "postgres://\(username)@\(isUnixSocket ? host.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? host : host):\(port)/\(database)"
    }

    /// `raw` with any password replaced by `***`, for error messages.
    public static func redacted(_ raw: String) -> String {
        guard var url = URLComponents(string: raw), url.password != nil else { return raw }
        url.password = "***"
        return url.string ?? "(unparseable URL)"
    }

    /// The client configuration postgres-nio connects with; `poolSize` connections at most.
    func clientConfiguration(poolSize: Int) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if isUnixSocket {
            configuration = .init(
                unixSocketPath: (host as NSString).appendingPathComponent(".s.PGSQL.\(port)"),
                username: username, password: password, database: database)
        } else {
            let tlsConfiguration: PostgresClient.Configuration.TLS
            switch tls {
            case .disable: tlsConfiguration = .disable
            case .prefer: tlsConfiguration = .prefer(.makeClientConfiguration())
            case .require: tlsConfiguration = .require(.makeClientConfiguration())
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tlsConfiguration)
        }
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(15))
        return configuration
    }

    /// The configuration of one dedicated connection (the broker's listener; migrations).
    func connectionConfiguration() -> PostgresConnection.Configuration {
        if isUnixSocket {
            return .init(
                unixSocketPath: (host as NSString).appendingPathComponent(".s.PGSQL.\(port)"),
                username: username, password: password, database: database)
        }
        let tlsConfiguration: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable: tlsConfiguration = .disable
        case .prefer: tlsConfiguration = .prefer(try! .init(configuration: .makeClientConfiguration()))
        case .require: tlsConfiguration = .require(try! .init(configuration: .makeClientConfiguration()))
        }
        return .init(host: host, port: port, username: username, password: password, database: database, tls: tlsConfiguration)
    }
}

public struct PostgresURLError: Error, CustomStringConvertible {
    public var description: String
    init(_ expected: String) { self.description = expected }
}

/// The shared PostgreSQL database of a cluster (issue 20): a pooled `PostgresClient` for the stores,
/// the broker and the cluster state, and the schema migrations. The client's pool must be running
/// (`run()`, a `Service` the application starts first) before any query.
public final class PostgresDatabase: Sendable {
    public let url: PostgresURL
    public let client: PostgresClient
    let logger: Logger

    public init(url: PostgresURL, poolSize: Int, logger: Logger) {
        self.url = url
        self.logger = logger
        var backgroundLogger = logger
        backgroundLogger[metadataKey: "component"] = "postgres"
        self.client = PostgresClient(configuration: url.clientConfiguration(poolSize: poolSize), backgroundLogger: backgroundLogger)
    }

    /// Opens one connection outside the pool, e.g. for `LISTEN`, which must keep its connection.
    public func connectDedicated(logger: Logger) async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.any(), configuration: url.connectionConfiguration(), id: 1, logger: logger)
    }
}
