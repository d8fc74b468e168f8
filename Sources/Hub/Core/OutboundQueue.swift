import Synchronization

/// Something a connection's transport must write.
public enum HubOutboundItem: Sendable, Hashable {
    case frame(HubOutboundFrame)
    /// Say goodbye (adapter-specific) and close the socket. Nothing follows.
    case close(HubCloseReason)
}

/// Limits of one connection's outbound queue.
public struct OutboundQueueLimits: Sendable, Hashable {
    /// Frames waiting to be written. 256 absorbs a chat burst in a busy room.
    public var maxFrames: Int
    /// Bytes waiting to be written. 1 MiB ≈ several product-list broadcasts.
    public var maxBytes: Int

    public init(maxFrames: Int = 256, maxBytes: Int = 1 << 20) {
        self.maxFrames = maxFrames
        self.maxBytes = maxBytes
    }
}

/// A bounded multi-producer / single-consumer queue between the fan-out (any task) and the
/// connection's transport, which drains it (`setDrain`; the server's is `ChannelDrain`). Enqueueing
/// never waits: when the queue is full the connection is declared a slow consumer — pending frames
/// are dropped and the transport is told to close — so a slow socket never blocks the publisher or
/// the room.
final class OutboundQueue: Sendable {
    enum EnqueueResult: Equatable {
        case enqueued
        /// This enqueue overflowed the queue; the connection is now closing.
        case overflowed
        /// Already closing; frame ignored.
        case closed
    }

    private struct State {
        var items: [HubOutboundItem] = []
        var bytes = 0
        var closing = false
        var overflowed = false
        /// Set by the transport that drains the queue (`setDrain`).
        var drain: (@Sendable () -> Void)?
        /// The drain was told about the items queued and has not taken them yet.
        var drainPending = false
    }

    let limits: OutboundQueueLimits
    private let state = Mutex(State())

    init(limits: OutboundQueueLimits) {
        self.limits = limits
    }

    var isClosing: Bool { self.state.withLock { $0.closing } }
    /// Frames and bytes waiting now (recovery paces itself on it).
    var depth: (frames: Int, bytes: Int) { self.state.withLock { ($0.items.count, $0.bytes) } }
    var didOverflow: Bool { self.state.withLock { $0.overflowed } }

    func enqueue(_ frame: HubOutboundFrame) -> EnqueueResult {
        var drain: (@Sendable () -> Void)?
        let result: EnqueueResult = self.state.withLock { s in
            if s.closing { return .closed }
            defer { drain = Self.wakeDrain(&s) }
            if s.items.count + 1 > self.limits.maxFrames || s.bytes + frame.byteCount > self.limits.maxBytes {
                s.closing = true
                s.overflowed = true
                s.items = [.close(.slowConsumer)]
                s.bytes = 0
                return .overflowed
            }
            s.bytes += frame.byteCount
            s.items.append(.frame(frame))
            return .enqueued
        }
        drain?()
        return result
    }

    /// The drain to call after unlocking, when items wait and it has not been told yet.
    private static func wakeDrain(_ s: inout State) -> (@Sendable () -> Void)? {
        guard let drain = s.drain, !s.drainPending, !s.items.isEmpty else { return nil }
        s.drainPending = true
        return drain
    }

    /// Switches the queue to a transport-driven drain: from now on every enqueue or close that
    /// finds the queue without a pending drain calls `drain` (synchronously, outside the lock), and
    /// the transport takes the items with `takeAll()`. Items already queued trigger it at once
    /// (also when they were announced to a drain this one replaces).
    func setDrain(_ drain: @escaping @Sendable () -> Void) {
        let wake = self.state.withLock { s in
            s.drain = drain
            // A previous drain that was told and did not take (a polled connection handed over to
            // a WebSocket) told nobody the new drain: tell it.
            s.drainPending = false
            return Self.wakeDrain(&s)
        }
        wake?()
    }

    /// Hands an array the drain is done with back for the next enqueues, so that a delivery to an
    /// idle connection does not allocate a fresh array every time (the items are released here).
    func recycle(_ items: inout [HubOutboundItem]) {
        items.removeAll(keepingCapacity: true)
        self.state.withLock { s in
            if s.items.isEmpty && s.items.capacity < items.capacity { swap(&s.items, &items) }
        }
    }

    /// Ask the transport to close after the frames already queued. Later enqueues are ignored.
    /// Returns false if the queue was already closing.
    @discardableResult
    func close(_ reason: HubCloseReason) -> Bool {
        var drain: (@Sendable () -> Void)?
        let done: Bool = self.state.withLock { s in
            if s.closing { return false }
            defer { drain = Self.wakeDrain(&s) }
            s.closing = true
            s.items.append(.close(reason))
            return true
        }
        drain?()
        return done
    }

    /// Everything queued right now, without waiting (tests, and a transport drain: the next
    /// enqueue wakes the drain again). A drain that cannot write now (socket buffer full) simply
    /// does not call this, and calls it later.
    func takeAll() -> [HubOutboundItem] {
        self.state.withLock { s in
            let items = s.items
            s.items = []
            s.bytes = 0
            s.drainPending = false
            return items
        }
    }
}
