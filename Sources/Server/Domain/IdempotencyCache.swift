import Foundation

/// `LIVEHUB_IDEMPOTENCY_KEYS_PER_USER` / `LIVEHUB_IDEMPOTENCY_KEYS_TOTAL`.
public struct IdempotencyLimits: Sendable, Hashable {
    /// Answers remembered per user; one more forgets that user's oldest.
    public var perUser: Int
    /// Answers remembered in all; beyond it the least recently active users are forgotten.
    public var total: Int
    /// How long an answer is remembered.
    public var lifetime: TimeInterval

    public init(perUser: Int = 100, total: Int = 10_000, lifetime: TimeInterval = 86_400) {
        self.perUser = max(1, perUser)
        self.total = max(1, total)
        self.lifetime = lifetime
    }
}

/// Answers remembered by `Idempotency-Key` (issue 17): scoped to (user, scope, key), so one key
/// reused for another notification or by another user is a new request; a client chooses the keys,
/// so they are bounded per user (oldest forgotten first) and in all (the least recently active
/// users' keys forgotten first, down to 90 % so that eviction is not paid on every request), and
/// expire after `lifetime`. A pure value: time passed in.
struct IdempotencyCache<Answer> {
    let limits: IdempotencyLimits

    private struct Remembered {
        var answer: Answer
        var at: Date
        /// Insertion order within the user (the oldest has the smallest).
        var order: UInt64
    }

    private struct UserKeys {
        /// "scope \u{1F} key" → answer
        var answers: [String: Remembered] = [:]
        var lastUsed: UInt64 = 0
    }

    private var users: [String: UserKeys] = [:]
    private var counter: UInt64 = 0
    /// Answers remembered in all.
    private(set) var count = 0

    init(limits: IdempotencyLimits) {
        self.limits = limits
    }

    private static func slot(_ scope: String, _ key: String) -> String { "\(scope)\u{1F}\(key)" }

    /// What was answered to (user, scope, key) within `lifetime`, if remembered.
    mutating func answer(user: String, scope: String, key: String, now: Date) -> Answer? {
        guard let remembered = self.users[user]?.answers[Self.slot(scope, key)] else { return nil }
        guard now.timeIntervalSince(remembered.at) < self.limits.lifetime else { return nil }
        self.counter += 1
        self.users[user]?.lastUsed = self.counter
        return remembered.answer
    }

    mutating func remember(_ answer: Answer, user: String, scope: String, key: String, now: Date) {
        self.counter += 1
        var keys = self.users.removeValue(forKey: user) ?? UserKeys()
        let before = keys.answers.count
        keys.lastUsed = self.counter
        keys.answers[Self.slot(scope, key)] = Remembered(answer: answer, at: now, order: self.counter)
        if keys.answers.count > self.limits.perUser {
            keys.answers = keys.answers.filter { now.timeIntervalSince($0.value.at) < self.limits.lifetime }
            while keys.answers.count > self.limits.perUser, let oldest = keys.answers.min(by: { $0.value.order < $1.value.order }) {
                keys.answers.removeValue(forKey: oldest.key)
            }
        }
        self.count += keys.answers.count - before
        self.users[user] = keys
        if self.count > self.limits.total { self.evict(now: now) }
    }

    private mutating func recount() {
        self.count = self.users.values.reduce(0) { $0 + $1.answers.count }
    }

    /// Over `total`: drop expired answers, then whole users, least recently active first, until
    /// at most 90 % of `total` remain.
    private mutating func evict(now: Date) {
        for (user, var keys) in self.users {
            keys.answers = keys.answers.filter { now.timeIntervalSince($0.value.at) < self.limits.lifetime }
            self.users[user] = keys.answers.isEmpty ? nil : keys
        }
        self.recount()
        let target = self.limits.total - self.limits.total / 10
        guard self.count > target else { return }
        for (user, keys) in self.users.sorted(by: { $0.value.lastUsed < $1.value.lastUsed }) {
            guard self.count > target else { break }
            self.users.removeValue(forKey: user)
            self.count -= keys.answers.count
        }
    }

    /// Users with remembered answers (tests).
    var userCount: Int { self.users.count }
}
