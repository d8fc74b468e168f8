public import CoreMetrics
public import NIOCore
import Synchronization

/// The protocol-neutral hub: connection registry, topic registry, per-user connection sets,
/// encode-once fan-out through bounded per-connection queues, graceful shutdown.
///
/// It knows nothing of STOMP or Socket.IO: adapters register connections with a `HubWireFormat`
/// whose encoder turns a `HubMessage` into bytes. All methods are thread-safe and never wait on a
/// socket: fan-out only enqueues.
public final class Hub: Sendable {
    public enum RegistrationError: Error, Sendable { case shuttingDown }

    public let configuration: HubConfiguration
    public let clock: HubClock
    let metrics: HubMetrics
    let accounting: HubDeliveryAccounting

    private struct ConnectionEntry {
        let connection: HubConnection
        /// The user whose set holds the connection (`PresenceRegistry`), if signed in.
        var userId: String?
    }

    private struct State {
        var nextConnectionId: UInt64 = 0
        var sequence: UInt64 = 0
        var connections: [HubConnectionID: ConnectionEntry] = [:]
        var topics = TopicRegistry()
        var presence = PresenceRegistry()
        /// topic → its subscribers as `publish` walks them, built by the first publish after a
        /// change to the topic's subscriptions: a chat into a 10k room then takes one retain under
        /// the lock instead of 10k dictionary lookups and appends.
        var recipients: [String: FanoutPlan] = [:]
        var shuttingDown = false
        var encodes = 0
    }

    private let state = Mutex(State())

    public init(
        configuration: HubConfiguration = .init(),
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        clock: HubClock = .system
    ) {
        self.configuration = configuration
        self.clock = clock
        self.metrics = HubMetrics(factory: metricsFactory)
        self.accounting = HubDeliveryAccounting(metrics: self.metrics)
    }

    // MARK: Connections

    /// Registers a connection. Throws once `shutdown()` has begun.
    public func register(format: HubWireFormat, identity: HubIdentity? = nil) throws(RegistrationError) -> HubConnection {
        let now = self.clock.now()
        let result: (connection: HubConnection, connections: Int, joined: PresenceRegistry.Joined?)? = self.state.withLock { s in
            if s.shuttingDown { return nil }
            s.nextConnectionId += 1
            let c = HubConnection(
                id: HubConnectionID(rawValue: s.nextConnectionId), format: format, identity: identity,
                limits: self.configuration.outboundQueue, now: now, accounting: self.accounting)
            s.connections[c.id] = ConnectionEntry(connection: c, userId: identity?.userId)
            let connections = s.presence.opened(format)
            let joined = identity.map { s.presence.attach($0.userId, c.id, protocolName: format.protocolName) }
            return (c, connections, joined)
        }
        guard let result else { throw .shuttingDown }
        self.metrics.connections(format.protocolName, result.connections)
        if let joined = result.joined { self.metrics.usersOnline(format.protocolName, joined.usersOnline) }
        return result.connection
    }

    /// Result of `unregister`.
    public struct Unregistration: Sendable, Hashable {
        /// False if it was not (or no longer) registered.
        public var wasRegistered: Bool
        /// The user whose set the connection left, if signed in.
        public var userId: String?
        /// This was the user's last connection: the user entry is gone.
        public var wasLastConnectionOfUser: Bool
    }

    /// Removes the connection from every topic and from its user's set (the last connection of a
    /// user removes the user entry). Idempotent. Does not close the socket (see `close`).
    @discardableResult
    public func unregister(_ connection: HubConnection) -> Unregistration {
        let proto = connection.format.protocolName
        struct Gauges {
            var connections: Int
            var subscriptions: Int
            var topics: Int
            var usersOnline: Int?
        }
        let removed: (Unregistration, Gauges)? = self.state.withLock { s in
            guard let entry = s.connections.removeValue(forKey: connection.id) else { return nil }
            for topic in s.topics.removeAll(of: connection.id) { s.recipients.removeValue(forKey: topic) }
            let connections = s.presence.closed(connection.format)
            let left = entry.userId.map { s.presence.detach($0, connection.id, protocolName: proto) }
            return (
                Unregistration(wasRegistered: true, userId: entry.userId, wasLastConnectionOfUser: left?.wasLastConnectionOfUser ?? false),
                Gauges(connections: connections, subscriptions: s.topics.subscriptionCount, topics: s.topics.topicCount, usersOnline: left?.usersOnline))
        }
        guard let (unregistration, gauges) = removed else {
            return Unregistration(wasRegistered: false, userId: nil, wasLastConnectionOfUser: false)
        }
        self.metrics.connections(proto, gauges.connections)
        self.metrics.subscriptions.record(gauges.subscriptions)
        self.metrics.topics.record(gauges.topics)
        if let online = gauges.usersOnline { self.metrics.usersOnline(proto, online) }
        return unregistration
    }

    /// Result of `setIdentity`.
    public struct IdentityChange: Sendable, Hashable {
        /// The connection is the first one of the new user.
        public var isFirstConnectionOfUser: Bool
        /// The previous user (if different) lost its last connection.
        public var previousUserRemoved: Bool
        /// The new user already holds `configuration.maxConnectionsPerUser` connections of this
        /// protocol: nothing changed (the connection keeps its previous identity).
        public var refusedAtUserLimit = false
    }

    /// Changes who the connection belongs to (e.g. a Socket.IO `AUTH` event), moving it between
    /// per-user sets. Refused, changing nothing, when the new user already holds
    /// `configuration.maxConnectionsPerUser` connections of the connection's protocol.
    @discardableResult
    public func setIdentity(_ identity: HubIdentity?, for connection: HubConnection) -> IdentityChange {
        let proto = connection.format.protocolName
        let limit = self.configuration.maxConnectionsPerUser
        let (change, online): (IdentityChange, Int?) = self.state.withLock { s in
            guard var entry = s.connections[connection.id] else {
                connection.setIdentityLocked(identity)
                return (IdentityChange(isFirstConnectionOfUser: false, previousUserRemoved: false), nil)
            }
            if entry.userId == identity?.userId {
                connection.setIdentityLocked(identity)
                return (IdentityChange(isFirstConnectionOfUser: false, previousUserRemoved: false), nil)
            }
            if let identity, let limit, s.presence.connections(of: identity.userId, protocolName: proto) >= limit {
                return (IdentityChange(isFirstConnectionOfUser: false, previousUserRemoved: false, refusedAtUserLimit: true), nil)
            }
            connection.setIdentityLocked(identity)
            let left = entry.userId.map { s.presence.detach($0, connection.id, protocolName: proto) }
            let joined = identity.map { s.presence.attach($0.userId, connection.id, protocolName: proto) }
            entry.userId = identity?.userId
            s.connections[connection.id] = entry
            return (
                IdentityChange(
                    isFirstConnectionOfUser: joined?.isFirstConnectionOfUser ?? false,
                    previousUserRemoved: left?.wasLastConnectionOfUser ?? false),
                joined?.usersOnline ?? left?.usersOnline)
        }
        if let online { self.metrics.usersOnline(proto, online) }
        return change
    }

    /// Connections of a user (any protocol).
    public func connections(ofUser userId: String) -> [HubConnection] {
        self.state.withLock { s in
            (s.presence.connectionsOfUser[userId] ?? []).sorted().compactMap { s.connections[$0]?.connection }
        }
    }

    // MARK: Topics

    /// Subscribes `connection` to `topic` under `variant` (STOMP: the subscription id).
    /// Returns false if that exact (topic, variant) already exists or the connection is gone.
    @discardableResult
    public func subscribe(_ connection: HubConnection, topic: String, variant: String = "") -> Bool {
        let change: TopicRegistry.Change? = self.state.withLock { s in
            guard s.connections[connection.id] != nil else { return nil }
            let change = s.topics.subscribe(connection.id, topic: topic, variant: variant)
            if change.changed { s.recipients.removeValue(forKey: topic) }
            return change
        }
        return self.recordGauges(change)
    }

    /// Removes one subscription. Returns false if it did not exist.
    @discardableResult
    public func unsubscribe(_ connection: HubConnection, topic: String, variant: String = "") -> Bool {
        let change: TopicRegistry.Change = self.state.withLock { s in
            let change = s.topics.unsubscribe(connection.id, topic: topic, variant: variant)
            if change.changed { s.recipients.removeValue(forKey: topic) }
            return change
        }
        return self.recordGauges(change)
    }

    /// Records the subscription gauges after a change; returns whether anything changed.
    private func recordGauges(_ change: TopicRegistry.Change?) -> Bool {
        guard let change, change.changed else { return false }
        self.metrics.subscriptions.record(change.subscriptions)
        self.metrics.topics.record(change.topics)
        return true
    }

    /// Number of subscriptions on a topic.
    public func subscriberCount(topic: String) -> Int {
        self.state.withLock { $0.topics.subscriberCount(topic: topic) }
    }

    // MARK: Fan-out

    private struct EncodeKey: Hashable {
        var format: String
        var variant: String
    }

    /// A topic's subscribers grouped for `publish`: one group per distinct (wire format, variant),
    /// encoded once; within a group the connections attached to a lane are listed per lane (one
    /// hand-over each), the others are handed the frame one by one.
    private struct FanoutPlan {
        struct LaneBatch {
            let lane: LoopDrainBatch
            var members: [ChannelDrain]
        }

        struct Group {
            let format: HubWireFormat
            let variant: String
            var lanes: [LaneBatch] = []
            var direct: [HubConnection] = []
        }

        var groups: [Group] = []

        private struct LaneKey: Hashable {
            let group: Int
            let lane: ObjectIdentifier
        }

        init(_ subscribers: [HubConnectionID: [String]], connections: [HubConnectionID: ConnectionEntry]) {
            var groupIndex: [EncodeKey: Int] = [:]
            var laneIndex: [LaneKey: Int] = [:]
            for (id, variants) in subscribers {
                guard let connection = connections[id]?.connection else { continue }
                let attachment = connection.laneAttachment
                for variant in variants {
                    let key = EncodeKey(format: connection.format.name, variant: variant)
                    let g: Int
                    if let existing = groupIndex[key] {
                        g = existing
                    } else {
                        g = self.groups.count
                        groupIndex[key] = g
                        self.groups.append(Group(format: connection.format, variant: variant))
                    }
                    guard let attachment else {
                        self.groups[g].direct.append(connection)
                        continue
                    }
                    let laneKey = LaneKey(group: g, lane: ObjectIdentifier(attachment.lane))
                    if let l = laneIndex[laneKey] {
                        self.groups[g].lanes[l].members.append(attachment.member)
                    } else {
                        laneIndex[laneKey] = self.groups[g].lanes.count
                        self.groups[g].lanes.append(LaneBatch(lane: attachment.lane, members: [attachment.member]))
                    }
                }
            }
        }
    }

    /// Publishes to every subscription of `topic`: encodes once per distinct (wire format,
    /// variant) among the subscribers and hands the same buffer to every matching connection — per
    /// lane in one hand-over (`HubLaneAttachment`), else into each queue.
    /// Never waits; a subscriber whose queue overflows is dropped as a slow consumer.
    /// - Returns: the number of frames handed over (a lane may still find a member closing).
    @discardableResult
    public func publish(topic: String, payload: ByteBuffer, contentType: String? = "application/json") -> Int {
        let (message, plan): (HubMessage, FanoutPlan?) = self.state.withLock { s in
            s.sequence += 1
            let m = HubMessage(destination: topic, payload: payload, contentType: contentType, sequence: s.sequence)
            if let cached = s.recipients[topic] { return (m, cached) }
            guard let subs = s.topics.subscribers[topic] else { return (m, nil) }
            let plan = FanoutPlan(subs, connections: s.connections)
            s.recipients[topic] = plan
            return (m, plan)
        }
        guard let plan, !plan.groups.isEmpty else { return 0 }
        var sent: [String: Int] = [:]
        for group in plan.groups {
            let frame = group.format.encoder.encode(message, variant: group.variant)
            self.metrics.encode(group.format.protocolName)
            var handed = 0
            for batch in group.lanes {
                batch.lane.deliver(frame, to: batch.members)
                handed += batch.members.count
            }
            for connection in group.direct where connection.hand(frame) { handed += 1 }
            sent[group.format.protocolName, default: 0] += handed
        }
        self.state.withLock { $0.encodes += plan.groups.count }
        for (p, n) in sent { self.metrics.messagesOut(p, n) }
        return sent.values.reduce(0, +)
    }

    /// Convenience: publish a UTF-8 string payload (JSON text).
    @discardableResult
    public func publish(topic: String, json: String) -> Int {
        self.publish(topic: topic, payload: ByteBuffer(string: json), contentType: "application/json")
    }

    /// Pushes an event to every connection of `userId` whose format accepts user messages
    /// (Socket.IO: every tab of the user). Encoded once per format. Returns the number of sockets reached.
    @discardableResult
    public func sendToUser(userId: String, event: String, payload: ByteBuffer) -> Int {
        let (message, recipients): (HubMessage, [HubConnection]) = self.state.withLock { s in
            s.sequence += 1
            let m = HubMessage(destination: event, payload: payload, contentType: "application/json", sequence: s.sequence)
            let list = (s.presence.connectionsOfUser[userId] ?? []).sorted().compactMap { s.connections[$0]?.connection }.filter { $0.format.acceptsUserMessages }
            return (m, list)
        }
        var cache: [String: HubOutboundFrame] = [:]
        var reached = 0
        var sent: [String: Int] = [:]
        for connection in recipients {
            let frame: HubOutboundFrame
            if let f = cache[connection.format.name] {
                frame = f
            } else {
                frame = connection.format.encoder.encode(message, variant: "")
                cache[connection.format.name] = frame
                self.metrics.encode(connection.format.protocolName)
            }
            if connection.hand(frame) {
                reached += 1
                sent[connection.format.protocolName, default: 0] += 1
            }
        }
        if !cache.isEmpty { self.state.withLock { $0.encodes += cache.count } }
        for (p, n) in sent { self.metrics.messagesOut(p, n) }
        if reached > 0 { self.metrics.userPushes.increment() }
        return reached
    }

    /// Convenience: `sendToUser` with a JSON string payload.
    @discardableResult
    public func sendToUser(userId: String, event: String, json: String) -> Int {
        self.sendToUser(userId: userId, event: event, payload: ByteBuffer(string: json))
    }

    /// Queues a frame for one connection (adapters: replies such as CONNECTED, RECEIPT, acks).
    /// Returns false if the connection is closing or just overflowed.
    @discardableResult
    public func send(_ frame: HubOutboundFrame, to connection: HubConnection) -> Bool {
        let ok = connection.hand(frame)
        if ok { self.metrics.messagesOut(connection.format.protocolName, 1) }
        return ok
    }

    /// Asks the connection's writer to say goodbye and close after what is already queued.
    public func close(_ connection: HubConnection, reason: HubCloseReason) {
        connection.requestClose(reason)
    }

    // MARK: Inbound accounting (called by adapters)

    /// Counts one inbound application message (metrics).
    public func recordInbound(_ connection: HubConnection) {
        self.metrics.messageIn(connection.format.protocolName)
    }

    /// Counts one rate-limited inbound message (metrics).
    public func recordRateLimited(_ connection: HubConnection) {
        self.metrics.rateLimited(connection.format.protocolName)
    }

    // MARK: Debug / shutdown

    public func snapshot() -> HubSnapshot {
        self.state.withLock { s in
            HubSnapshot(
                connectionsByFormat: s.presence.connectionsByFormat,
                users: s.presence.userCount,
                usersByProtocol: s.presence.usersOnlineByProtocol,
                topics: s.topics.topicCount,
                subscriptions: s.topics.subscriptionCount,
                slowClientDrops: self.accounting.slowDropCount,
                encodes: s.encodes
            )
        }
    }

    public var isShuttingDown: Bool { self.state.withLock { $0.shuttingDown } }

    /// Refuses new connections, asks every connection to close (`.shutdown`: STOMP ERROR
    /// "server shutting down", SockJS `c[3000,"Go away!"]`, Engine.IO `1`) and waits up to
    /// `configuration.shutdownGracePeriod` for the sessions to unregister.
    public func shutdown() async {
        let all: [HubConnection] = self.state.withLock { s in
            s.shuttingDown = true
            return s.connections.values.map(\.connection)
        }
        for c in all { c.requestClose(.shutdown) }
        let deadline = ContinuousClock.now + self.configuration.shutdownGracePeriod
        while ContinuousClock.now < deadline {
            if self.state.withLock({ $0.connections.isEmpty }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
