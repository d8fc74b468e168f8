import Foundation
import Logging

/// Limits of moderation (README "Moderation"; `LIVEHUB_MODERATION_*`).
public struct ModerationLimits: Sendable, Equatable {
    /// `LIVEHUB_MODERATION_MAX_MODERATORS` (50): moderators per room.
    public var moderatorsPerRoom = 50
    /// `LIVEHUB_MODERATION_MAX_MUTES` (1000): users muted at once per room.
    public var mutesPerRoom = 1000
    /// `LIVEHUB_MODERATION_MAX_BANS` (1000): users banned per room.
    public var bansPerRoom = 1000
    /// `LIVEHUB_MODERATION_MAX_HELD` (200): lines held for review per room; past it a line with a
    /// blocked word is dropped (`BLOCKED_WORD`) instead.
    public var heldPerRoom = 200
    /// `LIVEHUB_MODERATION_CACHE_ROOMS` (1000): rooms whose moderation state the chat path keeps
    /// in memory (least recently used forgotten first).
    public var cachedRooms = 1000
    /// `LIVEHUB_MODERATION_CACHE_TTL_MS` (1000): how long a cached room state is used before it is
    /// read again — how soon a change made on another node takes effect here.
    public var cacheTTL: Duration = .seconds(1)
    /// Users tracked per room for slow mode (a constant): past it, entries older than the slow-mode
    /// window are pruned, then all of them (a few users may post early once).
    public static let slowModeUsersPerRoom = 10_000

    public init() {}
}

/// Why a chat line did not pass moderation (`LiveRoomService.postChat` turns it into a `ChatRefusal`).
enum ModerationVerdict: Equatable, Sendable {
    case allow
    case banned
    case muted(until: Date)
    case slowMode(waitSeconds: Int)
    case linksNotAllowed
    /// Held for review (not broadcast).
    case held
    case blockedWord
}

/// Moderation of live-room chat (issue 22 §3): moderators, mutes, bans, chat settings, held lines
/// and the audit log, persisted in a `ModerationStore`, and the check of every chat line.
///
/// The check runs on the chat's hot path from a bounded in-memory cache of each room's state
/// (`ModerationLimits.cachedRooms`, least recently used forgotten). A change on this node replaces
/// the cached state at once; a change on another node (cluster mode) is seen when the cached state
/// is older than `cacheTTL` (1 s) and is read again — a short-TTL re-read, no broker message.
/// Slow mode counts per node (the last line time per user is kept in memory): a user connected to
/// two nodes may post once per window on each.
public actor ModerationService {
    let rooms: any RoomStore
    let store: any ModerationStore
    let limits: ModerationLimits
    let logger: Logger

    private struct CachedRoom {
        var state: RoomModerationState
        var loadedAt: ContinuousClock.Instant
        var lastUsed: UInt64
        /// `state.settings.blockedWords` as a set, made once per read.
        var blocked: Set<String>
        /// userId → time of their last accepted line (slow mode, this node).
        var lastLine: [String: Date] = [:]
    }

    private var cache: [String: CachedRoom] = [:]
    private var useCounter: UInt64 = 0
    private let clock = ContinuousClock()

    public init(rooms: any RoomStore, store: any ModerationStore, limits: ModerationLimits = ModerationLimits(), logger: Logger) {
        self.rooms = rooms
        self.store = store
        self.limits = limits
        self.logger = logger
    }

    /// Rooms whose state is cached (tests).
    var cachedRoomCount: Int { cache.count }

    // MARK: The chat path

    /// Checks one line of `userId` in `room` (the owner and moderators are exempt from slow mode,
    /// links and blocked words; nobody is exempt from a ban or a mute). An allowed line counts for
    /// slow mode. A held line is stored here (`HELD_FOR_REVIEW`).
    func check(room: RoomRecord, user: AuthUser, message: String, now: Date = Date()) async -> ModerationVerdict {
        guard var entry = await cached(roomId: room.id) else { return .allow }
        let state = entry.state
        let userId = user.userId
        if state.bans.contains(userId) { return .banned }
        if let until = state.mutes[userId], ChatPolicy.isMuted(until: until, now: now) { return .muted(until: until) }
        let privileged = userId == room.shopOwnerId || state.moderators.contains(userId)
        if !privileged {
            if let wait = ChatPolicy.slowModeWait(last: entry.lastLine[userId], seconds: state.settings.slowModeSeconds, now: now) {
                return .slowMode(waitSeconds: wait)
            }
            if state.settings.linksOnlyFromModerators, ChatPolicy.containsLink(message) { return .linksNotAllowed }
            if ChatPolicy.blockedWord(in: message, blocked: entry.blocked) != nil {
                guard state.settings.blockedWordAction == .hold else { return .blockedWord }
                let held = HeldChatRecord(
                    id: UUID().uuidString.lowercased(), liveRoomId: room.id, userId: userId, username: user.username, avatarUrl: user.avatarUrl,
                    message: message, createdAt: now)
                do {
                    return try await store.hold(held, limit: limits.heldPerRoom) ? .held : .blockedWord
                } catch {
                    logger.error("holding a chat line failed", metadata: ["room": "\(room.id)", "error": "\(error)"])
                    return .blockedWord
                }
            }
            if state.settings.slowModeSeconds > 0 {
                entry = cache[room.id] ?? entry
                entry.lastLine[userId] = now
                if entry.lastLine.count > ModerationLimits.slowModeUsersPerRoom {
                    let window = Double(state.settings.slowModeSeconds)
                    entry.lastLine = entry.lastLine.filter { now.timeIntervalSince($0.value) < window }
                    if entry.lastLine.count > ModerationLimits.slowModeUsersPerRoom { entry.lastLine = [userId: now] }
                }
                cache[room.id] = entry
            }
        }
        return .allow
    }

    /// The room's cached state, read again when older than the TTL; nil when the store cannot be
    /// read and nothing is cached (the line then passes: the commit that follows needs the same
    /// database).
    private func cached(roomId: String) async -> CachedRoom? {
        useCounter &+= 1
        let now = clock.now
        if var entry = cache[roomId], now - entry.loadedAt < limits.cacheTTL {
            entry.lastUsed = useCounter
            cache[roomId] = entry
            return entry
        }
        do {
            let state = try await store.state(roomId: roomId, now: Date())
            install(roomId: roomId, state: state)
        } catch {
            logger.warning("moderation state read failed", metadata: ["room": "\(roomId)", "error": "\(error)"])
        }
        return cache[roomId]
    }

    /// Puts a freshly read state in the cache (keeping the slow-mode times), within the room limit.
    private func install(roomId: String, state: RoomModerationState) {
        useCounter &+= 1
        if var entry = cache[roomId] {
            entry.state = state
            entry.blocked = Set(state.settings.blockedWords)
            entry.loadedAt = clock.now
            entry.lastUsed = useCounter
            cache[roomId] = entry
            return
        }
        if cache.count >= limits.cachedRooms, let oldest = cache.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
            cache.removeValue(forKey: oldest)
        }
        cache[roomId] = CachedRoom(state: state, loadedAt: clock.now, lastUsed: useCounter, blocked: Set(state.settings.blockedWords))
    }

    /// After a change made here: the room's state is read again at once.
    private func refresh(roomId: String) async {
        guard cache[roomId] != nil else { return }
        if let state = try? await store.state(roomId: roomId, now: Date()) { install(roomId: roomId, state: state) } else { cache.removeValue(forKey: roomId) }
    }

    /// Forgets an ended room.
    public func roomEnded(_ roomId: String) {
        cache.removeValue(forKey: roomId)
    }

    // MARK: Permissions

    static func isAdmin(_ user: AuthUser) -> Bool { user.roles.contains("ADMIN") || user.roles.contains("ROLE_ADMIN") }

    /// The room, when `user` is its owner or an admin (`DomainError.forbidden` otherwise).
    func requireOwner(roomId: String, user: AuthUser) async throws -> RoomRecord {
        let room = try await rooms.existingRoom(id: roomId)
        guard room.shopOwnerId == user.userId || Self.isAdmin(user) else { throw DomainError.forbidden("only the room's owner may do this") }
        return room
    }

    /// The room, when `user` is its owner, one of its moderators or an admin (read from the store,
    /// not the cache).
    func requireModerator(roomId: String, user: AuthUser) async throws -> RoomRecord {
        let room = try await rooms.existingRoom(id: roomId)
        if room.shopOwnerId == user.userId || Self.isAdmin(user) { return room }
        guard try await store.state(roomId: roomId, now: Date()).moderators.contains(user.userId) else {
            throw DomainError.forbidden("only the room's owner and moderators may do this")
        }
        return room
    }

    static func validUserId(_ userId: String) throws -> String {
        let trimmed = userId.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.unicodeScalars.count <= 128, !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw DomainError.malformed("userId must be 1-128 characters")
        }
        return trimmed
    }

    func logEntry(
        _ action: ModerationAction, roomId: String, actor: AuthUser, targetUserId: String? = nil, targetChatId: String? = nil,
        detail: [String: JSONDetail] = [:], now: Date = Date()
    ) -> ModerationLogRecord {
        ModerationLogRecord(
            id: nil, liveRoomId: roomId, actorId: actor.userId, action: action, targetUserId: targetUserId, targetChatId: targetChatId,
            detail: JSONDetail.encode(detail), createdAt: now)
    }

    // MARK: Moderators

    public func moderators(roomId: String, by user: AuthUser) async throws -> [String] {
        _ = try await requireModerator(roomId: roomId, user: user)
        return try await store.state(roomId: roomId, now: Date()).moderators.sorted()
    }

    public func addModerator(roomId: String, userId rawUserId: String, by user: AuthUser) async throws -> [String] {
        let room = try await requireOwner(roomId: roomId, user: user)
        let userId = try Self.validUserId(rawUserId)
        guard userId != room.shopOwnerId else { throw DomainError.conflict("the owner moderates the room already") }
        _ = try await store.addModerator(
            roomId: roomId, userId: userId, limit: limits.moderatorsPerRoom, log: logEntry(.moderatorAdded, roomId: roomId, actor: user, targetUserId: userId))
        await refresh(roomId: roomId)
        return try await store.state(roomId: roomId, now: Date()).moderators.sorted()
    }

    public func removeModerator(roomId: String, userId rawUserId: String, by user: AuthUser) async throws -> [String] {
        _ = try await requireOwner(roomId: roomId, user: user)
        let userId = try Self.validUserId(rawUserId)
        guard try await store.removeModerator(roomId: roomId, userId: userId, log: logEntry(.moderatorRemoved, roomId: roomId, actor: user, targetUserId: userId)) else {
            throw DomainError.notFound("\(userId) is not a moderator of this room")
        }
        await refresh(roomId: roomId)
        return try await store.state(roomId: roomId, now: Date()).moderators.sorted()
    }

    // MARK: Mutes and bans

    public func mute(roomId: String, userId rawUserId: String, minutes: Int, by user: AuthUser, now: Date = Date()) async throws -> MuteView {
        let room = try await requireModerator(roomId: roomId, user: user)
        let userId = try Self.validUserId(rawUserId)
        guard (1...ChatPolicy.maxMuteMinutes).contains(minutes) else {
            throw DomainError.malformed("minutes must be in 1...\(ChatPolicy.maxMuteMinutes)")
        }
        try await refuseProtected(userId, room: room, what: "muted")
        let until = now.addingTimeInterval(Double(minutes) * 60)
        try await store.mute(
            roomId: roomId, userId: userId, until: until, now: now, limit: limits.mutesPerRoom,
            log: logEntry(.userMuted, roomId: roomId, actor: user, targetUserId: userId,
                          detail: ["minutes": .int(minutes), "until": .string(ISOTime.string(until))], now: now))
        await refresh(roomId: roomId)
        return MuteView(userId: userId, until: ISOTime.string(until))
    }

    public func unmute(roomId: String, userId rawUserId: String, by user: AuthUser) async throws {
        _ = try await requireModerator(roomId: roomId, user: user)
        let userId = try Self.validUserId(rawUserId)
        guard try await store.unmute(roomId: roomId, userId: userId, log: logEntry(.userUnmuted, roomId: roomId, actor: user, targetUserId: userId)) else {
            throw DomainError.notFound("\(userId) is not muted in this room")
        }
        await refresh(roomId: roomId)
    }

    public func mutes(roomId: String, by user: AuthUser, now: Date = Date()) async throws -> [MuteView] {
        _ = try await requireModerator(roomId: roomId, user: user)
        return try await store.state(roomId: roomId, now: now).mutes.sorted { $0.key < $1.key }
            .map { MuteView(userId: $0.key, until: ISOTime.string($0.value)) }
    }

    public func ban(roomId: String, userId rawUserId: String, by user: AuthUser) async throws -> [String] {
        let room = try await requireModerator(roomId: roomId, user: user)
        let userId = try Self.validUserId(rawUserId)
        try await refuseProtected(userId, room: room, what: "banned")
        try await store.ban(roomId: roomId, userId: userId, limit: limits.bansPerRoom, log: logEntry(.userBanned, roomId: roomId, actor: user, targetUserId: userId))
        await refresh(roomId: roomId)
        return try await store.state(roomId: roomId, now: Date()).bans.sorted()
    }

    public func unban(roomId: String, userId rawUserId: String, by user: AuthUser) async throws {
        _ = try await requireModerator(roomId: roomId, user: user)
        let userId = try Self.validUserId(rawUserId)
        guard try await store.unban(roomId: roomId, userId: userId, log: logEntry(.userUnbanned, roomId: roomId, actor: user, targetUserId: userId)) else {
            throw DomainError.notFound("\(userId) is not banned in this room")
        }
        await refresh(roomId: roomId)
    }

    public func bans(roomId: String, by user: AuthUser) async throws -> [String] {
        _ = try await requireModerator(roomId: roomId, user: user)
        return try await store.state(roomId: roomId, now: Date()).bans.sorted()
    }

    /// The owner and moderators cannot be muted or banned (a moderator is removed first).
    private func refuseProtected(_ userId: String, room: RoomRecord, what: String) async throws {
        if userId == room.shopOwnerId { throw DomainError.conflict("the room's owner cannot be \(what)") }
        if try await store.state(roomId: room.id, now: Date()).moderators.contains(userId) {
            throw DomainError.conflict("a moderator cannot be \(what); remove them as moderator first")
        }
    }

    // MARK: Settings

    public func settings(roomId: String, by user: AuthUser) async throws -> ChatSettings {
        _ = try await requireModerator(roomId: roomId, user: user)
        return try await store.state(roomId: roomId, now: Date()).settings
    }

    public func saveSettings(roomId: String, _ requested: ChatSettings, by user: AuthUser) async throws -> ChatSettings {
        _ = try await requireModerator(roomId: roomId, user: user)
        let settings = try ChatPolicy.validated(requested)
        try await store.saveSettings(
            roomId: roomId, settings,
            log: logEntry(.settingsChanged, roomId: roomId, actor: user, detail: [
                "slowModeSeconds": .int(settings.slowModeSeconds), "blockedWords": .int(settings.blockedWords.count),
                "blockedWordAction": .string(settings.blockedWordAction.rawValue), "linksOnlyFromModerators": .bool(settings.linksOnlyFromModerators),
            ]))
        await refresh(roomId: roomId)
        return settings
    }

    // MARK: Held lines and the log

    public func heldChats(roomId: String, by user: AuthUser) async throws -> [HeldChatView] {
        _ = try await requireModerator(roomId: roomId, user: user)
        return try await store.heldChats(roomId: roomId).map(HeldChatView.init)
    }

    public func dropHeld(roomId: String, heldId: String, by user: AuthUser) async throws {
        _ = try await requireModerator(roomId: roomId, user: user)
        guard try await store.dropHeld(id: heldId, roomId: roomId, log: logEntry(.heldDropped, roomId: roomId, actor: user, targetChatId: heldId)) != nil else {
            throw DomainError.notFound("no held line \(heldId) in this room")
        }
    }

    public func log(roomId: String, limit: Int, beforeId: Int64?, by user: AuthUser) async throws -> [ModerationLogView] {
        _ = try await requireModerator(roomId: roomId, user: user)
        return try await store.log(roomId: roomId, limit: limit, beforeId: beforeId).map(ModerationLogView.init)
    }
}

/// A value of a log entry's `detail` object.
enum JSONDetail: Encodable, Sendable {
    case int(Int)
    case string(String)
    case bool(Bool)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }

    static func encode(_ detail: [String: JSONDetail]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(detail)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}

public struct MuteView: Codable, Sendable, Equatable {
    public var userId: String
    public var until: String
}

public struct HeldChatView: Codable, Sendable, Equatable {
    public var id: String
    public var liveRoomId: String
    public var userId: String
    public var username: String?
    public var avatarUrl: String?
    public var message: String
    public var createdAt: String

    init(_ record: HeldChatRecord) {
        id = record.id
        liveRoomId = record.liveRoomId
        userId = record.userId
        username = record.username
        avatarUrl = record.avatarUrl
        message = record.message
        createdAt = ISOTime.string(record.createdAt)
    }
}

/// One entry of `GET /rooms/{id}/moderation-log`.
public struct ModerationLogView: Encodable, Sendable {
    public var id: Int64
    public var roomId: String
    public var actorId: String
    public var action: String
    public var targetUserId: String?
    public var targetChatId: String?
    public var detail: JSONObjectText
    public var createdAt: String

    init(_ record: ModerationLogRecord) {
        id = record.id ?? 0
        roomId = record.liveRoomId
        actorId = record.actorId
        action = record.action.rawValue
        targetUserId = record.targetUserId
        targetChatId = record.targetChatId
        detail = JSONObjectText(text: record.detail)
        createdAt = ISOTime.string(record.createdAt)
    }
}

/// A stored JSON object written back as JSON (not as a string).
public struct JSONObjectText: Encodable, Sendable {
    var text: String

    public func encode(to encoder: any Encoder) throws {
        let object = (try? JSONDecoder().decode([String: JSONScalar].self, from: Data(text.utf8))) ?? [:]
        var container = encoder.singleValueContainer()
        try container.encode(object)
    }
}

/// A scalar of a log entry's `detail`.
enum JSONScalar: Codable, Sendable {
    case int(Int64)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null } else if let value = try? container.decode(Bool.self) { self = .bool(value) } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) { self = .double(value) } else { self = .string(try container.decode(String.self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}
