import Foundation
import Logging
import Testing

@testable import Server

/// A real PostgreSQL for the tests (issue 20), at `LIVEHUB_TEST_DATABASE_URL`: `make test` (and CI)
/// starts a throw-away cluster with `tools/pg-temp.sh` and sets it. Each test gets a new empty
/// database (`CREATE DATABASE`). The tests marked `.enabled(if: TestPostgres.isAvailable)` are
/// skipped without it, unless `LIVEHUB_REQUIRE_POSTGRES=1` (set by `make test`), where they fail.
enum TestPostgres {
    static var isAvailable: Bool {
        ProcessInfo.processInfo.environment["LIVEHUB_REQUIRE_POSTGRES"] == "1"
            || ProcessInfo.processInfo.environment["LIVEHUB_TEST_DATABASE_URL"] != nil
    }

    /// A URL of a new, empty database.
    static func freshDatabaseURL() async throws -> PostgresURL {
        guard let raw = ProcessInfo.processInfo.environment["LIVEHUB_TEST_DATABASE_URL"] else {
            throw TestPostgresError(message: "LIVEHUB_TEST_DATABASE_URL is not set: run `make test`, or start tools/pg-temp.sh and export it")
        }
        let server = try PostgresURL(parsing: raw)
        let name = "t_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20))"
        var admin = server
        admin.database = "postgres"
        let database = PostgresDatabase(url: admin, poolSize: 1, logger: Logger(label: "test-postgres"))
        let run = Task { await database.client.run() }
        defer { run.cancel() }
        try await database.client.query("CREATE DATABASE \(unescaped: name)")
        var url = server
        url.database = name
        return url
    }

    /// An opened, migrated database, with its pool running until `body` returns.
    static func withDatabase<T: Sendable>(_ body: (PostgresDatabase) async throws -> T) async throws -> T {
        let url = try await freshDatabaseURL()
        var logger = Logger(label: "test-postgres")
        logger.logLevel = .error
        let database = PostgresDatabase(url: url, poolSize: 4, logger: logger)
        let run = Task { await database.client.run() }
        defer { run.cancel() }
        try await PostgresMigrator.migrate(database.client, logger: logger)
        return try await body(database)
    }
}

struct TestPostgresError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

@Suite("PostgreSQL migrations")
struct PostgresMigratorTests {
    @Test(.enabled(if: TestPostgres.isAvailable))
    func severalNodesMigratingAtOnceApplyEachStepOnce() async throws {
        let url = try await TestPostgres.freshDatabaseURL()
        let migrations = [
            PostgresMigration("t1", ["CREATE TABLE t_once (id INT PRIMARY KEY)"]),
            PostgresMigration("t2", ["INSERT INTO t_once VALUES (1)"]),
        ]
        let applied = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var logger = Logger(label: "t")
                    logger.logLevel = .error
                    let database = PostgresDatabase(url: url, poolSize: 2, logger: logger)
                    let run = Task { await database.client.run() }
                    defer { run.cancel() }
                    return try await PostgresMigrator.migrate(database.client, migrations: migrations, logger: Logger(label: "t"))
                }
            }
            var all: [[String]] = []
            for try await names in group { all.append(names) }
            return all
        }
        #expect(applied.filter { !$0.isEmpty } == [["t1", "t2"]])
        #expect(applied.filter(\.isEmpty).count == 3)
    }

    @Test func databaseURLParsing() throws {
        let url = try PostgresURL(parsing: "postgres://live:s%40cret@db.example:6543/shop?sslmode=require")
        #expect(url.host == "db.example" && url.port == 6543 && url.username == "live" && url.password == "s@cret")
        #expect(url.database == "shop" && url.tls == .require)
        #expect(!url.description.contains("cret"))
        let socket = try PostgresURL(parsing: "postgres://live@%2Ftmp%2Fpg/shop")
        #expect(socket.isUnixSocket && socket.host == "/tmp/pg")
        for bad in ["mysql://a@b/c", "postgres://b/c", "postgres://a@b", "postgres://a@b:0/c", "postgres://a@b/c?foo=1"] {
            #expect(throws: PostgresURLError.self) { try PostgresURL(parsing: bad) }
        }
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_DATABASE_URL": "postgres://a:pw@b"]) }
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_NODE_ID": "a b"]) }
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_NODE_ADVERTISE_URL": "ftp://x"]) }
        let cluster = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_DATABASE_URL": "postgres://a@b/c", "LIVEHUB_NODE_ID": "node-2", "LIVEHUB_NODE_ADVERTISE_URL": "http://10.0.0.2:8080/",
        ])
        #expect(cluster.isClusterMode && cluster.effectiveNodeId == "node-2" && cluster.effectiveAdvertiseURL == "http://10.0.0.2:8080")
    }
}
