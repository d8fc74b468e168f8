import Synchronization

/// A hub session carried by HTTP requests instead of a socket (long-polling: Engine.IO's `polling`
/// transport, and any other that answers "what is new?" requests): transport-neutral, it knows
/// neither HTTP nor a protocol's framing.
///
/// - Outbound: frames wait in the connection's own bounded queue (`HubConnection.queue`; no
///   delivery lane is attached) until a poll takes them all; a poll that finds nothing waits (at
///   most one waits at a time) until a frame arrives or its `maxWait` passes. A second poll while
///   one waits is an error that closes the session (Engine.IO does the same).
/// - Inbound: the frames of one request are fed to the session's `onFrame` in order, one request
///   at a time (a request arriving while another's frames are still handled is an error that
///   closes the session).
/// - Idle: with no poll waiting, and none for `idleTimeout`, the session is closed (the client is
///   gone). A closing session's last frames wait `closeGrace` for a poll to take them.
/// - `finish` (the session's: deregistration, the backend told) runs once, after the last inbound
///   frame was handled; `onEnd` runs then too, or when the session is handed to another transport.
/// - Hand-over (`handOver`): the same session continues on another transport (Engine.IO's upgrade
///   to WebSocket, `ConnectionRunner.attach`); what waits in the queue stays first.
///
/// Ticked by the process-wide `ConnectionTicker` of the session's tick interval: poll deadlines,
/// the idle deadline and the session's own ticks (heart-beats, time-outs).
final class PolledConnection: Sendable {
    /// What a poll is answered with.
    enum PollResult: Sendable, Equatable {
        /// Frames the session sent (coalesced by the session's `coalesce`), in order.
        case frames([HubOutboundFrame])
        /// Nothing within the poll's wait (or the poll was cut short: `interruptWaitingPoll`).
        case empty
        /// The session closed: its last frames (the goodbye included). Later polls get `.gone`.
        case closed([HubOutboundFrame], HubCloseReason)
        /// Another poll was already waiting: the session is closed.
        case overlapping
        /// No such session any more (finished, or handed over to another transport).
        case gone
    }

    /// What feeding a request's frames came to.
    enum ReceiveResult: Sendable, Equatable {
        /// Handled, in order (the session may have closed because of them).
        case handled
        /// Another request's frames were still being handled: the session is closed.
        case overlapping
        /// No such session any more.
        case gone
    }

    private enum Phase: Equatable {
        case open
        /// The session closed: these frames (goodbye included) wait for one poll, until `since + closeGrace`.
        case closing(frames: [HubOutboundFrame], reason: HubCloseReason, since: Duration)
        /// `finish` ran or is running.
        case finished
        /// Another transport carries the session now.
        case handedOver
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<PollResult, Never>
        let deadline: Duration
    }

    private struct State {
        var phase: Phase = .open
        var waiter: Waiter?
        var nextWaiterID: UInt64 = 0
        /// When the last poll ended (or the connection started): the idle deadline counts from here.
        var lastPollEndedAt: Duration
        /// A request's frames (or `start`) are being handled.
        var receiving = false
        /// The session is to be finished once the frames being handled are done.
        var finishWhenReceived = false
        var ticket: ConnectionTicker.Ticket?
        /// `finish` began (it runs once).
        var finishStarted = false
    }

    let session: HubSessionHandle
    let hub: Hub
    let idleTimeout: Duration
    let closeGrace: Duration
    private let onEnd: @Sendable () -> Void
    private let state: Mutex<State>

    var connection: HubConnection { self.session.connection }
    private var clock: HubClock { self.hub.clock }

    /// - Parameters:
    ///   - idleTimeout: no poll for this long (and none waiting) closes the session.
    ///   - closeGrace: how long a closed session's last frames wait for a poll.
    ///   - onEnd: once, when the session is finished or handed over (the transport's registry).
    init(session: HubSessionHandle, hub: Hub, idleTimeout: Duration, closeGrace: Duration = .seconds(5), onEnd: @escaping @Sendable () -> Void) {
        self.session = session
        self.hub = hub
        self.idleTimeout = idleTimeout
        self.closeGrace = min(closeGrace, idleTimeout)
        self.onEnd = onEnd
        self.state = Mutex(State(lastPollEndedAt: hub.clock.now()))
    }

    /// Runs the session's `start` (Engine.IO's open packet is queued there) and begins ticking.
    /// Call once, before anything else.
    func start() async {
        self.state.withLock { $0.receiving = true }
        await self.session.start()
        self.connection.queue.setDrain { [weak self] in self?.queueWoke() }
        let ticker = ConnectionTicker.shared(interval: self.session.tickInterval)
        let ticket = ticker.add(clock: self.clock) { [self] in await self.tick() }
        let late = self.state.withLock { s -> Bool in
            s.ticket = ticket
            return s.phase == .finished || s.phase == .handedOver
        }
        if late { ticker.remove(ticket) }
        await self.receiveEnded()
    }

    // MARK: Outbound

    /// The frames waiting now, or — if none — waits up to `maxWait` for some (`.zero`: answers at
    /// once). At most one poll waits; a second one closes the session (`.overlapping`).
    func poll(maxWait: Duration) async -> PollResult {
        let id = self.state.withLock { s -> UInt64 in
            s.nextWaiterID &+= 1
            return s.nextWaiterID
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<PollResult, Never>) in
                let (answer, displaced) = self.state.withLock { s -> (PollResult?, Waiter?) in
                    let now = self.clock.now()
                    switch s.phase {
                    case .finished, .handedOver:
                        return (.gone, nil)
                    case .closing(let frames, let reason, _):
                        s.phase = .finished
                        return (.closed(frames, reason), nil)
                    case .open:
                        break
                    }
                    if let other = s.waiter {
                        s.waiter = nil
                        return (.overlapping, other)
                    }
                    if let answer = self.takeQueued(&s, now: now) { return (answer, nil) }
                    if maxWait <= .zero { return (Self.ended(&s, .empty, now: now), nil) }
                    s.waiter = Waiter(id: id, continuation: continuation, deadline: now + maxWait)
                    return (nil, nil)
                }
                if let displaced {
                    self.hub.close(self.connection, reason: .protocolError("overlapping polls"))
                    displaced.continuation.resume(returning: .closed([], .protocolError("overlapping polls")))
                }
                if let answer {
                    continuation.resume(returning: answer)
                } else {
                    self.state.withLock { $0.ticket }?.wake()  // its deadline may be the earliest now
                }
            }
        } onCancel: {
            self.resumeWaiter(id: id, with: .empty)
        }
        switch result {
        case .closed:
            await self.finish()
        case .overlapping:
            await self.finish()
        case .frames, .empty, .gone:
            break
        }
        return result
    }

    /// Answers the waiting poll now, with what is queued or `.empty` (Engine.IO: the `noop` that
    /// lets a client pause polling before its upgrade). Returns whether a poll was waiting.
    @discardableResult
    func interruptWaitingPoll() -> Bool {
        let (waiter, answer) = self.state.withLock { s -> (Waiter?, PollResult) in
            guard let waiter = s.waiter else { return (nil, .empty) }
            s.waiter = nil
            let now = self.clock.now()
            return (waiter, self.takeQueued(&s, now: now) ?? Self.ended(&s, .empty, now: now))
        }
        guard let waiter else { return false }
        waiter.continuation.resume(returning: answer)
        return true
    }

    /// Whether a poll waits now (tests).
    var hasWaitingPoll: Bool { self.state.withLock { $0.waiter != nil } }

    /// What the queue holds, as a poll's answer (nil: nothing). Under the state lock (the queue's
    /// own lock is taken inside it, never the other way round).
    private func takeQueued(_ s: inout State, now: Duration) -> PollResult? {
        let items = self.connection.queue.takeAll()
        if items.isEmpty { return nil }
        var frames: [HubOutboundFrame] = []
        frames.reserveCapacity(items.count)
        for item in items {
            switch item {
            case .frame(let frame):
                frames.append(frame)
            case .close(let reason):
                // Nothing follows a close. The poll that gets these finishes the session.
                s.phase = .finished
                s.lastPollEndedAt = now
                return .closed(self.session.coalesce(frames) + self.session.goodbye(reason), reason)
            }
        }
        s.lastPollEndedAt = now
        return .frames(self.session.coalesce(frames))
    }

    private static func ended(_ s: inout State, _ result: PollResult, now: Duration) -> PollResult {
        s.lastPollEndedAt = now
        return result
    }

    /// The queue has something (the hub's wake-up, outside the queue's lock): the waiting poll
    /// takes it. With no poll waiting the frames stay queued, within the queue's limits, for the
    /// next poll; a close is noticed there or at the next tick.
    private func queueWoke() {
        let (waiter, answer) = self.state.withLock { s -> (Waiter?, PollResult?) in
            guard s.phase == .open, let waiter = s.waiter else { return (nil, nil) }
            guard let answer = self.takeQueued(&s, now: self.clock.now()) else { return (nil, nil) }
            s.waiter = nil
            return (waiter, answer)
        }
        if let waiter, let answer { waiter.continuation.resume(returning: answer) }
    }

    private func resumeWaiter(id: UInt64, with result: PollResult) {
        let waiter = self.state.withLock { s -> Waiter? in
            guard let waiter = s.waiter, waiter.id == id else { return nil }
            s.waiter = nil
            s.lastPollEndedAt = self.clock.now()
            return waiter
        }
        waiter?.continuation.resume(returning: result)
    }

    // MARK: Inbound

    /// Feeds one request's frames to the session, in order, and returns when they are handled.
    func receive(_ frames: [HubInboundFrame]) async -> ReceiveResult {
        let verdict = self.state.withLock { s -> ReceiveResult? in
            switch s.phase {
            case .finished, .handedOver: return .gone
            case .closing: return .handled  // the session no longer reads
            case .open: break
            }
            if s.receiving { return .overlapping }
            s.receiving = true
            return nil
        }
        if verdict == .overlapping {
            self.hub.close(self.connection, reason: .protocolError("overlapping requests"))
            self.state.withLock { $0.finishWhenReceived = true }
            return .overlapping
        }
        if let verdict { return verdict }
        for frame in frames {
            if !(await self.session.onFrame(frame)) { break }
        }
        self.state.withLock { $0.ticket }?.wake()
        await self.receiveEnded()
        return .handled
    }

    private func receiveEnded() async {
        let finish = self.state.withLock { s -> Bool in
            s.receiving = false
            defer { s.finishWhenReceived = false }
            return s.finishWhenReceived
        }
        if finish { await self.finish() }
    }

    // MARK: Ticks and the end

    /// One tick: poll and idle deadlines, the session's own tick. Called by the ticker (tests call
    /// it directly with a manual clock).
    func tick() async -> ConnectionTicker.TickOutcome {
        let now = self.clock.now()
        enum Step { case stop, finish, closeIdle, run }
        let (step, expired) = self.state.withLock { s -> (Step, Waiter?) in
            var expired: Waiter?
            if let waiter = s.waiter, waiter.deadline <= now {
                s.waiter = nil
                s.lastPollEndedAt = now
                expired = waiter
            }
            switch s.phase {
            case .finished, .handedOver:
                return (.stop, expired)
            case .closing(_, _, let since):
                return (now - since >= self.closeGrace ? .finish : .run, expired)
            case .open:
                if self.connection.isClosing && s.waiter == nil {
                    // The session closed with no poll waiting: keep its last frames for the next one.
                    let items = self.connection.queue.takeAll()
                    var frames: [HubOutboundFrame] = []
                    var reason = HubCloseReason.normal
                    for item in items {
                        switch item {
                        case .frame(let f): frames.append(f)
                        case .close(let r): reason = r
                        }
                    }
                    s.phase = .closing(frames: self.session.coalesce(frames) + self.session.goodbye(reason), reason: reason, since: now)
                    return (.run, expired)
                }
                if s.waiter == nil && now - s.lastPollEndedAt >= self.idleTimeout { return (.closeIdle, expired) }
                return (.run, expired)
            }
        }
        expired?.continuation.resume(returning: .empty)
        switch step {
        case .stop:
            return .stop
        case .finish:
            await self.finish()
            return .stop
        case .closeIdle:
            await self.finish()  // closes the hub connection (.timeout)
            return .stop
        case .run:
            break
        }
        _ = await self.session.onTick()
        return .again(notBefore: self.nextDue())
    }

    /// The earliest hub-clock time a tick can act.
    private func nextDue() -> Duration {
        let sessionDue = self.session.nextTickDue() ?? .zero
        return self.state.withLock { s -> Duration in
            var due = sessionDue
            switch s.phase {
            case .open:
                if let waiter = s.waiter { due = min(due, waiter.deadline) } else { due = min(due, s.lastPollEndedAt + self.idleTimeout) }
                if self.connection.isClosing { due = .zero }
            case .closing(_, _, let since):
                due = min(due, since + self.closeGrace)
            case .finished, .handedOver:
                break
            }
            return due
        }
    }

    /// Ends the session once: a waiting poll is answered `.gone`, the ticker forgets it, the
    /// session's `finish` runs (after the frames being handled, if any), then `onEnd`.
    func finish() async {
        let ending = self.state.withLock { s -> (Waiter?, ConnectionTicker.Ticket?)? in
            if s.phase == .handedOver || s.finishStarted { return nil }
            s.phase = .finished
            if s.receiving {
                s.finishWhenReceived = true
                return nil
            }
            s.finishStarted = true
            defer {
                s.waiter = nil
                s.ticket = nil
            }
            return (s.waiter, s.ticket)
        }
        guard let (waiter, ticket) = ending else { return }
        waiter?.continuation.resume(returning: .gone)
        if let ticket { ConnectionTicker.shared(interval: self.session.tickInterval).remove(ticket) }
        // The hub connection closes with the session (an idle or overlapping one was not asked yet).
        if !self.connection.isClosing { self.hub.close(self.connection, reason: .timeout) }
        await self.session.finish()
        self.onEnd()
    }

    // MARK: Hand-over

    /// Stops carrying the session and returns it for another transport, with a `start` that does
    /// nothing (it ran here); what waits in the queue stays first. nil when the session is closing,
    /// or frames are being handled (the other transport's would overtake them). A waiting poll is
    /// answered `.empty`; later polls get `.gone`.
    func handOver() -> HubSessionHandle? {
        let taken = self.state.withLock { s -> (Waiter?, ConnectionTicker.Ticket?)? in
            guard s.phase == .open, !s.receiving, !self.connection.isClosing else { return nil }
            s.phase = .handedOver
            defer {
                s.waiter = nil
                s.ticket = nil
            }
            return (s.waiter, s.ticket)
        }
        guard let (waiter, ticket) = taken else { return nil }
        waiter?.continuation.resume(returning: .empty)
        if let ticket { ConnectionTicker.shared(interval: self.session.tickInterval).remove(ticket) }
        self.onEnd()
        let s = self.session
        return HubSessionHandle(
            connection: s.connection, tickInterval: s.tickInterval, start: {}, coalesce: s.coalesce, goodbye: s.goodbye,
            onFrame: s.onFrame, onTick: s.onTick, nextTickDue: s.nextTickDue, finish: s.finish)
    }

    /// True once the session is finished (or finishing).
    var isFinished: Bool { self.state.withLock { $0.phase == .finished } }
}
