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
/// Created by `Hub.register`. Frames reach the socket through the queue, drained by the transport
/// (the server's `ChannelDrain`, on the connection's event loop). A `ChannelDrain` also attaches the connection to its loop's delivery lane (`HubLaneAttachment`): from then on every
/// frame and the close are handed to the lane, in order, and the loop writes a frame straight to
/// the socket when nothing waits in the queue before it.
public final class HubConnection: Sendable, Hashable, CustomStringConvertible {
    public let id: HubConnectionID
    public let format: HubWireFormat
    let queue: OutboundQueue
    private let _identity: Mutex<HubIdentity?>
    /// `lastWriteAt` in nanoseconds, an atomic rather than a lock: set by `ChannelDrain` before each
    /// of the connection's ticks (the drain keeps its own copy so that a 10k fan-out does not touch
    /// this object: a cache miss per viewer).
    private let _lastWriteNanos: Atomic<Int64>
    /// Set once by the transport (`attach(lane:member:)`); guards the hand-over against a
    /// delivery racing the attach.
    private let _lane = Mutex<HubLaneAttachment?>(nil)
    /// A close was handed to the lane (it reaches the queue in order, on the lane's thread).
    private let closeRequested = Atomic<Bool>(false)
    let accounting: HubDeliveryAccounting

    init(
        id: HubConnectionID, format: HubWireFormat, identity: HubIdentity?, limits: OutboundQueueLimits, now: Duration,
        accounting: HubDeliveryAccounting
    ) {
        self.id = id
        self.format = format
        self.queue = OutboundQueue(limits: limits)
        self._identity = Mutex(identity)
        self._lastWriteNanos = Atomic(now.hubNanoseconds)
        self.accounting = accounting
    }

    // MARK: Delivery

    /// The lane this connection's deliveries go through, once a transport attached one.
    var laneAttachment: HubLaneAttachment? { self._lane.withLock { $0 } }

    /// Routes every later delivery and close through `lane`, in order (`HubLaneAttachment`); frames
    /// queued before stay first. `whileAttaching` runs under the same lock (the transport takes
    /// over the queue there), so no delivery slips in between. Call once.
    func attach(lane: LoopDrainBatch, member: ChannelDrain, whileAttaching: () -> Void) {
        self._lane.withLock { attachment in
            precondition(attachment == nil, "a connection is attached to one lane")
            attachment = HubLaneAttachment(lane: lane, member: member)
            whileAttaching()
        }
    }

    /// Hub → connection, any thread: through the lane if attached, else straight into the queue.
    /// Returns false if the connection is closing (or this frame overflowed its queue).
    func hand(_ frame: HubOutboundFrame) -> Bool {
        if self.closeRequested.load(ordering: .relaxed) { return false }
        return self._lane.withLock { attachment in
            if let attachment {
                attachment.lane.deliver(frame, to: [attachment.member])
                return true
            }
            return self.enqueueNow(frame)
        }
    }

    /// Asks the writer to say goodbye and close after everything handed over before.
    func requestClose(_ reason: HubCloseReason) {
        self._lane.withLock { attachment in
            if let attachment {
                if !self.closeRequested.exchange(true, ordering: .relaxed) { attachment.lane.close(attachment.member, reason: reason) }
            } else {
                self.queue.close(reason)
            }
        }
    }

    /// Into the queue now (a lane calls this on its thread, in hand-over order); an overflow is
    /// counted as a slow-consumer drop.
    func enqueueNow(_ frame: HubOutboundFrame) -> Bool {
        switch self.queue.enqueue(frame) {
        case .enqueued:
            return true
        case .closed:
            return false
        case .overflowed:
            self.accounting.slowDrop(self.format.protocolName)
            return false
        }
    }

    /// Frames and bytes waiting in the outbound queue (a lane's hand-over may not be in it yet).
    var queueDepth: (frames: Int, bytes: Int) { self.queue.depth }

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
    public var isClosing: Bool { self.closeRequested.load(ordering: .relaxed) || self.queue.isClosing }
    /// True if the connection was dropped as a slow consumer.
    public var wasDroppedAsSlow: Bool { self.queue.didOverflow }

    /// Take whatever is queued without waiting (tests, custom transports).
    public func takePendingOutbound() -> [HubOutboundItem] { self.queue.takeAll() }

    public static func == (lhs: HubConnection, rhs: HubConnection) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.id) }
    public var description: String { "\(self.id)(\(self.format.name))" }
}
