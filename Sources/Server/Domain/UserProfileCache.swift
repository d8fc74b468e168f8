import Foundation

/// Chat names and avatars from the user service for tokens that carry none (issue 19; README
/// "Lookups in other services"). A chat line is never held for a lookup: `fill` answers from the
/// cache at once, and on a miss starts the lookup in the background and answers the token's claims
/// (`username` = the user id); the lines after the lookup has finished carry the looked-up details.
///
/// Bounded: at most `entries` users (the oldest stored forgotten first), each for `ttl`; a failed
/// lookup is remembered for `failureTTL` (the service is not asked again for that user at every
/// line); at most `maxInFlight` lookups run at once (a miss beyond that is not looked up this time).
public actor UserProfileCache {
    public struct Limits: Sendable, Equatable {
        public var entries: Int
        public var ttl: Duration
        public var maxInFlight: Int
        public var failureTTL: Duration

        public init(entries: Int = 10_000, ttl: Duration = .seconds(300), maxInFlight: Int = 16, failureTTL: Duration = .seconds(10)) {
            self.entries = max(1, entries)
            self.ttl = ttl
            self.maxInFlight = max(1, maxInFlight)
            self.failureTTL = min(failureTTL, ttl)
        }
    }

    private struct Entry {
        var profile: UserProfile?
        var expires: ContinuousClock.Instant
        var generation: UInt64
    }

    let directory: any UserDirectory
    let limits: Limits
    private let now: @Sendable () -> ContinuousClock.Instant
    private var entries: [String: Entry] = [:]
    /// Insertion order for eviction: (user, generation); stale pairs (re-stored users) are skipped.
    private var order: [(String, UInt64)] = []
    private var orderHead = 0
    private var generation: UInt64 = 0
    private var inFlight: Set<String> = []
    /// Lookups started so far (tests, metrics).
    private(set) var lookupsStarted = 0

    public init(directory: any UserDirectory, limits: Limits = Limits(), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.directory = directory
        self.limits = limits
        self.now = now
    }

    /// True when the token named no display name (its `username` fell back to the user id,
    /// `TokenClaims.user`) or no avatar: what the user service may fill.
    public nonisolated static func needsLookup(_ user: AuthUser) -> Bool {
        user.username == user.userId || user.avatarUrl == nil
    }

    /// `user` with the cached name and avatar where its token had none; never waits for a lookup.
    public func fill(_ user: AuthUser) -> AuthUser {
        guard Self.needsLookup(user) else { return user }
        guard let entry = entries[user.userId], entry.expires > now() else {
            startLookup(user.userId)
            return user
        }
        guard let profile = entry.profile else { return user }
        var filled = user
        if user.username == user.userId, let name = profile.username { filled.username = name }
        if user.avatarUrl == nil, let avatar = profile.avatarUrl { filled.avatarUrl = avatar }
        return filled
    }

    /// Starts the lookup ahead of the user's first line (a viewer joining a room), if it is needed.
    public func prefetch(_ user: AuthUser) {
        guard Self.needsLookup(user) else { return }
        if let entry = entries[user.userId], entry.expires > now() { return }
        startLookup(user.userId)
    }

    /// Users cached (tests).
    var count: Int { entries.count }
    /// Lookups running now (tests wait for them to finish).
    public var lookupsInFlight: Int { inFlight.count }

    private func startLookup(_ userId: String) {
        guard !inFlight.contains(userId), inFlight.count < limits.maxInFlight else { return }
        inFlight.insert(userId)
        lookupsStarted += 1
        let directory = self.directory
        Task {
            let profile = await directory.profile(userId: userId)
            self.store(userId, profile)
        }
    }

    private func store(_ userId: String, _ profile: UserProfile?) {
        inFlight.remove(userId)
        let instant = now()
        generation &+= 1
        if entries[userId] == nil { evictIfFull() }
        entries[userId] = Entry(profile: profile, expires: instant + (profile == nil ? limits.failureTTL : limits.ttl), generation: generation)
        order.append((userId, generation))
        compactOrder()
    }

    private func evictIfFull() {
        while entries.count >= limits.entries, orderHead < order.count {
            let (userId, stored) = order[orderHead]
            orderHead += 1
            if entries[userId]?.generation == stored { entries.removeValue(forKey: userId) }
        }
    }

    /// Drops the consumed front of `order` and pairs of users stored again since.
    private func compactOrder() {
        let live = order.count - orderHead
        guard live > 2 * limits.entries + 64 || (orderHead > 64 && orderHead * 2 > order.count) else { return }
        order = order[orderHead...].filter { entries[$0.0]?.generation == $0.1 }
        orderHead = 0
    }
}
