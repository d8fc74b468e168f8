import Foundation
import PostgresNIO

/// `ModerationStore` on the cluster's PostgreSQL (migration `store-v5-moderation`); answers as
/// `SQLiteModerationStore` does. A change that counts against a limit locks the room's row first
/// (`FOR UPDATE`), so two nodes cannot both pass the count.
public struct PostgresModerationStore: ModerationStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    static func writeLog(_ connection: PostgresConnection, _ entry: ModerationLogRecord) async throws {
        try await connection.query("""
            INSERT INTO live_moderation_log (live_room_id, actor_id, action, target_user_id, target_chat_id, detail, created_at)
            VALUES (\(entry.liveRoomId), \(entry.actorId), \(entry.action.rawValue), \(entry.targetUserId), \(entry.targetChatId),
              \(entry.detail), \(ISOTime.string(entry.createdAt)))
            """, logger: connection.logger)
    }

    static func lockRoom(_ connection: PostgresConnection, _ roomId: String) async throws {
        _ = try await connection.query("SELECT id FROM room WHERE id = \(roomId) FOR UPDATE", logger: connection.logger).collect()
    }

    static func count(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> Int {
        var total = 0
        for try await value in try await connection.query(query, logger: connection.logger).decode(Int64.self) { total = Int(value) }
        return total
    }

    static func strings(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [String] {
        var values: [String] = []
        for try await value in try await connection.query(query, logger: connection.logger).decode(String.self) { values.append(value) }
        return values
    }

    public func state(roomId: String, now: Date) async throws -> RoomModerationState {
        guard PostgresText.isStorable(roomId) else { return RoomModerationState() }
        return try await database.withStoreConnection { connection in
            var state = RoomModerationState()
            state.moderators = Set(try await Self.strings(connection, "SELECT user_id FROM live_room_moderator WHERE live_room_id = \(roomId)"))
            for try await (userId, until) in try await connection.query(
                "SELECT user_id, until FROM live_room_mute WHERE live_room_id = \(roomId)", logger: connection.logger
            ).decode((String, String).self) {
                if let until = ISOTime.date(until), until > now { state.mutes[userId] = until }
            }
            state.bans = Set(try await Self.strings(connection, "SELECT user_id FROM live_room_ban WHERE live_room_id = \(roomId)"))
            for try await (slow, words, action, links) in try await connection.query("""
                SELECT slow_mode_seconds, blocked_words, blocked_word_action, links_only_from_moderators
                FROM live_room_chat_settings WHERE live_room_id = \(roomId)
                """, logger: connection.logger).decode((Int64, String, String, Bool).self) {
                state.settings = ChatSettings(
                    slowModeSeconds: Int(clamping: slow), blockedWords: SQLiteModerationStore.decodeWords(words),
                    blockedWordAction: ChatSettings.BlockedWordAction(rawValue: action) ?? .hold, linksOnlyFromModerators: links)
            }
            return state
        }
    }

    public func addModerator(roomId: String, userId: String, limit: Int, log: ModerationLogRecord) async throws -> Bool {
        guard PostgresText.isStorable(roomId, userId) else { throw DomainError.malformed("userId may not contain U+0000") }
        return try await database.inTransaction { connection in
            try await Self.lockRoom(connection, roomId)
            if try await Self.count(connection, "SELECT COUNT(*) FROM live_room_moderator WHERE live_room_id = \(roomId) AND user_id = \(userId)") > 0 {
                return false
            }
            guard try await Self.count(connection, "SELECT COUNT(*) FROM live_room_moderator WHERE live_room_id = \(roomId)") < limit else {
                throw DomainError.conflict("a room has at most \(limit) moderators")
            }
            try await connection.query(
                "INSERT INTO live_room_moderator (live_room_id, user_id, created_at) VALUES (\(roomId), \(userId), \(ISOTime.string(log.createdAt)))",
                logger: connection.logger)
            try await Self.writeLog(connection, log)
            return true
        }
    }

    public func removeModerator(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool {
        guard PostgresText.isStorable(roomId, userId) else { return false }
        return try await database.inTransaction { connection in
            let removed = try await connection.query(
                "DELETE FROM live_room_moderator WHERE live_room_id = \(roomId) AND user_id = \(userId) RETURNING user_id", logger: connection.logger
            ).collect()
            guard !removed.isEmpty else { return false }
            try await Self.writeLog(connection, log)
            return true
        }
    }

    public func mute(roomId: String, userId: String, until: Date, now: Date, limit: Int, log: ModerationLogRecord) async throws {
        guard PostgresText.isStorable(roomId, userId) else { throw DomainError.malformed("userId may not contain U+0000") }
        try await database.inTransaction { connection in
            try await Self.lockRoom(connection, roomId)
            try await connection.query(
                "DELETE FROM live_room_mute WHERE live_room_id = \(roomId) AND until <= \(ISOTime.string(now))", logger: connection.logger)
            let exists = try await Self.count(connection, "SELECT COUNT(*) FROM live_room_mute WHERE live_room_id = \(roomId) AND user_id = \(userId)") > 0
            if !exists, try await Self.count(connection, "SELECT COUNT(*) FROM live_room_mute WHERE live_room_id = \(roomId)") >= limit {
                throw DomainError.conflict("a room has at most \(limit) muted users")
            }
            try await connection.query("""
                INSERT INTO live_room_mute (live_room_id, user_id, until) VALUES (\(roomId), \(userId), \(ISOTime.string(until)))
                ON CONFLICT (live_room_id, user_id) DO UPDATE SET until = EXCLUDED.until
                """, logger: connection.logger)
            try await Self.writeLog(connection, log)
        }
    }

    public func unmute(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool {
        guard PostgresText.isStorable(roomId, userId) else { return false }
        return try await database.inTransaction { connection in
            let removed = try await Self.strings(
                connection, "DELETE FROM live_room_mute WHERE live_room_id = \(roomId) AND user_id = \(userId) RETURNING until")
            guard let until = removed.first.flatMap(ISOTime.date), until > log.createdAt else { return false }
            try await Self.writeLog(connection, log)
            return true
        }
    }

    public func ban(roomId: String, userId: String, limit: Int, log: ModerationLogRecord) async throws {
        guard PostgresText.isStorable(roomId, userId) else { throw DomainError.malformed("userId may not contain U+0000") }
        try await database.inTransaction { connection in
            try await Self.lockRoom(connection, roomId)
            if try await Self.count(connection, "SELECT COUNT(*) FROM live_room_ban WHERE live_room_id = \(roomId) AND user_id = \(userId)") > 0 { return }
            guard try await Self.count(connection, "SELECT COUNT(*) FROM live_room_ban WHERE live_room_id = \(roomId)") < limit else {
                throw DomainError.conflict("a room has at most \(limit) banned users")
            }
            try await connection.query(
                "INSERT INTO live_room_ban (live_room_id, user_id, created_at) VALUES (\(roomId), \(userId), \(ISOTime.string(log.createdAt)))",
                logger: connection.logger)
            try await Self.writeLog(connection, log)
        }
    }

    public func unban(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool {
        guard PostgresText.isStorable(roomId, userId) else { return false }
        return try await database.inTransaction { connection in
            let removed = try await connection.query(
                "DELETE FROM live_room_ban WHERE live_room_id = \(roomId) AND user_id = \(userId) RETURNING user_id", logger: connection.logger
            ).collect()
            guard !removed.isEmpty else { return false }
            try await Self.writeLog(connection, log)
            return true
        }
    }

    public func saveSettings(roomId: String, _ settings: ChatSettings, log: ModerationLogRecord) async throws {
        let words = SQLiteModerationStore.encodeWords(settings.blockedWords)
        guard PostgresText.isStorable(roomId, words) else { throw DomainError.malformed("blocked words may not contain U+0000") }
        try await database.inTransaction { connection in
            try await connection.query("""
                INSERT INTO live_room_chat_settings (live_room_id, slow_mode_seconds, blocked_words, blocked_word_action, links_only_from_moderators)
                VALUES (\(roomId), \(Int64(settings.slowModeSeconds)), \(words), \(settings.blockedWordAction.rawValue), \(settings.linksOnlyFromModerators))
                ON CONFLICT (live_room_id) DO UPDATE SET slow_mode_seconds = EXCLUDED.slow_mode_seconds, blocked_words = EXCLUDED.blocked_words,
                  blocked_word_action = EXCLUDED.blocked_word_action, links_only_from_moderators = EXCLUDED.links_only_from_moderators
                """, logger: connection.logger)
            try await Self.writeLog(connection, log)
        }
    }

    public func hold(_ chat: HeldChatRecord, limit: Int) async throws -> Bool {
        guard PostgresText.isStorable(chat.liveRoomId, chat.userId, chat.message) else { return false }
        return try await database.inTransaction { connection in
            try await Self.lockRoom(connection, chat.liveRoomId)
            guard try await Self.count(connection, "SELECT COUNT(*) FROM live_held_chat WHERE live_room_id = \(chat.liveRoomId)") < limit else {
                return false
            }
            try await connection.query("""
                INSERT INTO live_held_chat (id, live_room_id, user_id, username, avatar_url, message, created_at)
                VALUES (\(chat.id), \(chat.liveRoomId), \(chat.userId), \(chat.username), \(chat.avatarUrl), \(chat.message), \(ISOTime.string(chat.createdAt)))
                """, logger: connection.logger)
            return true
        }
    }

    static let heldColumns = "id, live_room_id, user_id, username, avatar_url, message, created_at"

    static func held(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [HeldChatRecord] {
        var held: [HeldChatRecord] = []
        for try await row in try await connection.query(query, logger: connection.logger) {
            let cells = row.makeRandomAccess()
            held.append(HeldChatRecord(
                id: try cells["id"].decode(String.self), liveRoomId: try cells["live_room_id"].decode(String.self),
                userId: try cells["user_id"].decode(String.self), username: try cells["username"].decode(String?.self),
                avatarUrl: try cells["avatar_url"].decode(String?.self), message: try cells["message"].decode(String.self),
                createdAt: try PostgresTime.decode(cells["created_at"].decode(String.self))))
        }
        return held
    }

    public func heldChats(roomId: String) async throws -> [HeldChatRecord] {
        guard PostgresText.isStorable(roomId) else { return [] }
        return try await database.withStoreConnection { connection in
            try await Self.held(connection, "SELECT \(unescaped: Self.heldColumns) FROM live_held_chat WHERE live_room_id = \(roomId) ORDER BY created_at, id")
        }
    }

    public func approveHeld(id: String, roomId: String, line: LiveChatRecord, log: ModerationLogRecord) async throws -> LiveChatRecord? {
        guard PostgresText.isStorable(id, roomId) else { return nil }
        return try await database.inTransaction { connection in
            let removed = try await connection.query(
                "DELETE FROM live_held_chat WHERE id = \(id) AND live_room_id = \(roomId) RETURNING id", logger: connection.logger).collect()
            guard !removed.isEmpty else { return nil }
            let saved = try await PostgresLiveRoomStore.insert(connection, line)
            try await Self.writeLog(connection, log)
            return saved
        }
    }

    public func dropHeld(id: String, roomId: String, log: ModerationLogRecord) async throws -> HeldChatRecord? {
        guard PostgresText.isStorable(id, roomId) else { return nil }
        return try await database.inTransaction { connection in
            guard let held = try await Self.held(
                connection, "DELETE FROM live_held_chat WHERE id = \(id) AND live_room_id = \(roomId) RETURNING \(unescaped: Self.heldColumns)").first
            else { return nil }
            var log = log
            log.targetUserId = held.userId
            log.detail = JSONDetail.encode(["message": .string(held.message)])
            try await Self.writeLog(connection, log)
            return held
        }
    }

    public func deleteChat(chatId: String, roomId: String, tombstone: LiveChatRecord, log: ModerationLogRecord) async throws
        -> (removed: LiveChatRecord, tombstone: LiveChatRecord)? {
        guard PostgresText.isStorable(chatId, roomId) else { return nil }
        return try await database.inTransaction { connection in
            guard let removed = try await PostgresLiveRoomStore.chats(connection, """
                DELETE FROM live_chat WHERE id = \(chatId) AND live_room_id = \(roomId) AND type IN (\(unescaped: LiveChatRecord.lineTypeSQLList))
                RETURNING \(unescaped: PostgresLiveRoomStore.chatColumns)
                """).first else { return nil }
            let saved = try await PostgresLiveRoomStore.insert(connection, tombstone)
            try await Self.writeLog(connection, log)
            return (removed, saved)
        }
    }

    public func log(roomId: String, limit: Int, beforeId: Int64?) async throws -> [ModerationLogRecord] {
        guard PostgresText.isStorable(roomId) else { return [] }
        return try await database.withStoreConnection { connection in
            var entries: [ModerationLogRecord] = []
            for try await row in try await connection.query("""
                SELECT id, live_room_id, actor_id, action, target_user_id, target_chat_id, detail, created_at FROM live_moderation_log
                WHERE live_room_id = \(roomId) AND (\(beforeId)::bigint IS NULL OR id < \(beforeId))
                ORDER BY id DESC LIMIT \(Int64(limit))
                """, logger: connection.logger) {
                let cells = row.makeRandomAccess()
                guard let action = ModerationAction(rawValue: try cells["action"].decode(String.self)) else { continue }
                entries.append(ModerationLogRecord(
                    id: try cells["id"].decode(Int64.self), liveRoomId: try cells["live_room_id"].decode(String.self),
                    actorId: try cells["actor_id"].decode(String.self), action: action,
                    targetUserId: try cells["target_user_id"].decode(String?.self), targetChatId: try cells["target_chat_id"].decode(String?.self),
                    detail: try cells["detail"].decode(String.self), createdAt: try PostgresTime.decode(cells["created_at"].decode(String.self))))
            }
            return entries
        }
    }
}
