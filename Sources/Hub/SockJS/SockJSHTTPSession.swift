import NIOCore
import Synchronization

/// One hub session carried by HTTP requests rather than a socket: the core of SockJS's HTTP
/// transports (`xhr`, `xhr_streaming` + `xhr_send`, sockjs-protocol 0.3.3 "Protocol"), kept free of
/// their framing (`SockJSHTTPTransport` frames what it hands out), so that another polled transport
/// can share it.
///
/// - Outbound: frames wait in the connection's bounded queue (`OutboundQueue`, a slow consumer is
///   dropped at its limits); the queue's drain wakes the one receiving request that waits
///   (`attach`/`next`/`detach`). A second receiving request gets `.busy`.
/// - Inbound: bodies go through an `InboundProcessor`, which runs them in order on a short task;
///   when `maxInboundBytes` of them wait, the next is refused (`send` → `.busy`).
/// - Deadlines, on the process's `ConnectionTicker`: the session's own (heart-beats, STOMP's CONNECT
///   deadline); no receiving request for `disconnectDelay` closes it ("The session must time out
///   after 5 seconds of not having a receiving connection"); a receiver whose HTTP connection closed
///   is noticed within a second; one stuck on a client that stopped reading while the session
///   closes is cut off after `disconnectDelay`.
/// - Close: once, whoever sees it first (the receiver that takes the queue's close, or a tick with
///   no receiver); `finish` runs after every body before it. A closed session answers receivers with
///   `.closed` for `disconnectDelay`, then the registry forgets it (`tick` → `.remove`).
final class SockJSHTTPSession: Sendable {
    /// A receiving request's hold on the session.
    struct Receiver: Sendable, Hashable {
        let id: UInt64
    }

    enum Attachment: Sendable, Hashable {
        case attached(Receiver)
        /// Another receiving request holds the session.
        case busy
        /// The session has closed.
        case closed
    }

    enum Outbound: Sendable {
        case items([HubOutboundItem])
        /// The session closed (its close was taken by a tick, or it timed out).
        case closed
        /// This receiver's HTTP connection went away, or it was cut off.
        case gone
    }

    enum SendResult: Sendable, Hashable {
        case accepted
        case closed
        /// `maxInboundBytes` of bodies already wait.
        case busy
    }

    enum TickResult: Sendable, Hashable {
        case again(notBefore: Duration)
        /// The session is over: forget it.
        case remove
    }

    private struct ReceiverState {
        let receiver: Receiver
        let isConnected: @Sendable () -> Bool
        let abort: @Sendable () -> Void
        var gone = false
    }

    private struct State {
        var receiver: ReceiverState?
        var nextReceiverId: UInt64 = 0
        /// The queue's drain fired since the receiver last looked.
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
        /// When the last receiver left; nil while one is attached.
        var idleSince: Duration?
        var closedAt: Duration?
        /// When a tick first saw the connection closing while a receiver held it.
        var closingSeenAt: Duration?
        /// What a tick took from the queue when it closed the session with no receiver (the
        /// session's last frames and its close), for the next receiver.
        var leftover: [HubOutboundItem] = []
    }

    let key: String
    let handle: HubSessionHandle
    let clock: HubClock
    let disconnectDelay: Duration
    let maxInboundBytes: Int
    private let state: Mutex<State>
    private let inbound: InboundProcessor
    private let ticking = Ticking()

    /// The session's entry on the ticker, once it ticks.
    private final class Ticking: Sendable {
        let entry = Mutex<(ticker: ConnectionTicker, ticket: ConnectionTicker.Ticket)?>(nil)
        func wake() { self.entry.withLock { $0?.ticket }?.wake() }
    }

    init(key: String, handle: HubSessionHandle, clock: HubClock, disconnectDelay: Duration, maxInboundBytes: Int) {
        self.key = key
        self.handle = handle
        self.clock = clock
        self.disconnectDelay = disconnectDelay
        self.maxInboundBytes = maxInboundBytes
        self.state = Mutex(State(idleSince: clock.now()))
        let ticking = self.ticking
        let (start, onFrame, finish) = (handle.start, handle.onFrame, handle.finish)
        self.inbound = InboundProcessor(
            maxBytes: maxInboundBytes, start: start,
            onFrame: { frame in
                let open = await onFrame(frame)
                ticking.wake()
                return open
            },
            // The session asked to close: its goodbye is queued; a tick with no receiver closes it.
            onStopped: { ticking.wake() },
            end: finish,
            setReading: { _ in })
        self.inbound.enqueue(.start)
        handle.connection.queue.setDrain { [weak self] in self?.wake() }
    }

    var connection: HubConnection { self.handle.connection }
    var isClosed: Bool { self.state.withLock { $0.closedAt != nil } }
    /// Bytes of bodies received and not yet handled (tests, fuzzing).
    var inboundBacklogBytes: Int { self.inbound.backlogBytes }
    /// A receiving request holds the session (tests).
    var hasReceiver: Bool { self.state.withLock { $0.receiver != nil } }

    /// Ticks the session on `ticker` until `tick` says `.remove`; `removed` runs then.
    func startTicking(on ticker: ConnectionTicker, removed: @escaping @Sendable (SockJSHTTPSession) -> Void) {
        let ticket = ticker.add(clock: self.clock) { [weak self] in
            guard let self else { return .stop }
            switch await self.tick() {
            case .again(let notBefore): return .again(notBefore: notBefore)
            case .remove:
                removed(self)
                return .stop
            }
        }
        self.ticking.entry.withLock { $0 = (ticker, ticket) }
    }

    deinit {
        // Nobody holds the session any more (its registry is gone): stop ticking it.
        if let entry = self.ticking.entry.withLock({ $0 }) { entry.ticker.remove(entry.ticket) }
    }

    // MARK: Receiving

    /// Takes the session for one receiving request. `isConnected` tells whether its HTTP connection
    /// is still open (read on ticks); `abort` closes that connection (a receiver stuck on a client
    /// that stopped reading).
    func attach(isConnected: @escaping @Sendable () -> Bool, abort: @escaping @Sendable () -> Void) -> Attachment {
        self.state.withLock { s in
            if s.closedAt != nil { return .closed }
            if s.receiver != nil { return .busy }
            s.nextReceiverId += 1
            let receiver = Receiver(id: s.nextReceiverId)
            s.receiver = ReceiverState(receiver: receiver, isConnected: isConnected, abort: abort)
            s.idleSince = nil
            return .attached(receiver)
        }
    }

    /// The frames a closed session had queued when nobody was receiving (once; then nothing).
    func takeLeftover() -> [HubOutboundItem] {
        self.state.withLock { s in
            defer { s.leftover = [] }
            return s.leftover
        }
    }

    /// The receiving request is done; the disconnect delay starts.
    func detach(_ receiver: Receiver) {
        let now = self.clock.now()
        let detached = self.state.withLock { s -> Bool in
            guard s.receiver?.receiver == receiver else { return false }
            s.receiver = nil
            s.idleSince = now
            return true
        }
        if detached { self.wakeTicket() }
    }

    /// What the queue holds, waiting for it if empty; `.closed` once the session closed, `.gone` if
    /// this receiver's request is gone.
    func next(for receiver: Receiver) async -> Outbound {
        while true {
            let settled: Outbound? = self.state.withLock { s in
                guard let current = s.receiver, current.receiver == receiver, !current.gone else { return .gone }
                if s.closedAt != nil { return .closed }
                s.signalled = false
                return nil
            }
            if let settled { return settled }
            let items = self.connection.queue.takeAll()
            if !items.isEmpty { return .items(items) }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.state.withLock { s -> Bool in
                        guard let current = s.receiver, current.receiver == receiver, !current.gone else { return true }
                        if s.signalled || s.closedAt != nil { return true }
                        s.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                self.markGone(receiver, abort: false)
            }
        }
    }

    /// Something was queued (the queue's drain).
    private func wake() {
        let waiter = self.state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.signalled = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    private func markGone(_ receiver: Receiver, abort: Bool) {
        let (waiter, abortRequest) = self.state.withLock { s -> (CheckedContinuation<Void, Never>?, (@Sendable () -> Void)?) in
            guard s.receiver?.receiver == receiver, s.receiver?.gone == false else { return (nil, nil) }
            s.receiver?.gone = true
            defer { s.waiter = nil }
            return (s.waiter, s.receiver?.abort)
        }
        waiter?.resume()
        if abort { abortRequest?() }
    }

    // MARK: Inbound

    /// A body from the client, handled after those before it (the session's `onFrame`).
    func send(_ frame: HubInboundFrame) -> SendResult {
        if self.isClosed { return .closed }
        if self.inbound.backlogBytes >= self.maxInboundBytes { return .busy }
        self.inbound.enqueue(.frame(frame))
        return .accepted
    }

    // MARK: Close and deadlines

    /// Closes the session once: its connection stops taking frames, a waiting receiver is woken,
    /// and `finish` runs after the bodies already received.
    func close(_ reason: HubCloseReason) {
        let now = self.clock.now()
        let (first, waiter) = self.state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?) in
            guard s.closedAt == nil else { return (false, nil) }
            s.closedAt = now
            defer { s.waiter = nil }
            return (true, s.waiter)
        }
        guard first else { return }
        waiter?.resume()
        self.connection.requestClose(reason)
        self.inbound.enqueue(.end)
        self.wakeTicket()
    }

    private func wakeTicket() { self.ticking.wake() }

    private enum Phase {
        case expired
        case closedUntil(Duration)
        case idleTimedOut
        case open(idleDeadline: Duration?, hasReceiver: Bool)
    }

    /// One tick: the disconnect delay, a receiver whose connection closed, the session's own tick,
    /// a close nobody takes.
    func tick() async -> TickResult {
        let now = self.clock.now()
        let delay = self.disconnectDelay
        var goneReceiver: Receiver?
        let phase = self.state.withLock { s -> Phase in
            if let closedAt = s.closedAt {
                return now - closedAt >= delay ? .expired : .closedUntil(closedAt + delay)
            }
            if let idle = s.idleSince, now - idle >= delay { return .idleTimedOut }
            if let r = s.receiver, !r.gone, !r.isConnected() { goneReceiver = r.receiver }
            return .open(idleDeadline: s.idleSince.map { $0 + delay }, hasReceiver: s.receiver != nil)
        }
        if let goneReceiver { self.markGone(goneReceiver, abort: false) }
        switch phase {
        case .expired:
            if let receiver = self.state.withLock({ $0.receiver?.receiver }) { self.markGone(receiver, abort: true) }
            return .remove
        case .closedUntil(let deadline):
            return .again(notBefore: deadline)
        case .idleTimedOut:
            self.close(.timeout)
            return .remove
        case .open(let idleDeadline, let hasReceiver):
            let open = await self.handle.onTick()
            if !open || self.connection.isClosing {
                if !hasReceiver {
                    // Nobody takes the close: the next receiver gets what waited, goodbye included.
                    let items = self.connection.queue.takeAll()
                    self.state.withLock { $0.leftover = items }
                    self.close(Self.closeReason(in: items) ?? .normal)
                    return .again(notBefore: now + delay)
                }
                let stuck = self.state.withLock { s -> Receiver? in
                    let seen = s.closingSeenAt ?? now
                    s.closingSeenAt = seen
                    return now - seen >= delay ? s.receiver?.receiver : nil
                }
                if let stuck { self.markGone(stuck, abort: true) }
                return .again(notBefore: now + .seconds(1))
            }
            var due = self.handle.nextTickDue() ?? .zero
            if let idleDeadline { due = min(due, idleDeadline) }
            // A receiver's HTTP connection may close without a word: look again within a second.
            if hasReceiver { due = min(due, now + .seconds(1)) }
            return .again(notBefore: due)
        }
    }

    static func closeReason(in items: [HubOutboundItem]) -> HubCloseReason? {
        for item in items {
            if case .close(let reason) = item { return reason }
        }
        return nil
    }
}
