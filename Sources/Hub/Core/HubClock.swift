import Synchronization

/// A monotonic clock as "time elapsed since an arbitrary origin". Injected so rate limits,
/// heart-beats and time-outs can be tested without sleeping.
public struct HubClock: Sendable {
    public let now: @Sendable () -> Duration

    public init(now: @escaping @Sendable () -> Duration) {
        self.now = now
    }

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
