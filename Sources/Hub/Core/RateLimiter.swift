import Synchronization

/// A token bucket rate: `ratePerSecond` tokens added per second, holding at most `burst`.
public struct RateLimit: Sendable, Hashable {
    public var ratePerSecond: Double
    public var burst: Double

    public init(ratePerSecond: Double, burst: Double? = nil) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst ?? ratePerSecond
    }

    /// DESIGN.md: 5 chat messages/s per user, sustained. The bucket holds two seconds' worth: frames
    /// are counted when the server processes them, and under load a user's frames sent at 4/s can
    /// be read in a bunch after a stall — a burst of 5 refused such honest senders (measured with
    /// bench/hub/stomp_fanout.py at 40 chats/s into 2,000 subscribers: 126 of 600 refused).
    public static let stompSend = RateLimit(ratePerSecond: 5, burst: 10)
    /// DESIGN.md: 10 inbound Socket.IO messages/s per user.
    public static let socketIOInbound = RateLimit(ratePerSecond: 10)
}

/// One token bucket (pure value; time passed in).
public struct TokenBucket: Sendable, Hashable {
    public let limit: RateLimit
    public private(set) var tokens: Double
    public private(set) var updatedAt: Duration

    public init(limit: RateLimit, now: Duration) {
        self.limit = limit
        self.tokens = limit.burst
        self.updatedAt = now
    }

    mutating func refill(now: Duration) {
        guard now > self.updatedAt else { return }
        let elapsed = Double((now - self.updatedAt).components.attoseconds) / 1e18 + Double((now - self.updatedAt).components.seconds)
        self.tokens = min(self.limit.burst, self.tokens + elapsed * self.limit.ratePerSecond)
        self.updatedAt = now
    }

    /// Takes one token if available.
    public mutating func tryConsume(now: Duration) -> Bool {
        self.refill(now: now)
        if self.tokens >= 1 {
            self.tokens -= 1
            return true
        }
        return false
    }

    /// Full again (an idle bucket can be forgotten without changing behaviour).
    func isFull(now: Duration) -> Bool {
        var copy = self
        copy.refill(now: now)
        return copy.tokens >= self.limit.burst
    }
}

/// Token buckets keyed by user id (guests: by connection id). Thread-safe. Buckets that refilled
/// completely are pruned now and then, so the table does not grow with every user ever seen.
public final class RateLimiter: Sendable {
    public let limit: RateLimit
    private let clock: HubClock
    private struct State {
        var buckets: [String: TokenBucket] = [:]
        var callsSincePrune = 0
    }
    private let state = Mutex(State())

    public init(limit: RateLimit, clock: HubClock = .system) {
        self.limit = limit
        self.clock = clock
    }

    /// True if the caller identified by `key` may proceed (a token was taken).
    public func allow(_ key: String) -> Bool {
        let now = self.clock.now()
        return self.state.withLock { s in
            s.callsSincePrune += 1
            if s.callsSincePrune >= 1024 {
                s.callsSincePrune = 0
                s.buckets = s.buckets.filter { !$0.value.isFull(now: now) }
            }
            var bucket = s.buckets[key] ?? TokenBucket(limit: self.limit, now: now)
            let ok = bucket.tryConsume(now: now)
            s.buckets[key] = bucket
            return ok
        }
    }

    /// Drop `key`'s bucket (e.g. the user's last connection left).
    public func forget(_ key: String) {
        _ = self.state.withLock { $0.buckets.removeValue(forKey: key) }
    }

    /// Number of tracked buckets (tests / debug).
    public var trackedKeys: Int { self.state.withLock { $0.buckets.count } }
}

extension HubConnection {
    /// Whose budget an inbound message spends (one function for every protocol): a signed-in user's
    /// across all their connections (`u:` + userId), a guest's per connection (`c:` + id).
    var rateLimitKey: String { self.identity.map { "u:" + $0.userId } ?? self.guestRateLimitKey }

    /// A guest's key; forgotten when the connection closes (`RateLimiter.forget`).
    var guestRateLimitKey: String { "c:\(self.id)" }
}
