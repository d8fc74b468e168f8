import Hub
import NIOCore
import Synchronization

/// Reactions (issue 22 §2): `SEND /app/live/{roomId}/react {"type":"heart"}` from any viewer
/// (guests too) is counted, not broadcast: per room, the reactions of one window
/// (`LIVEHUB_REACTION_WINDOW_MS`, 250 ms) are summed and published once on
/// `/topic/live/{roomId}/reactions` as `{"counts":{"heart":N,…},"windowMs":250}` — a room with a
/// burst of 10,000 hearts costs each viewer at most 4 frames a second. A window with no reaction
/// publishes nothing.
///
/// One timer for every room: the first reaction after a quiet time starts it; when it fires, every
/// room's counts are taken and published, and it starts again only if reactions came meanwhile.
/// Bounded: at most `maxRooms` rooms have counts waiting (a reaction for one more room is refused);
/// a count is a saturating `Int`. Each node sums its own senders and publishes through the broker:
/// with K nodes a viewer gets at most K frames per window (their counts add up).
final class ReactionAggregator: Sendable {
    /// The reaction types, in the order they are shown.
    static let types = ["heart", "fire", "clap", "laugh", "wow"]

    enum Refusal: Error, Equatable {
        case unknownType
        case tooManyRooms
        case rateLimited
    }

    typealias Publish = @Sendable (_ roomId: String, _ payload: ByteBuffer) async -> Void

    let window: Duration
    let maxRooms: Int
    /// Per user (guests: per connection) `LIVEHUB_REACTIONS_PER_SECOND`, a bucket of one second.
    let limiter: RateLimiter
    private let publish: Publish

    private struct State {
        var pending: [String: [Int]] = [:]
        var timerRunning = false
        var published = 0
    }

    private let state = Mutex(State())

    init(window: Duration, maxRooms: Int, perSecond: Int, clock: HubClock = .system, publish: @escaping Publish) {
        self.window = window
        self.maxRooms = max(1, maxRooms)
        self.limiter = RateLimiter(limit: RateLimit(ratePerSecond: Double(max(1, perSecond))), clock: clock)
        self.publish = publish
    }

    /// Counts one reaction of `type` by `senderKey` (a user id, or the guest connection's key);
    /// nil when counted, else why not.
    func add(roomId: String, type: String, senderKey: String) -> Refusal? {
        guard let index = Self.types.firstIndex(of: type) else { return .unknownType }
        guard self.limiter.allow(senderKey) else { return .rateLimited }
        enum Counted { case counted(startTimer: Bool), full }
        let counted: Counted = self.state.withLock { s in
            if s.pending[roomId] == nil {
                guard s.pending.count < self.maxRooms else { return .full }
                s.pending[roomId] = Array(repeating: 0, count: Self.types.count)
            }
            let n = s.pending[roomId]![index]
            s.pending[roomId]![index] = n == Int.max ? n : n + 1
            if s.timerRunning { return .counted(startTimer: false) }
            s.timerRunning = true
            return .counted(startTimer: true)
        }
        switch counted {
        case .full:
            return .tooManyRooms
        case .counted(let startTimer):
            if startTimer { self.startWindow() }
            return nil
        }
    }

    /// Windows published since start (tests).
    var publishedWindows: Int { self.state.withLock { $0.published } }

    private func startWindow() {
        Task { [self] in
            while true {
                try? await Task.sleep(for: self.window)
                let taken: [String: [Int]] = self.state.withLock { s in
                    let p = s.pending
                    s.pending = [:]
                    if p.isEmpty { s.timerRunning = false }
                    s.published += p.count
                    return p
                }
                if taken.isEmpty { return }
                for (roomId, counts) in taken {
                    await self.publish(roomId, Self.payload(counts, window: self.window))
                }
            }
        }
    }

    /// `{"counts":{"heart":N,…},"windowMs":250}` with only the types that were sent.
    static func payload(_ counts: [Int], window: Duration) -> ByteBuffer {
        var members: [(String, JSONValue)] = []
        for (i, n) in counts.enumerated() where n > 0 { members.append((types[i], .number(Double(n)))) }
        let ms = Double(window.components.seconds * 1000 + window.components.attoseconds / 1_000_000_000_000_000)
        let body: JSONValue = .object([("counts", .object(members)), ("windowMs", .number(ms))])
        return ByteBuffer(bytes: body.jsonBytes)
    }
}

/// Whether a room takes reactions (it exists and has not ended), remembered for a second per room,
/// so a burst does not read the room store once per reaction. Bounded: at most `limit` rooms (the
/// table is cleared when full).
final class ReactionRoomCheck: Sendable {
    private let answers = Mutex<[String: (open: Bool, at: ContinuousClock.Instant)]>([:])
    let limit: Int
    let ttl: Duration

    init(limit: Int, ttl: Duration = .seconds(1)) {
        self.limit = max(1, limit)
        self.ttl = ttl
    }

    /// The remembered answer, or nil when it must be asked again.
    func known(_ roomId: String) -> Bool? {
        let now = ContinuousClock.now
        return answers.withLock { a in
            guard let entry = a[roomId], now - entry.at < ttl else { return nil }
            return entry.open
        }
    }

    func remember(_ roomId: String, open: Bool) {
        let now = ContinuousClock.now
        answers.withLock { a in
            if a.count >= limit { a.removeAll(keepingCapacity: true) }
            a[roomId] = (open, now)
        }
    }
}
