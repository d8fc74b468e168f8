import Foundation
import GRDB

/// `ModerationStore` on the embedded SQLite database (migration `v5-moderation`); every method
/// is one transaction, and every change writes its log entry in it.
public struct SQLiteModerationStore: ModerationStore {
    let database: AppDatabase

    public init(database: AppDatabase) {
        self.database = database
    }

    /// The tables of `v5-moderation` (never edited after it ships).
    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE live_room_moderator (
                liveRoomId TEXT NOT NULL REFERENCES room(id) ON DELETE CASCADE,
                userId TEXT NOT NULL,
                createdAt TEXT NOT NULL,
                PRIMARY KEY (liveRoomId, userId)
            );
            CREATE TABLE live_room_mute (
                liveRoomId TEXT NOT NULL REFERENCES room(id) ON DELETE CASCADE,
                userId TEXT NOT NULL,
                "until" TEXT NOT NULL,
                PRIMARY KEY (liveRoomId, userId)
            );
            CREATE TABLE live_room_ban (
                liveRoomId TEXT NOT NULL REFERENCES room(id) ON DELETE CASCADE,
                userId TEXT NOT NULL,
                createdAt TEXT NOT NULL,
                PRIMARY KEY (liveRoomId, userId)
            );
            CREATE TABLE live_room_chat_settings (
                liveRoomId TEXT PRIMARY KEY REFERENCES room(id) ON DELETE CASCADE,
                slowModeSeconds INTEGER NOT NULL DEFAULT 0,
                blockedWords TEXT NOT NULL DEFAULT '[]',
                blockedWordAction TEXT NOT NULL DEFAULT 'hold',
                linksOnlyFromModerators BOOLEAN NOT NULL DEFAULT 0
            );
            CREATE TABLE live_held_chat (
                id TEXT PRIMARY KEY,
                liveRoomId TEXT NOT NULL REFERENCES room(id) ON DELETE CASCADE,
                userId TEXT NOT NULL,
                username TEXT,
                avatarUrl TEXT,
                message TEXT NOT NULL,
                createdAt TEXT NOT NULL
            );
            CREATE INDEX live_held_chat_on_room ON live_held_chat(liveRoomId, createdAt);
            CREATE TABLE live_moderation_log (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                liveRoomId TEXT NOT NULL REFERENCES room(id) ON DELETE CASCADE,
                actorId TEXT NOT NULL,
                action TEXT NOT NULL,
                targetUserId TEXT,
                targetChatId TEXT,
                detail TEXT NOT NULL,
                createdAt TEXT NOT NULL
            );
            CREATE INDEX live_moderation_log_on_room ON live_moderation_log(liveRoomId, id);
            """)
    }

    static func writeLog(_ db: Database, _ entry: ModerationLogRecord) throws {
        try db.execute(
            sql: "INSERT INTO live_moderation_log (liveRoomId, actorId, action, targetUserId, targetChatId, detail, createdAt) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [entry.liveRoomId, entry.actorId, entry.action.rawValue, entry.targetUserId, entry.targetChatId, entry.detail, ISOTime.string(entry.createdAt)])
    }

    static func decodeWords(_ text: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
    }

    static func encodeWords(_ words: [String]) -> String {
        (try? JSONEncoder().encode(words)).flatMap { String(data: $0, encoding: .utf8) } ?? "[]"
    }

    public func state(roomId: String, now: Date) async throws -> RoomModerationState {
        try await database.writer.read { db in
            var state = RoomModerationState()
            state.moderators = Set(try String.fetchAll(db, sql: "SELECT userId FROM live_room_moderator WHERE liveRoomId = ?", arguments: [roomId]))
            for row in try Row.fetchAll(db, sql: #"SELECT userId, "until" FROM live_room_mute WHERE liveRoomId = ?"#, arguments: [roomId]) {
                if let until = ISOTime.date(row["until"]), until > now { state.mutes[row["userId"]] = until }
            }
            state.bans = Set(try String.fetchAll(db, sql: "SELECT userId FROM live_room_ban WHERE liveRoomId = ?", arguments: [roomId]))
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM live_room_chat_settings WHERE liveRoomId = ?", arguments: [roomId]) {
                state.settings = ChatSettings(
                    slowModeSeconds: row["slowModeSeconds"], blockedWords: Self.decodeWords(row["blockedWords"]),
                    blockedWordAction: ChatSettings.BlockedWordAction(rawValue: row["blockedWordAction"]) ?? .hold,
                    linksOnlyFromModerators: row["linksOnlyFromModerators"])
            }
            return state
        }
    }

    private func count(_ db: Database, _ table: String, roomId: String) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table) WHERE liveRoomId = ?", arguments: [roomId]) ?? 0
    }

    public func addModerator(roomId: String, userId: String, limit: Int, log: ModerationLogRecord) async throws -> Bool {
        try await database.writer.write { db in
            if try Int.fetchOne(db, sql: "SELECT 1 FROM live_room_moderator WHERE liveRoomId = ? AND userId = ?", arguments: [roomId, userId]) != nil {
                return false
            }
            guard try count(db, "live_room_moderator", roomId: roomId) < limit else {
                throw DomainError.conflict("a room has at most \(limit) moderators")
            }
            try db.execute(sql: "INSERT INTO live_room_moderator (liveRoomId, userId, createdAt) VALUES (?, ?, ?)", arguments: [roomId, userId, ISOTime.string(log.createdAt)])
            try Self.writeLog(db, log)
            return true
        }
    }

    public func removeModerator(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool {
        try await database.writer.write { db in
            try db.execute(sql: "DELETE FROM live_room_moderator WHERE liveRoomId = ? AND userId = ?", arguments: [roomId, userId])
            guard db.changesCount == 1 else { return false }
            try Self.writeLog(db, log)
            return true
        }
    }

    public func mute(roomId: String, userId: String, until: Date, now: Date, limit: Int, log: ModerationLogRecord) async throws {
        try await database.writer.write { db in
            try db.execute(sql: #"DELETE FROM live_room_mute WHERE liveRoomId = ? AND "until" <= ?"#, arguments: [roomId, ISOTime.string(now)])
            let exists = try Int.fetchOne(db, sql: "SELECT 1 FROM live_room_mute WHERE liveRoomId = ? AND userId = ?", arguments: [roomId, userId]) != nil
            if !exists, try count(db, "live_room_mute", roomId: roomId) >= limit {
                throw DomainError.conflict("a room has at most \(limit) muted users")
            }
            try db.execute(
                sql: #"INSERT INTO live_room_mute (liveRoomId, userId, "until") VALUES (?, ?, ?) ON CONFLICT (liveRoomId, userId) DO UPDATE SET "until" = excluded."until""#,
                arguments: [roomId, userId, ISOTime.string(until)])
            try Self.writeLog(db, log)
        }
    }

    public func unmute(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool {
        try await database.writer.write { db in
            try db.execute(sql: #"DELETE FROM live_room_mute WHERE liveRoomId = ? AND userId = ? AND "until" > ?"#, arguments: [roomId, userId, ISOTime.string(log.createdAt)])
            let lifted = db.changesCount == 1
            try db.execute(sql: "DELETE FROM live_room_mute WHERE liveRoomId = ? AND userId = ?", arguments: [roomId, userId])
            if lifted { try Self.writeLog(db, log) }
            return lifted
        }
    }

    public func ban(roomId: String, userId: String, limit: Int, log: ModerationLogRecord) async throws {
        try await database.writer.write { db in
            if try Int.fetchOne(db, sql: "SELECT 1 FROM live_room_ban WHERE liveRoomId = ? AND userId = ?", arguments: [roomId, userId]) != nil { return }
            guard try count(db, "live_room_ban", roomId: roomId) < limit else {
                throw DomainError.conflict("a room has at most \(limit) banned users")
            }
            try db.execute(sql: "INSERT INTO live_room_ban (liveRoomId, userId, createdAt) VALUES (?, ?, ?)", arguments: [roomId, userId, ISOTime.string(log.createdAt)])
            try Self.writeLog(db, log)
        }
    }

    public func unban(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool {
        try await database.writer.write { db in
            try db.execute(sql: "DELETE FROM live_room_ban WHERE liveRoomId = ? AND userId = ?", arguments: [roomId, userId])
            guard db.changesCount == 1 else { return false }
            try Self.writeLog(db, log)
            return true
        }
    }

    public func saveSettings(roomId: String, _ settings: ChatSettings, log: ModerationLogRecord) async throws {
        try await database.writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO live_room_chat_settings (liveRoomId, slowModeSeconds, blockedWords, blockedWordAction, linksOnlyFromModerators)
                    VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (liveRoomId) DO UPDATE SET slowModeSeconds = excluded.slowModeSeconds, blockedWords = excluded.blockedWords,
                      blockedWordAction = excluded.blockedWordAction, linksOnlyFromModerators = excluded.linksOnlyFromModerators
                    """,
                arguments: [roomId, settings.slowModeSeconds, Self.encodeWords(settings.blockedWords), settings.blockedWordAction.rawValue, settings.linksOnlyFromModerators])
            try Self.writeLog(db, log)
        }
    }

    public func hold(_ chat: HeldChatRecord, limit: Int) async throws -> Bool {
        try await database.writer.write { db in
            guard try count(db, "live_held_chat", roomId: chat.liveRoomId) < limit else { return false }
            try db.execute(
                sql: "INSERT INTO live_held_chat (id, liveRoomId, userId, username, avatarUrl, message, createdAt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [chat.id, chat.liveRoomId, chat.userId, chat.username, chat.avatarUrl, chat.message, ISOTime.string(chat.createdAt)])
            return true
        }
    }

    static func held(_ row: Row) -> HeldChatRecord {
        HeldChatRecord(
            id: row["id"], liveRoomId: row["liveRoomId"], userId: row["userId"], username: row["username"], avatarUrl: row["avatarUrl"],
            message: row["message"], createdAt: ISOTime.date(row["createdAt"]) ?? Date(timeIntervalSince1970: 0))
    }

    public func heldChats(roomId: String) async throws -> [HeldChatRecord] {
        try await database.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM live_held_chat WHERE liveRoomId = ? ORDER BY createdAt, id", arguments: [roomId]).map(Self.held)
        }
    }

    public func approveHeld(id: String, roomId: String, line: LiveChatRecord, log: ModerationLogRecord) async throws -> LiveChatRecord? {
        try await database.writer.write { db in
            try db.execute(sql: "DELETE FROM live_held_chat WHERE id = ? AND liveRoomId = ?", arguments: [id, roomId])
            guard db.changesCount == 1 else { return nil }
            var line = line
            try line.insert(db)
            try Self.writeLog(db, log)
            return line
        }
    }

    public func dropHeld(id: String, roomId: String, log: ModerationLogRecord) async throws -> HeldChatRecord? {
        try await database.writer.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM live_held_chat WHERE id = ? AND liveRoomId = ?", arguments: [id, roomId]) else { return nil }
            try db.execute(sql: "DELETE FROM live_held_chat WHERE id = ?", arguments: [id])
            var log = log
            log.targetUserId = row["userId"]
            log.detail = JSONDetail.encode(["message": .string(row["message"])])
            try Self.writeLog(db, log)
            return Self.held(row)
        }
    }

    public func deleteChat(chatId: String, roomId: String, tombstone: LiveChatRecord, log: ModerationLogRecord) async throws
        -> (removed: LiveChatRecord, tombstone: LiveChatRecord)? {
        try await database.writer.write { db in
            guard let removed = try LiveChatRecord.filter(
                Column("id") == chatId && Column("liveRoomId") == roomId && LiveChatRecord.lineTypes.contains(Column("type"))).fetchOne(db) else { return nil }
            try db.execute(sql: "DELETE FROM live_chat WHERE id = ?", arguments: [chatId])
            var tombstone = tombstone
            try tombstone.insert(db)
            try Self.writeLog(db, log)
            return (removed, tombstone)
        }
    }

    public func log(roomId: String, limit: Int, beforeId: Int64?) async throws -> [ModerationLogRecord] {
        try await database.writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM live_moderation_log WHERE liveRoomId = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
                arguments: [roomId, beforeId, beforeId, limit]
            ).compactMap { row in
                guard let action = ModerationAction(rawValue: row["action"]) else { return nil }
                return ModerationLogRecord(
                    id: row["id"], liveRoomId: row["liveRoomId"], actorId: row["actorId"], action: action, targetUserId: row["targetUserId"],
                    targetChatId: row["targetChatId"], detail: row["detail"], createdAt: ISOTime.date(row["createdAt"]) ?? Date(timeIntervalSince1970: 0))
            }
        }
    }
}
