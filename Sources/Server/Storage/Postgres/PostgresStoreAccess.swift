import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// How the PostgreSQL stores reach the database: every call leases a pooled connection within
/// `leaseTimeout`, and every failure to reach the database becomes `DomainError.unavailable`
/// (HTTP 503 `DATABASE_UNAVAILABLE`), so a node that lost PostgreSQL refuses writes quickly and,
/// as the pool reconnects by itself, serves again once the database is back.
extension PostgresDatabase {
    /// How long a store call waits for a connection. The pool queues requests while it cannot
    /// connect and fails them only after its circuit breaker trips (60 s in postgres-nio 1.33), too
    /// long for an HTTP answer; a lease never waits longer than this.
    static let leaseTimeout: Duration = .seconds(5)

    private enum LeaseOutcome<T: Sendable>: Sendable {
        case value(T)
        case leasedInTime
    }

    /// Runs `body` on a pooled connection; see `leaseTimeout` and `PostgresStoreError.map`.
    func withStoreConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let client = self.client
        do {
            return try await withThrowingTaskGroup(of: LeaseOutcome<T>.self) { group in
                let leased = LeaseFlag()
                group.addTask {
                    .value(try await client.withConnection { connection in
                        leased.set()
                        return try await body(connection)
                    })
                }
                group.addTask {
                    try await Task.sleep(for: Self.leaseTimeout)
                    guard leased.isSet else { throw PostgresLeaseTimeout() }
                    return .leasedInTime
                }
                while let outcome = try await group.next() {
                    if case .value(let value) = outcome {
                        group.cancelAll()
                        return value
                    }
                }
                throw PostgresLeaseTimeout()
            }
        } catch {
            throw PostgresStoreError.map(error)
        }
    }

    /// Runs `body` in one transaction (BEGIN … COMMIT, ROLLBACK when it throws).
    func inTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await withStoreConnection { connection in
            try await connection.withTransaction(logger: logger) { connection in try await body(connection) }
        }
    }
}

struct PostgresLeaseTimeout: Error {}

/// Whether a store call got its connection (then the lease timeout no longer applies).
private final class LeaseFlag: Sendable {
    private let leased = Mutex(false)
    func set() { leased.withLock { $0 = true } }
    var isSet: Bool { leased.withLock { $0 } }
}

enum PostgresStoreError {
    /// The domain's reading of a database failure: a unique violation is `conflict` (as the SQLite
    /// stores refuse a duplicate); a lost connection, a refused connect, a lease that timed out,
    /// a server shutting down (SQLSTATE class 08, 57P01-57P03) are `unavailable`. Anything else
    /// is left as it is (HTTP 500).
    static func map(_ error: any Error) -> any Error {
        switch error {
        case let refusal as DomainError:
            return refusal
        case let transaction as PostgresTransactionError:
            if let inner = transaction.closureError ?? transaction.beginError ?? transaction.commitError { return map(inner) }
            return error
        case is PostgresLeaseTimeout:
            return DomainError.unavailable("the database did not answer in time")
        case let failure as PSQLError:
            switch failure.code {
            case .server:
                let state = failure.serverInfo?[.sqlState] ?? ""
                if state == "23505" { return DomainError.conflict("this already exists") }
                if state == "22021" { return DomainError.invalid("text may not contain the NUL character (U+0000)") }
                if state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state) {
                    return DomainError.unavailable("the database is unavailable")
                }
                return error
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown, .queryCancelled:
                return DomainError.unavailable("the database is unavailable")
            default:
                return error
            }
        case is IOError, is ChannelError, is NIOConnectionError:
            return DomainError.unavailable("the database is unavailable")
        default:
            // The pool's own `ConnectionPoolError` (its circuit breaker tripped) is not exported by
            // PostgresNIO: known by name.
            if String(describing: type(of: error)) == "ConnectionPoolError" {
                return DomainError.unavailable("the database is unavailable")
            }
            return error
        }
    }
}

extension PostgresDatabase: StorageHealth {
    public func isHealthy() async -> Bool {
        let answer = try? await withStoreConnection { connection in
            var one = 0
            for try await value in try await connection.query("SELECT 1", logger: Logger(label: "livehub.health")).decode(Int.self) { one = value }
            return one
        }
        return answer == 1
    }
}

/// PostgreSQL's `text` cannot hold U+0000 (SQLite's can). No stored key holds one, so a lookup by
/// such a key finds nothing, as on SQLite, without asking; a write of one is refused (422).
enum PostgresText {
    static func isStorable(_ values: String...) -> Bool {
        values.allSatisfy { !$0.utf8.contains(0) }
    }
}

/// Times as the API writes them (`ISOTime`); a row that holds anything else is refused.
enum PostgresTime {
    static func decode(_ text: String) throws -> Date {
        guard let date = ISOTime.date(text) else { throw PostgresTimeError(text: text) }
        return date
    }

    static func decode(_ text: String?) throws -> Date? {
        try text.map(decode)
    }
}

struct PostgresTimeError: Error, CustomStringConvertible {
    var text: String
    var description: String { "not an ISO-8601 time in the database: \(text)" }
}
