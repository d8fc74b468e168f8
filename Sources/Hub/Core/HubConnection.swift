import Synchronization

/// Process-unique connection id.
public struct HubConnectionID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "c\(self.rawValue)" }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A registered connection: its wire format, identity and bounded outbound queue.
///
/// Created by `Hub.register`; frames reach the socket only through the queue, drained either by
/// the server's `ChannelDrain` on the connection's event loop (the WebSocket routes) or by an
/// adapter's writer task (`nextOutbound()`, the transport-neutral `serve` used by tests).
public final class HubConnection: Sendable, Hashable, CustomStringConvertible {
    public let id: HubConnectionID
    public let format: HubWireFormat
    let queue: OutboundQueue
    private let _identity: Mutex<HubIdentity?>
    /// `lastWriteAt` in nanoseconds: written on every delivery, an atomic rather than a lock.
    private let _lastWriteNanos: Atomic<Int64>

    init(id: HubConnectionID, format: HubWireFormat, identity: HubIdentity?, limits: OutboundQueueLimits, now: Duration) {
        self.id = id
        self.format = format
        self.queue = OutboundQueue(limits: limits)
        self._identity = Mutex(identity)
        self._lastWriteNanos = Atomic(now.hubNanoseconds)
    }

    /// Current identity (`nil` = guest). Change it with `Hub.setIdentity`.
    public var identity: HubIdentity? { self._identity.withLock { $0 } }

    func setIdentityLocked(_ identity: HubIdentity?) { self._identity.withLock { $0 = identity } }

    /// When the writer last put bytes on the socket (for "server → client" heart-beats).
    public var lastWriteAt: Duration { .nanoseconds(self._lastWriteNanos.load(ordering: .relaxed)) }
    public func noteWrite(at time: Duration) {
        let nanos = time.hubNanoseconds
        var current = self._lastWriteNanos.load(ordering: .relaxed)
        while nanos > current {
            let (exchanged, original) = self._lastWriteNanos.compareExchange(expected: current, desired: nanos, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// True once closing (overflow, shutdown, protocol close).
    public var isClosing: Bool { self.queue.isClosing }
    /// True if the connection was dropped as a slow consumer.
    public var wasDroppedAsSlow: Bool { self.queue.didOverflow }

    /// Writer task: wait for and take the next batch of items. `[]` means the task was cancelled.
    public func nextOutbound() async -> [HubOutboundItem] { await self.queue.next() }

    /// Take whatever is queued without waiting (tests, custom transports).
    public func takePendingOutbound() -> [HubOutboundItem] { self.queue.takeAll() }

    /// Returns when the connection starts closing.
    public func waitUntilClosing() async { await self.queue.waitUntilClosing() }

    public static func == (lhs: HubConnection, rhs: HubConnection) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.id) }
    public var description: String { "\(self.id)(\(self.format.name))" }
}
