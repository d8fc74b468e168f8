import Logging
import PostgresNIO

/// A per-user chat limit that `LiveRoomService` asks before it stores a line. One node has none
/// (the hub's token buckets, `RateLimiter` in Hub/Core, are the limit there); in cluster mode it
/// is `ClusterChatRateLimit`, so that a user spread over several nodes is not allowed N × the rate.
protocol ChatRateGate: Sendable {
    /// Whether `userId` may post one more line now (the line is counted).
    func allowChat(userId: String) async -> Bool
}

/// A fixed one-second window per user in `livehub_rate_window`, counted by every node at once
/// with `INSERT … ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count`; the window is the
/// database's clock second, so the nodes' clocks need not agree. The limit
/// (`LIVEHUB_CLUSTER_CHAT_RATE`, 10) defaults to the hub's per-node burst (`RateLimit.stompSend`:
/// 5/s, 10 at once): a user on one node is never refused here what their token bucket admitted,
/// while a user on several nodes gets at most 10 a second in all instead of 10 per node. A database
/// error lets the line through (the per-node bucket still holds) rather than silencing chat.
struct ClusterChatRateLimit: ChatRateGate {
    let client: PostgresClient
    let perSecond: Int
    let logger: Logger

    func allowChat(userId: String) async -> Bool {
        let subject = "chat:" + userId
        do {
            let rows = try await client.query(
                """
                INSERT INTO livehub_rate_window (subject, window_start, count)
                VALUES (\(subject), floor(extract(epoch FROM clock_timestamp()))::bigint, 1)
                ON CONFLICT (subject, window_start) DO UPDATE SET count = livehub_rate_window.count + 1
                RETURNING count
                """, logger: logger)
            for try await count in rows.decode(Int32.self) { return Int(count) <= perSecond }
            return true
        } catch {
            logger.warning("cluster chat rate check failed; allowed", metadata: ["error": "\(String(reflecting: error))"])
            return true
        }
    }

    /// Deletes the windows older than a minute (the coordinator's housekeeping).
    func prune() async throws {
        try await client.query(
            "DELETE FROM livehub_rate_window WHERE window_start < floor(extract(epoch FROM clock_timestamp()))::bigint - 60", logger: logger)
    }
}
