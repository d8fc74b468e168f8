import Foundation

/// What a room's chat allows (`PUT /rooms/{id}/chat-settings`, issue 22 §3).
public struct ChatSettings: Codable, Sendable, Equatable {
    /// What happens to a line with a blocked word.
    public enum BlockedWordAction: String, Codable, Sendable, CaseIterable {
        /// Kept aside until the owner or a moderator approves or drops it (`HELD_FOR_REVIEW`).
        case hold
        /// Refused at once (`BLOCKED_WORD`).
        case drop
    }

    /// One line per this many seconds per user (0 = off); owner and moderators are exempt.
    public var slowModeSeconds: Int
    /// Whole words (case-insensitive), lowercased when stored.
    public var blockedWords: [String]
    public var blockedWordAction: BlockedWordAction
    /// Links only from the owner and moderators (`LINKS_NOT_ALLOWED` for everyone else).
    public var linksOnlyFromModerators: Bool

    public init(slowModeSeconds: Int = 0, blockedWords: [String] = [], blockedWordAction: BlockedWordAction = .hold, linksOnlyFromModerators: Bool = false) {
        self.slowModeSeconds = slowModeSeconds
        self.blockedWords = blockedWords
        self.blockedWordAction = blockedWordAction
        self.linksOnlyFromModerators = linksOnlyFromModerators
    }

    public static let off = ChatSettings()
}

/// Everything the chat's hot path needs to know of one room, read in one go from the store and
/// kept by `ModerationService`'s cache.
public struct RoomModerationState: Sendable, Equatable {
    public var moderators: Set<String> = []
    /// userId → end of the mute (expired mutes may still be listed; compare with now).
    public var mutes: [String: Date] = [:]
    public var bans: Set<String> = []
    public var settings: ChatSettings = .off

    public init(moderators: Set<String> = [], mutes: [String: Date] = [:], bans: Set<String> = [], settings: ChatSettings = .off) {
        self.moderators = moderators
        self.mutes = mutes
        self.bans = bans
        self.settings = settings
    }
}

/// A line with a blocked word kept aside for review (`live_held_chat`).
public struct HeldChatRecord: Codable, Sendable, Equatable {
    public var id: String
    public var liveRoomId: String
    public var userId: String
    public var username: String?
    public var avatarUrl: String?
    public var message: String
    public var createdAt: Date
}

/// One entry of a room's moderation audit list (`live_moderation_log`); `detail` is a JSON object.
public struct ModerationLogRecord: Sendable, Equatable {
    public var id: Int64?
    public var liveRoomId: String
    public var actorId: String
    public var action: ModerationAction
    public var targetUserId: String?
    public var targetChatId: String?
    public var detail: String
    public var createdAt: Date
}

/// What an entry of the moderation log records.
public enum ModerationAction: String, Codable, Sendable, CaseIterable {
    case moderatorAdded = "MODERATOR_ADDED"
    case moderatorRemoved = "MODERATOR_REMOVED"
    case chatDeleted = "CHAT_DELETED"
    case userMuted = "USER_MUTED"
    case userUnmuted = "USER_UNMUTED"
    case userBanned = "USER_BANNED"
    case userUnbanned = "USER_UNBANNED"
    case settingsChanged = "SETTINGS_CHANGED"
    case heldApproved = "HELD_APPROVED"
    case heldDropped = "HELD_DROPPED"
}

/// Storage of moderation (issue 22 §3), declared by the domain; SQLite (`v5-moderation`) and
/// PostgreSQL (`store-v5-moderation`). Every change writes its `log` entry in the same
/// transaction, so the audit list never misses an action that took effect.
public protocol ModerationStore: Sendable {
    /// Moderators, active mutes (`until > now`), bans and settings of a room: one read.
    func state(roomId: String, now: Date) async throws -> RoomModerationState
    /// Adds a moderator; false when already one. Throws `DomainError.conflict` past `limit`.
    func addModerator(roomId: String, userId: String, limit: Int, log: ModerationLogRecord) async throws -> Bool
    /// False when not a moderator (nothing logged).
    func removeModerator(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool
    /// Mutes until `until` (replacing an earlier mute of the user); expired mutes of the room are
    /// pruned first. Throws `DomainError.conflict` when `limit` users are already muted.
    func mute(roomId: String, userId: String, until: Date, now: Date, limit: Int, log: ModerationLogRecord) async throws
    func unmute(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool
    /// Bans (idempotent). Throws `DomainError.conflict` when `limit` users are already banned.
    func ban(roomId: String, userId: String, limit: Int, log: ModerationLogRecord) async throws
    func unban(roomId: String, userId: String, log: ModerationLogRecord) async throws -> Bool
    func saveSettings(roomId: String, _ settings: ChatSettings, log: ModerationLogRecord) async throws
    /// Keeps a line for review; false (nothing stored) when the room already holds `limit`.
    func hold(_ chat: HeldChatRecord, limit: Int) async throws -> Bool
    /// Held lines of a room, oldest first.
    func heldChats(roomId: String) async throws -> [HeldChatRecord]
    /// Approves a held line: removes it and inserts `line` (its CHAT row) — one transaction.
    /// Returns the line with its `seq`, nil when no such held line in the room.
    func approveHeld(id: String, roomId: String, line: LiveChatRecord, log: ModerationLogRecord) async throws -> LiveChatRecord?
    /// Drops a held line; nil when no such held line in the room.
    func dropHeld(id: String, roomId: String, log: ModerationLogRecord) async throws -> HeldChatRecord?
    /// A moderator's delete (issue 22 contract): removes the line (`CHAT`/`ORDER` row of the room)
    /// and inserts `tombstone` (`type DELETED`, `message` = the line's id) — one transaction.
    /// Returns the removed line and the tombstone with its `seq`; nil when no such line.
    func deleteChat(chatId: String, roomId: String, tombstone: LiveChatRecord, log: ModerationLogRecord) async throws
        -> (removed: LiveChatRecord, tombstone: LiveChatRecord)?
    /// Newest first; `beforeId` = entries older than that id.
    func log(roomId: String, limit: Int, beforeId: Int64?) async throws -> [ModerationLogRecord]
}
