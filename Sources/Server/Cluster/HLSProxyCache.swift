import NIOCore
import Synchronization

/// One answer of a room's HLS origin, as the proxy keeps and forwards it (bytes only: the proxy
/// never parses a playlist or a segment).
struct HLSProxiedAnswer: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: ByteBuffer

    /// What the answer costs in the cache: body, headers and a fixed overhead for the entry.
    var cost: Int { body.readableBytes + headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count } + 128 }
}

/// The proxy's memory of origin answers (issue 20, "HLS from any node"): with 1,000 viewers of a
/// room on one node, the origin sees one request per part, segment and playlist version.
///
/// - Single flight: concurrent requests for the same key (origin + path + delivery directives)
///   share one origin fetch. The fetch runs in a task of its own, so a viewer who disconnects does
///   not cancel it for the others.
/// - `immutable` answers (init sections, segments, parts: RFC 8216bis §6.2.6, their URIs never
///   change content) are kept after a 200 in an LRU bounded by `maxBytes`
///   (`LIVEHUB_HLS_PROXY_CACHE_BYTES`).
/// - `brief` answers (playlists, the thumbnail) are kept `briefLifetime` after a 200, at most
///   `maxBriefEntries` of them: a blocking reload's key holds its `_HLS_msn`/`_HLS_part`, so its
///   answer is shared by every viewer waiting for the same part, and by those arriving just after.
/// - Other statuses are shared by the requests of the one flight only, never kept.
final class HLSProxyCache: Sendable {
    enum Lifetime: Sendable { case immutable, brief }

    /// How a request was answered: from the cache, by joining a fetch under way, or by a fetch of its own.
    enum Source: String, Sendable {
        case hit = "HIT"
        case shared = "SHARED"
        case miss = "MISS"
    }

    struct Key: Hashable, Sendable {
        /// The origin's base URL (a room moving to another origin gets new keys).
        var origin: String
        /// Path and canonical query.
        var path: String
    }

    private struct Kept {
        var answer: HLSProxiedAnswer
        var cost: Int
        var tick: UInt64
    }

    private struct State {
        var immutable: [Key: Kept] = [:]
        /// Keys by last use, oldest first; an entry whose tick is not the key's current one is stale.
        var order = CircularBuffer<(key: Key, tick: UInt64)>()
        var immutableBytes = 0
        var brief: [Key: (answer: HLSProxiedAnswer, expires: ContinuousClock.Instant)] = [:]
        var inFlight: [Key: Task<HLSProxiedAnswer, Never>] = [:]
        var tick: UInt64 = 0
    }

    let maxBytes: Int
    let briefLifetime: Duration
    let maxBriefEntries: Int
    private let state = Mutex(State())

    init(maxBytes: Int, briefLifetime: Duration = .milliseconds(500), maxBriefEntries: Int = 4096) {
        self.maxBytes = max(0, maxBytes)
        self.briefLifetime = briefLifetime
        self.maxBriefEntries = max(0, maxBriefEntries)
    }

    /// The bytes the LRU holds now.
    var immutableBytes: Int { state.withLock { $0.immutableBytes } }
    /// Entries held now: immutable and brief.
    var counts: (immutable: Int, brief: Int) { state.withLock { ($0.immutable.count, $0.brief.count) } }

    /// The answer for `key`: kept, shared with a fetch under way, or fetched with `fetch` (once for
    /// every request that arrives while it runs).
    func answer(
        for key: Key, lifetime: Lifetime, fetch: @escaping @Sendable () async -> HLSProxiedAnswer
    ) async -> (answer: HLSProxiedAnswer, source: Source) {
        enum Step {
            case kept(HLSProxiedAnswer)
            case join(Task<HLSProxiedAnswer, Never>)
            case lead(Task<HLSProxiedAnswer, Never>)
        }
        let now = ContinuousClock.now
        let step: Step = state.withLock { state in
            switch lifetime {
            case .immutable:
                if var kept = state.immutable[key] {
                    state.tick &+= 1
                    kept.tick = state.tick
                    state.immutable[key] = kept
                    state.order.append((key, state.tick))
                    Self.compactOrder(&state)
                    return .kept(kept.answer)
                }
            case .brief:
                if let kept = state.brief[key] {
                    if kept.expires > now { return .kept(kept.answer) }
                    state.brief[key] = nil
                }
            }
            if let running = state.inFlight[key] { return .join(running) }
            // The task stores its answer under the lock, so it cannot finish before it is registered.
            let task = Task { [self] in
                let answer = await fetch()
                finish(key, answer, lifetime: lifetime)
                return answer
            }
            state.inFlight[key] = task
            return .lead(task)
        }
        switch step {
        case .kept(let answer): return (answer, .hit)
        case .join(let task): return (await task.value, .shared)
        case .lead(let task): return (await task.value, .miss)
        }
    }

    private func finish(_ key: Key, _ answer: HLSProxiedAnswer, lifetime: Lifetime) {
        let now = ContinuousClock.now
        state.withLock { state in
            state.inFlight[key] = nil
            guard answer.status == 200 else { return }
            switch lifetime {
            case .immutable:
                let cost = answer.cost
                guard cost <= maxBytes else { return }
                if let old = state.immutable.removeValue(forKey: key) { state.immutableBytes -= old.cost }
                while state.immutableBytes + cost > maxBytes, let oldest = state.order.popFirst() {
                    guard let kept = state.immutable[oldest.key], kept.tick == oldest.tick else { continue }
                    state.immutable[oldest.key] = nil
                    state.immutableBytes -= kept.cost
                }
                state.tick &+= 1
                state.immutable[key] = Kept(answer: answer, cost: cost, tick: state.tick)
                state.immutableBytes += cost
                state.order.append((key, state.tick))
                Self.compactOrder(&state)
            case .brief:
                if state.brief.count >= maxBriefEntries {
                    state.brief = state.brief.filter { $0.value.expires > now }
                }
                guard state.brief.count < maxBriefEntries else { return }
                state.brief[key] = (answer, now + briefLifetime)
            }
        }
    }

    /// Drops the stale entries of `order` once they outnumber the live ones (each hit appends one).
    private static func compactOrder(_ state: inout State) {
        guard state.order.count > 2 * state.immutable.count + 1024 else { return }
        var fresh = CircularBuffer<(key: Key, tick: UInt64)>(initialCapacity: state.immutable.count)
        for (key, kept) in state.immutable.sorted(by: { $0.value.tick < $1.value.tick }) {
            fresh.append((key, kept.tick))
        }
        state.order = fresh
    }
}
