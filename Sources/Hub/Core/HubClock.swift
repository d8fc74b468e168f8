import Synchronization

/// A monotonic clock as "time elapsed since an arbitrary origin". Injected so rate limits,
/// heart-beats and time-outs can be tested without sleeping.
public struct HubClock: Sendable {
    public let now: @Sendable () -> Duration
    /// Shared by the copies of one clock: lets a loop over many connections read the time once
    /// per clock (`ConnectionTicker`'s rounds).
    private let identity = Identity()
    private final class Identity: Sendable {}

    public init(now: @escaping @Sendable () -> Duration) {
        self.now = now
    }

    /// True if `other` is a copy of this clock (not merely one that reads the same time).
    func isSameClock(as other: HubClock) -> Bool { self.identity === other.identity }

    /// `ContinuousClock`, measured from the first use.
    public static let system: HubClock = {
        let origin = ContinuousClock.now
        return HubClock { ContinuousClock.now - origin }
    }()
}

/// A clock that only moves when told to (tests, simulations).
public final class ManualHubClock: Sendable {
    private let current: Mutex<Duration>

    public init(_ start: Duration = .zero) {
        self.current = Mutex(start)
    }

    public var now: Duration { self.current.withLock { $0 } }

    public func advance(by duration: Duration) {
        self.current.withLock { $0 += duration }
    }

    public var clock: HubClock {
        HubClock { [self] in self.now }
    }
}

extension Duration {
    /// Later than any deadline the hub computes ("nothing due").
    static let hubNever = Duration.seconds(Int64.max / 4)

    /// Whole nanoseconds, clamped to `Int64` (for atomics holding hub-clock times).
    var hubNanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        if seconds >= Int64.max / 1_000_000_000 { return .max }
        if seconds <= Int64.min / 1_000_000_000 { return .min }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
