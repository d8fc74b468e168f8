import Foundation
import PostgresNIO

/// `TimelineStore` on the cluster's PostgreSQL database (migration `store-v3-live-timeline-event`);
/// answers as `SQLiteTimelineStore` does. `created_at` is compared in byte order (`COLLATE "C"`,
/// as SQLite compares text).
public struct PostgresTimelineStore: TimelineStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    static func decode(_ row: PostgresRow) throws -> TimelineEventRecord {
        let (seq, roomId, atMs, kind, payload) = try row.decode((Int64, String, Int64, String, String).self)
        return TimelineEventRecord(seq: seq, liveRoomId: roomId, atMs: atMs, kind: kind, payload: payload)
    }

    static func events(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [TimelineEventRecord] {
        var events: [TimelineEventRecord] = []
        for try await row in try await connection.query(query, logger: connection.logger) { events.append(try decode(row)) }
        return events
    }

    public func insert(_ event: TimelineEventRecord) async throws -> TimelineEventRecord {
        guard PostgresText.isStorable(event.liveRoomId, event.kind, event.payload) else {
            throw DomainError.invalid("text may not contain the NUL character (U+0000)")
        }
        return try await database.withStoreConnection { connection in
            var saved = event
            for try await seq in try await connection.query("""
                INSERT INTO live_timeline_event (live_room_id, at_ms, kind, payload)
                VALUES (\(event.liveRoomId), \(event.atMs), \(event.kind), \(event.payload)) RETURNING seq
                """, logger: connection.logger).decode(Int64.self) {
                saved.seq = seq
            }
            return saved
        }
    }

    public func events(
        roomId: String, fromMs: Int64, toMs: Int64, after: TimelinePosition?, kinds: [String]?, limit: Int
    ) async throws -> [TimelineEventRecord] {
        guard PostgresText.isStorable(roomId), PostgresText.isStorable(kinds ?? []) else { return [] }
        let afterAt = after?.atMs
        let afterSeq = after?.seq
        return try await database.withStoreConnection { connection in
            try await Self.events(connection, """
                SELECT seq, live_room_id, at_ms, kind, payload FROM live_timeline_event
                WHERE live_room_id = \(roomId) AND at_ms >= \(fromMs) AND at_ms <= \(toMs)
                  AND (\(afterAt)::bigint IS NULL OR at_ms > \(afterAt) OR (at_ms = \(afterAt) AND seq > \(afterSeq)))
                  AND (\(kinds)::text[] IS NULL OR kind = ANY(\(kinds)))
                ORDER BY at_ms, seq LIMIT \(limit)
                """)
        }
    }

    public func lastEvent(roomId: String, kinds: [String]) async throws -> TimelineEventRecord? {
        guard !kinds.isEmpty, PostgresText.isStorable(roomId), PostgresText.isStorable(kinds) else { return nil }
        return try await database.withStoreConnection { connection in
            try await Self.events(connection, """
                SELECT seq, live_room_id, at_ms, kind, payload FROM live_timeline_event
                WHERE live_room_id = \(roomId) AND kind = ANY(\(kinds)) ORDER BY seq DESC LIMIT 1
                """).first
        }
    }

    public func chats(roomId: String, fromMs: Int64, toMs: Int64, after: TimelinePosition?, limit: Int) async throws -> [LiveChatRecord] {
        guard PostgresText.isStorable(roomId) else { return [] }
        let (fromText, toText) = (WallClock.isoText(fromMs), WallClock.isoText(toMs))
        let afterText = after.map { WallClock.isoText($0.atMs) }
        let afterSeq = after?.seq
        return try await database.withStoreConnection { connection in
            try await PostgresLiveRoomStore.chats(connection, """
                SELECT \(unescaped: PostgresLiveRoomStore.chatColumns) FROM live_chat
                WHERE live_room_id = \(roomId) AND type IN (\(unescaped: LiveChatRecord.lineTypeSQLList))
                  AND created_at COLLATE "C" >= \(fromText) AND created_at COLLATE "C" <= \(toText)
                  AND (\(afterText)::text IS NULL OR created_at COLLATE "C" > \(afterText)
                       OR (created_at COLLATE "C" = \(afterText) AND seq > \(afterSeq)))
                ORDER BY created_at COLLATE "C", seq LIMIT \(limit)
                """)
        }
    }
}

extension PostgresText {
    static func isStorable(_ values: [String]) -> Bool {
        values.allSatisfy { !$0.utf8.contains(0) }
    }
}
