import Synchronization

/// One task that ticks every connection of a given interval (heart-beat checks, Engine.IO pings,
/// silent-client timeouts), instead of a sleeping task per connection: 10,000 idle viewers at
/// a 500 ms tick were 20,000 timer wake-ups a second and a task's memory each.
///
/// Each round only ticks the connections that are due: a tick answers with the earliest hub-clock
/// time anything of its connection can next fall due (`TickOutcome.again(notBefore:)`), and the
/// round skips the entry until then by reading one atomic of the ticker's own. Why: ticking all
/// 10,000 idle viewers of a room twice a second touched every session's memory for nothing
/// (STOMP viewers without heart-beats have nothing due for 30 s, the liveness Ping) and cost ~5 %
/// of the server's CPU during a 10k fan-out (perf, `bench/hub/stomp_fanout.py`). A deadline may only
/// be early, never late: the clocks it derives from (last frame in, last write out) only move
/// forward. What can make something due sooner, an inbound frame (a STOMP CONNECT negotiating
/// heart-beats, a Socket.IO namespace join), calls `Ticket.wake()`: ticked in the next round.
///
/// Ticks run one after another on the ticker's task; a tick is cheap (a look at the session's
/// clocks, maybe a queued heart-beat), so one slow tick only delays the others a little. A tick
/// that returns `.stop` is not called again. The task stops when no connection is left and starts
/// again with the next one.
final class ConnectionTicker: Sendable {
    typealias Tick = @Sendable () async -> TickOutcome

    /// What a tick tells the ticker.
    enum TickOutcome: Sendable, Equatable {
        case stop
        /// Nothing can fall due before the hub-clock time `notBefore` (unless woken).
        case again(notBefore: Duration)

        /// Tick every round.
        static let everyRound = TickOutcome.again(notBefore: .zero)
    }

    /// One registered connection's tick and when it is next due.
    final class Ticket: Sendable {
        let id: UInt64
        fileprivate let tick: Tick
        fileprivate let clock: HubClock
        /// Hub-clock nanoseconds before which the round skips this ticket (0: due now; -1: its
        /// tick is running).
        fileprivate let dueNanos = Atomic<Int64>(0)

        fileprivate init(id: UInt64, clock: HubClock, tick: @escaping Tick) {
            self.id = id
            self.clock = clock
            self.tick = tick
        }

        /// Something may have become due sooner: tick in the next round.
        func wake() { self.dueNanos.store(0, ordering: .relaxed) }

        /// - Parameter now: this round's reading of the ticket's clock, taken on first need.
        fileprivate func isDue(now: inout RoundClock) -> Bool {
            let due = self.dueNanos.load(ordering: .relaxed)
            return due <= 0 || due <= now.nanoseconds(of: self.clock)
        }

        fileprivate func startTick() { self.dueNanos.store(-1, ordering: .relaxed) }

        fileprivate func schedule(_ notBefore: Duration) {
            // A wake() while the tick ran wins (the tick may have read state from before the frame).
            // At least 1: 0 and -1 mean "due now" and "ticking".
            let due = max(1, notBefore.hubNanoseconds)
            _ = self.dueNanos.compareExchange(expected: -1, desired: due, ordering: .relaxed)
        }
    }

    /// One reading of the clock per round (the tickets of a server share one clock): 10k idle
    /// viewers are 10k atomic loads a round, not 10k clock reads as well.
    fileprivate struct RoundClock {
        private var clock: HubClock?
        private var nanos: Int64 = 0

        mutating func nanoseconds(of clock: HubClock) -> Int64 {
            if let last = self.clock, last.isSameClock(as: clock) { return self.nanos }
            self.clock = clock
            self.nanos = clock.now().hubNanoseconds
            return self.nanos
        }
    }

    private struct State {
        var tickets: [UInt64: Ticket] = [:]
        /// `tickets` as the rounds walk them, rebuilt after an add or remove (handing a round the
        /// array is one retain, not 10k).
        var round: [Ticket]?
        var nextTicket: UInt64 = 0
        var running = false
    }

    let interval: Duration
    private let state = Mutex(State())

    private init(interval: Duration) { self.interval = interval }

    private static let tickers = Mutex<[Duration: ConnectionTicker]>([:])

    /// The process-wide ticker for `interval`.
    static func shared(interval: Duration) -> ConnectionTicker {
        self.tickers.withLock { tickers in
            if let ticker = tickers[interval] { return ticker }
            let ticker = ConnectionTicker(interval: interval)
            tickers[interval] = ticker
            return ticker
        }
    }

    /// Number of ticks registered (tests).
    var count: Int { self.state.withLock { $0.tickets.count } }

    /// Ticks `tick` from the next round on; its deadlines are read on `clock`.
    func add(clock: HubClock = .system, _ tick: @escaping Tick) -> Ticket {
        let (ticket, start): (Ticket, Bool) = self.state.withLock { s in
            s.nextTicket += 1
            let ticket = Ticket(id: s.nextTicket, clock: clock, tick: tick)
            s.tickets[ticket.id] = ticket
            s.round = nil
            let start = !s.running
            s.running = true
            return (ticket, start)
        }
        if start { Task { await self.run() } }
        return ticket
    }

    func remove(_ ticket: Ticket) {
        self.state.withLock { s in
            if s.tickets.removeValue(forKey: ticket.id) != nil { s.round = nil }
        }
    }

    private func run() async {
        while true {
            try? await Task.sleep(for: self.interval)
            let round: [Ticket]? = self.state.withLock { s in
                if s.tickets.isEmpty {
                    s.running = false
                    return nil
                }
                if let round = s.round { return round }
                let round = Array(s.tickets.values)
                s.round = round
                return round
            }
            guard let round else { return }
            var now = RoundClock()
            for ticket in round where ticket.isDue(now: &now) {
                ticket.startTick()
                switch await ticket.tick() {
                case .stop: self.remove(ticket)
                case .again(let notBefore): ticket.schedule(notBefore)
                }
            }
        }
    }
}
