import Foundation
import Logging
import PostgresNIO

/// Where `NotificationService` remembers `Idempotency-Key` answers beyond its own memory: in
/// cluster mode the database, so that a retry reaching another node gets the same answer. One node
/// has none (its `IdempotencyCache` is enough).
protocol SharedIdempotencyStore: Sendable {
    /// The answer remembered for (user, scope, key) within the lifetime, as stored.
    func answer(user: String, scope: String, key: String) async throws -> Data?
    /// Remembers `answer` unless another node remembered one first; returns the one kept.
    func remember(_ answer: Data, user: String, scope: String, key: String) async throws -> Data
}

/// `livehub_idempotency`: (user, scope, key) → the answer's JSON. Bounded as `IdempotencyCache`
/// is (`LIVEHUB_IDEMPOTENCY_KEYS_PER_USER`, `_TOTAL`, a day's lifetime): a user's oldest beyond
/// the per-user limit are deleted as new ones come, the coordinator prunes by age and total.
struct PostgresIdempotencyStore: SharedIdempotencyStore {
    let client: PostgresClient
    let limits: IdempotencyLimits
    let logger: Logger

    func answer(user: String, scope: String, key: String) async throws -> Data? {
        let rows = try await client.query(
            """
            SELECT answer FROM livehub_idempotency WHERE user_id = \(user) AND scope = \(scope) AND key = \(key)
                AND created_at > now() - make_interval(secs => \(limits.lifetime))
            """, logger: logger)
        for try await bytes in rows.decode(ByteBuffer.self) { return Data(buffer: bytes) }
        return nil
    }

    func remember(_ answer: Data, user: String, scope: String, key: String) async throws -> Data {
        let bytes = ByteBuffer(data: answer)
        let perUser = limits.perUser
        let lifetime = limits.lifetime
        let logger = logger
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                """
                INSERT INTO livehub_idempotency (user_id, scope, key, answer) VALUES (\(user), \(scope), \(key), \(bytes))
                ON CONFLICT (user_id, scope, key) DO UPDATE SET answer = EXCLUDED.answer, created_at = now()
                    WHERE livehub_idempotency.created_at <= now() - make_interval(secs => \(lifetime))
                """, logger: logger)
            try await connection.query(
                """
                DELETE FROM livehub_idempotency WHERE user_id = \(user) AND (scope, key) IN (
                    SELECT scope, key FROM livehub_idempotency WHERE user_id = \(user) ORDER BY created_at DESC OFFSET \(perUser))
                """, logger: logger)
            let rows = try await connection.query(
                "SELECT answer FROM livehub_idempotency WHERE user_id = \(user) AND scope = \(scope) AND key = \(key)", logger: logger)
            for try await kept in rows.decode(ByteBuffer.self) { return Data(buffer: kept) }
            return answer
        }
    }

    /// Deletes answers older than the lifetime, then the oldest beyond the total (coordinator).
    func prune() async throws {
        try await client.query(
            "DELETE FROM livehub_idempotency WHERE created_at <= now() - make_interval(secs => \(limits.lifetime))", logger: logger)
        try await client.query(
            """
            DELETE FROM livehub_idempotency WHERE (user_id, scope, key) IN (
                SELECT user_id, scope, key FROM livehub_idempotency ORDER BY created_at DESC OFFSET \(limits.total))
            """, logger: logger)
    }
}
