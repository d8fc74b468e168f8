import Synchronization

/// Something a connection's writer task must do.
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
/// connection's writer task. Enqueueing never waits: when the queue is full the connection is
/// declared a slow consumer — pending frames are dropped and the writer is told to close — so a
/// slow socket never blocks the publisher or the room.
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
        var reader: CheckedContinuation<[HubOutboundItem], Never>?
        var closeWatchers: [CheckedContinuation<Void, Never>] = []
        /// Set by a transport that drains the queue itself (`setDrain`) instead of a writer task.
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
    var didOverflow: Bool { self.state.withLock { $0.overflowed } }

    func enqueue(_ frame: HubOutboundFrame) -> EnqueueResult {
        var drain: (@Sendable () -> Void)?
        let (result, reader, items, watchers): (EnqueueResult, CheckedContinuation<[HubOutboundItem], Never>?, [HubOutboundItem], [CheckedContinuation<Void, Never>]) = self.state.withLock { s in
            if s.closing { return (.closed, nil, [], []) }
            defer { drain = Self.wakeDrain(&s) }
            if s.items.count + 1 > self.limits.maxFrames || s.bytes + frame.byteCount > self.limits.maxBytes {
                s.closing = true
                s.overflowed = true
                s.items = [.close(.slowConsumer)]
                s.bytes = 0
                let watchers = s.closeWatchers
                s.closeWatchers = []
                if let r = s.reader {
                    s.reader = nil
                    let items = s.items
                    s.items = []
                    return (.overflowed, r, items, watchers)
                }
                return (.overflowed, nil, [], watchers)
            }
            if let r = s.reader {
                // The writer is idle: hand the frame over directly (nothing stays queued).
                s.reader = nil
                return (.enqueued, r, [.frame(frame)], [])
            }
            s.bytes += frame.byteCount
            s.items.append(.frame(frame))
            return (.enqueued, nil, [], [])
        }
        reader?.resume(returning: items)
        for w in watchers { w.resume() }
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
    /// the transport takes the items with `takeAll()`. Items already queued trigger it at once.
    /// Used instead of a writer task (`next()`), never together with one.
    func setDrain(_ drain: @escaping @Sendable () -> Void) {
        let wake = self.state.withLock { s in
            precondition(s.reader == nil, "OutboundQueue has a writer task")
            s.drain = drain
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

    /// Ask the writer to close after the frames already queued. Later enqueues are ignored.
    /// Returns false if the queue was already closing.
    @discardableResult
    func close(_ reason: HubCloseReason) -> Bool {
        var drain: (@Sendable () -> Void)?
        let (done, reader, items, watchers): (Bool, CheckedContinuation<[HubOutboundItem], Never>?, [HubOutboundItem], [CheckedContinuation<Void, Never>]) = self.state.withLock { s in
            if s.closing { return (false, nil, [], []) }
            defer { drain = Self.wakeDrain(&s) }
            s.closing = true
            s.items.append(.close(reason))
            let watchers = s.closeWatchers
            s.closeWatchers = []
            if let r = s.reader {
                s.reader = nil
                let items = s.items
                s.items = []
                s.bytes = 0
                return (true, r, items, watchers)
            }
            return (true, nil, [], watchers)
        }
        reader?.resume(returning: items)
        for w in watchers { w.resume() }
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

    /// Waits for at least one item and returns all queued items (a batch, so transports can
    /// coalesce writes). Returns `[]` only when the calling task is cancelled.
    func next() async -> [HubOutboundItem] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<[HubOutboundItem], Never>) in
                let immediate: [HubOutboundItem]? = self.state.withLock { s in
                    if !s.items.isEmpty {
                        let items = s.items
                        s.items = []
                        s.bytes = 0
                        return items
                    }
                    if Task.isCancelled { return [] }
                    precondition(s.reader == nil, "OutboundQueue has a single reader")
                    s.reader = cont
                    return nil
                }
                if let immediate { cont.resume(returning: immediate) }
            }
        } onCancel: {
            let r = self.state.withLock { s in
                let r = s.reader
                s.reader = nil
                return r
            }
            r?.resume(returning: [])
        }
    }

    /// Returns once the queue starts closing (overflow, `close`) or the task is cancelled.
    /// Lets the session stop even while the writer is stuck in a slow socket write.
    func waitUntilClosing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
                let now: Bool = self.state.withLock { s in
                    if s.closing || Task.isCancelled { return true }
                    s.closeWatchers.append(cont)
                    return false
                }
                if now { cont.resume() }
            }
        } onCancel: {
            let watchers = self.state.withLock { s in
                let w = s.closeWatchers
                s.closeWatchers = []
                return w
            }
            for w in watchers { w.resume() }
        }
    }
}
