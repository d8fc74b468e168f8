import Logging
import Synchronization

/// A protocol's session, as the one driver (`HubSessionDriver`) runs it: a value-type state machine
/// (`STOMPSession`, `SocketIOSession`) that turns what arrives — frames, ticks, the answers of
/// asynchronous calls — into actions. It does not know the transport that carries it.
protocol HubSession: Sendable {
    associatedtype Action: Sendable
    /// Heart-beats and deadlines; `lastOutboundAt` is when the connection last wrote.
    mutating func tick(now: Duration, lastOutboundAt: Duration) -> [Action]
    /// The earliest hub-clock time `tick` can act (nil: any tick).
    func nextTickDeadline(lastOutboundAt: Duration) -> Duration?
}

/// What every protocol's actions come down to, done the same way for all by the driver. The other
/// actions (authentication, backend calls, identity changes) are the protocol's
/// (`HubSessionProtocol.perform`).
enum HubSessionStep<Session: HubSession> {
    /// Write this frame to the client.
    case send(HubOutboundFrame)
    /// Subscribe the connection to a hub topic (`variant`: STOMP's subscription id).
    case subscribe(topic: String, variant: String)
    case unsubscribe(topic: String, variant: String)
    /// An application message from the client: it spends its sender's rate-limit budget
    /// (`HubConnection.rateLimitKey`); within it the protocol performs it, over it the session is
    /// told with `refused`.
    case rateLimited(refused: @Sendable (inout Session) -> [Session.Action])
    /// Close after what is queued.
    case close(HubCloseReason)
}

/// What the protocol's own handling of an action leads to.
enum HubFollowUp<Action: Sendable>: Sendable {
    /// These actions, before the rest.
    case then([Action])
    /// These actions, instead of the rest (a CONNECT refused at the user's connection limit: an
    /// ERROR instead of the CONNECTED that followed).
    case insteadOfTheRest([Action])

    static var nothing: HubFollowUp { .then([]) }
}

/// One protocol's half of a connection the driver runs: which of its session's actions are common
/// steps, and how it performs the others. One instance per connection (it may keep state of its
/// own, such as the identity the backend was told about).
protocol HubSessionProtocol: Sendable {
    associatedtype Session: HubSession
    /// The common step `action` is; nil for one `perform` does.
    func step(_ action: Session.Action) -> HubSessionStep<Session>?
    /// Performs a protocol-specific action, or a rate-limited one that was within budget.
    func perform(_ action: Session.Action, driver: HubSessionDriver<Self>) async -> HubFollowUp<Session.Action>
    /// After each tick (SockJS's own `h` heart-beat frame).
    func ticked(_ actions: [Session.Action], now: Duration, lastWrite: Duration, driver: HubSessionDriver<Self>)
    /// When a tick is next due, given the session's own deadline.
    func nextTickDue(session: Duration?, lastWrite: Duration) -> Duration?
}

extension HubSessionProtocol {
    func ticked(_ actions: [Session.Action], now: Duration, lastWrite: Duration, driver: HubSessionDriver<Self>) {}
    func nextTickDue(session: Duration?, lastWrite: Duration) -> Duration? { session }
}

/// Runs one connection's session, for any protocol: performs its actions in order (what an action
/// leads to before the rest), and owns what every protocol does the same way — writing, hub
/// subscriptions, rate limiting and closing. Transport-neutral: a transport calls it through the
/// connection's `HubSessionHandle`.
final class HubSessionDriver<Protocol: HubSessionProtocol>: Sendable {
    typealias Action = Protocol.Session.Action

    let hub: Hub
    let connection: HubConnection
    let session: Mutex<Protocol.Session>
    let proto: Protocol
    let rateLimiter: RateLimiter
    let logger: Logger

    init(hub: Hub, connection: HubConnection, session: Protocol.Session, proto: Protocol, rateLimiter: RateLimiter, logger: Logger) {
        self.hub = hub
        self.connection = connection
        self.session = Mutex(session)
        self.proto = proto
        self.rateLimiter = rateLimiter
        self.logger = logger
    }

    /// Changes the session and performs what the change asks for. Returns false once the session
    /// is closing.
    func run(_ change: (inout Protocol.Session) -> [Action]) async -> Bool {
        let actions = self.session.withLock { session -> [Action] in change(&session) }
        return await self.perform(actions)
    }

    /// Performs actions in order (what an action leads to is performed before the rest). Returns
    /// false once a close was requested.
    func perform(_ initial: [Action]) async -> Bool {
        var work = initial[...]
        var open = true
        while let action = work.popFirst() {
            var followUp = HubFollowUp<Action>.nothing
            switch self.proto.step(action) {
            case .send(let frame)?:
                self.hub.send(frame, to: self.connection)
            case .subscribe(let topic, let variant)?:
                self.hub.subscribe(self.connection, topic: topic, variant: variant)
            case .unsubscribe(let topic, let variant)?:
                self.hub.unsubscribe(self.connection, topic: topic, variant: variant)
            case .rateLimited(let refused)?:
                self.hub.recordInbound(self.connection)
                if self.rateLimiter.allow(self.connection.rateLimitKey) {
                    followUp = await self.proto.perform(action, driver: self)
                } else {
                    self.hub.recordRateLimited(self.connection)
                    followUp = .then(self.session.withLock { refused(&$0) })
                }
            case .close(let reason)?:
                self.hub.close(self.connection, reason: reason)
                open = false
            case nil:
                followUp = await self.proto.perform(action, driver: self)
            }
            switch followUp {
            case .then(let next) where !next.isEmpty:
                work = next[...] + work
            case .then:
                break
            case .insteadOfTheRest(let next):
                work = next[...]
            }
        }
        return open
    }

    /// A tick of the transport's ticker. Returns false once the session is closing.
    func tick() async -> Bool {
        let now = self.hub.clock.now()
        let lastWrite = self.connection.lastWriteAt
        let actions = self.session.withLock { $0.tick(now: now, lastOutboundAt: lastWrite) }
        self.proto.ticked(actions, now: now, lastWrite: lastWrite, driver: self)
        if actions.isEmpty { return !self.connection.isClosing }
        return await self.perform(actions)
    }

    /// The earliest hub-clock time `tick` can act (nil: any tick).
    func nextTickDue() -> Duration? {
        let lastWrite = self.connection.lastWriteAt
        return self.proto.nextTickDue(session: self.session.withLock { $0.nextTickDeadline(lastOutboundAt: lastWrite) }, lastWrite: lastWrite)
    }
}
