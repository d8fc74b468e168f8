import Foundation
import Logging

/// A bell notification as the API and the Socket.IO push show it.
public struct NotificationView: Codable, Sendable, Equatable {
    public var id: String
    public var userId: String
    public var type: String
    public var title: String
    public var body: String?
    public var createdAt: String
    public var readAt: String?

    init(_ record: NotificationRecord) {
        id = record.id
        userId = record.userId
        type = record.type
        title = record.title
        body = record.body
        createdAt = ISOTime.string(record.createdAt)
        readAt = record.readAt.map(ISOTime.string)
    }
}

/// `POST /internal/notifications`.
public struct CreateNotificationRequest: Codable, Sendable {
    public var userId: FlexibleID
    public var type: String
    public var title: String
    public var body: String?
}

/// `GET /v1/notifications`: a page, newest first, with the cursor of the next page.
public struct NotificationPage: Codable, Sendable {
    public var items: [NotificationView]
    public var nextCursor: String?
}

/// Storage of the bell, declared by the domain.
public protocol NotificationStore: Sendable {
    func insert(_ notification: NotificationRecord) async throws -> NotificationRecord
    /// Newest first, `seq` below `beforeSeq` when given.
    func list(userId: String, limit: Int, beforeSeq: Int64?) async throws -> [NotificationRecord]
    func unreadCount(userId: String) async throws -> Int
    /// Marks one of the user's notifications read (keeps the first `readAt`); nil when not the user's.
    func markRead(id: String, userId: String, at: Date) async throws -> (notification: NotificationRecord, changed: Bool)?
    /// Marks every unread notification of the user read; returns how many changed.
    func markAllRead(userId: String, at: Date) async throws -> Int
}

/// What changed on a user's bell; the hub pushes it to every socket of that user.
public enum BellEvent: Sendable {
    case created(NotificationView, unreadCount: Int)
    case read(notificationId: String, unreadCount: Int)
    case readAll(unreadCount: Int)
}

/// The per-user notification bell (DESIGN.md "Notification bell").
public actor NotificationService {
    let store: any NotificationStore
    let logger: Logger
    /// Where every change goes (the Server's `RealtimeWiring.bellPush`: every tab of the user).
    private let push: BellPush
    /// Answers of `POST /{id}/read` by (user, notification, Idempotency-Key), kept for a day,
    /// bounded per user and in all.
    private var idempotent: IdempotencyCache<ReadOutcome>
    /// Cluster mode (issue 20): the answers are kept in the database too, so that a retry on
    /// another node answers the same (`PostgresIdempotencyStore`); nil on one node.
    private var shared: (any SharedIdempotencyStore)?

    public struct ReadOutcome: Codable, Sendable, Equatable {
        public var notificationId: String?
        public var unreadCount: Int
        public var changed: Int
    }

    public typealias BellPush = @Sendable (_ userId: String, _ event: BellEvent) async -> Void

    public init(store: any NotificationStore, idempotencyLimits: IdempotencyLimits = .init(), logger: Logger, push: @escaping BellPush) {
        self.store = store
        self.push = push
        self.idempotent = IdempotencyCache(limits: idempotencyLimits)
        self.logger = logger
    }

    /// Cluster mode: `Idempotency-Key` answers shared by every node.
    func attachSharedIdempotency(_ store: any SharedIdempotencyStore) {
        shared = store
    }

    /// Remembered `Idempotency-Key` answers (tests).
    var rememberedIdempotencyKeys: Int { idempotent.count }

    public func create(_ request: CreateNotificationRequest, now: Date = Date()) async throws -> NotificationView {
        let userId = request.userId.value
        guard !userId.isEmpty, userId.count <= 200 else { throw DomainError.invalid("userId must be 1-200 characters") }
        let type = request.type.trimmingCharacters(in: .whitespaces)
        guard !type.isEmpty, type.count <= 64 else { throw DomainError.invalid("type must be 1-64 characters") }
        let title = request.title.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty, title.count <= 500 else { throw DomainError.invalid("title must be 1-500 characters") }
        if let body = request.body, body.count > 5000 { throw DomainError.invalid("body must be at most 5000 characters") }
        return try await notify(userId: userId, type: type, title: title, body: request.body, now: now)
    }

    /// Stores and pushes a notification (also used in-process: orders, "You are live").
    @discardableResult
    public func notify(userId: String, type: String, title: String, body: String?, now: Date = Date()) async throws -> NotificationView {
        let record = try await store.insert(NotificationRecord(
            seq: nil, id: UUID().uuidString.lowercased(), userId: userId, type: type, title: title, body: body,
            createdAt: now, readAt: nil))
        let view = NotificationView(record)
        let unread = try await store.unreadCount(userId: userId)
        await push(userId, .created(view, unreadCount: unread))
        return view
    }

    /// Cursor pagination: the cursor is the opaque `seq` of the last item of the previous page.
    public func list(userId: String, limit: Int, cursor: String?) async throws -> NotificationPage {
        var beforeSeq: Int64?
        if let cursor {
            guard let decoded = Int64(cursor), decoded > 0 else { throw DomainError.malformed("cursor is not valid") }
            beforeSeq = decoded
        }
        let records = try await store.list(userId: userId, limit: limit + 1, beforeSeq: beforeSeq)
        let page = Array(records.prefix(limit))
        let next = records.count > limit ? page.last?.seq.map(String.init) : nil
        return NotificationPage(items: page.map(NotificationView.init), nextCursor: next)
    }

    public func unreadCount(userId: String) async throws -> Int {
        try await store.unreadCount(userId: userId)
    }

    /// Idempotent: reading twice changes nothing the second time (and pushes nothing). With an
    /// `Idempotency-Key`, the same (user, notification, key) answers what it answered the first
    /// time, for a day (`IdempotencyCache`: the oldest keys are forgotten beyond the limits).
    public func markRead(id: String, userId: String, idempotencyKey: String? = nil, now: Date = Date()) async throws -> ReadOutcome {
        if let idempotencyKey, let outcome = idempotent.answer(user: userId, scope: id, key: idempotencyKey, now: now) { return outcome }
        if let idempotencyKey, let shared, let stored = try await shared.answer(user: userId, scope: id, key: idempotencyKey),
            let outcome = try? JSONDecoder().decode(ReadOutcome.self, from: stored)
        {
            idempotent.remember(outcome, user: userId, scope: id, key: idempotencyKey, now: now)
            return outcome
        }
        guard let (_, changed) = try await store.markRead(id: id, userId: userId, at: now) else {
            throw DomainError.notFound("no notification \(id) for this user")
        }
        let unread = try await store.unreadCount(userId: userId)
        let outcome = ReadOutcome(notificationId: id, unreadCount: unread, changed: changed ? 1 : 0)
        if changed { await push(userId, .read(notificationId: id, unreadCount: unread)) }
        guard let idempotencyKey else { return outcome }
        var kept = outcome
        if let shared, let stored = try? await shared.remember(JSONEncoder().encode(outcome), user: userId, scope: id, key: idempotencyKey) {
            kept = (try? JSONDecoder().decode(ReadOutcome.self, from: stored)) ?? outcome  // another node's answer first: that one
        }
        idempotent.remember(kept, user: userId, scope: id, key: idempotencyKey, now: now)
        return kept
    }

    public func markAllRead(userId: String, now: Date = Date()) async throws -> ReadOutcome {
        let changed = try await store.markAllRead(userId: userId, at: now)
        let unread = try await store.unreadCount(userId: userId)
        if changed > 0 { await push(userId, .readAll(unreadCount: unread)) }
        return ReadOutcome(notificationId: nil, unreadCount: unread, changed: changed)
    }
}
