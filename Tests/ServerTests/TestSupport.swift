import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import Server

/// A LiveHub on a fresh temporary data directory with known secrets.
struct TestHub {
    static let secret = "server-tests-secret-0123456789abcdef"
    static let internalToken = "internal-test-token-0123456789"

    let hub: LiveHub
    let directory: String
    /// Signs tokens the hub accepts (its dev signer in dev mode, else one with `secret`).
    let signer: DevTokenIssuer
    let ownerToken: String
    let otherOwnerToken: String
    let viewerToken: String

    static func make(
        directory: String? = nil, grace: Duration = .seconds(30), clock: any Clock<Duration> = ContinuousClock(),
        replayRecordings: (any ReplayRecordings)? = nil, configure: (inout LiveHubConfiguration) -> Void = { _ in }
    ) async throws -> TestHub {
        let directory = directory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("livehub-tests-\(UUID().uuidString)").path
        var configuration = LiveHubConfiguration()
        configuration.httpHost = "127.0.0.1"
        configuration.httpPort = 0
        configuration.rtmpPort = 0
        configuration.dataDirectory = directory
        configuration.jwtSecret = secret
        configuration.internalToken = internalToken
        configuration.reconnectGrace = grace
        configure(&configuration)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let hub = try await LiveHub.build(configuration: configuration, logger: logger, clock: clock, replayRecordings: replayRecordings)
        let signer: DevTokenIssuer
        if let devSigner = hub.devTokenIssuer {
            signer = devSigner
        } else {
            signer = await DevTokenIssuer(secret: configuration.jwtSecret ?? secret)
        }
        let sign = { @Sendable (userId: String, roles: [String]) in
            try await signer.sign(AuthUser(userId: userId, username: "name-\(userId)", roles: roles), lifetime: 600)
        }
        return TestHub(
            hub: hub, directory: directory, signer: signer,
            ownerToken: try await sign("owner-1", ["SHOP_OWNER"]), otherOwnerToken: try await sign("owner-2", ["SHOP_OWNER"]),
            viewerToken: try await sign("viewer-1", ["USER"]))
    }

    func token(_ userId: String, roles: [String] = [], lifetime: TimeInterval = 600) async throws -> String {
        try await signer.sign(AuthUser(userId: userId, username: "name-\(userId)", roles: roles), lifetime: lifetime)
    }

    /// Rows of `table`, read from the SQLite file through a separate connection.
    func count(_ table: String) throws -> Int {
        let queue = try DatabaseQueue(path: (directory as NSString).appendingPathComponent("livehub.sqlite"))
        return try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? -1 }
    }

    func snapshot() throws -> [[String: String]] {
        let queue = try DatabaseQueue(path: (directory as NSString).appendingPathComponent("livehub.sqlite"))
        return try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM room ORDER BY id").map { row in
                var values: [String: String] = [:]
                for (column, value) in row { values[column] = value.description }
                return values
            }
        }
    }
}

func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)", .contentType: "application/json"] }

func json(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    try JSONDecoder().decode(T.self, from: Data((response.body ?? ByteBuffer()).readableBytesView))
}

func object(_ response: TestResponse) throws -> [String: Any] {
    let data = Data((response.body ?? ByteBuffer()).readableBytesView)
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// Asserts the API error shape `{"error","message"}` and returns the message.
@discardableResult
func expectError(_ response: TestResponse, _ status: HTTPResponse.Status, _ code: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    #expect(response.status == status, sourceLocation: sourceLocation)
    let body = try object(response)
    if let code { #expect(body["error"] as? String == code, sourceLocation: sourceLocation) }
    let message = try #require(body["message"] as? String, sourceLocation: sourceLocation)
    #expect(!message.isEmpty, sourceLocation: sourceLocation)
    return message
}

/// base64url without padding (RFC 7515 §2), to hand-craft tokens the server must refuse.
enum TestBase64URL {
    static func encode(_ text: String) -> String { encode(Data(text.utf8)) }

    static func encode(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
