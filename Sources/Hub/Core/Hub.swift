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
        /// Offsets and the per-topic history (recovery after a reconnect).
        var history: HubHistory
        /// topic → subscriptions being recovered: not in `topics` yet; what is published meanwhile
        /// waits here and is handed over after the missed messages (`recover`).
        var recovering: [String: [RecoveringKey: PendingLive]] = [:]
    }

    struct RecoveringKey: Hashable {
        var connection: HubConnectionID
        var variant: String
    }

    struct PendingLive {
        var messages: [HubMessage] = []
        var overflowed = false
    }

    private let state: Mutex<State>

    public init(
        configuration: HubConfiguration = .init(),
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        clock: HubClock = .system
    ) {
        self.configuration = configuration
        self.clock = clock
        self.metrics = HubMetrics(factory: metricsFactory)
        self.accounting = HubDeliveryAccounting(metrics: self.metrics)
        self.state = Mutex(State(history: HubHistory(configuration: configuration.history)))
    }

    /// The epoch of this hub's offsets (`HubHistoryConfiguration.epoch`, or the one adopted).
    public var epoch: String { self.state.withLock { $0.history.epoch } }

    /// Takes a cluster's epoch (every node the same one, kept in the database, so that a client
    /// recovers on any node); the history kept so far is forgotten. Call before the broker delivers.
    public func adoptEpoch(_ epoch: String) {
        self.state.withLock { $0.history.adopt(epoch: epoch) }
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
            if !s.recovering.isEmpty {
                for topic in Array(s.recovering.keys) {
                    s.recovering[topic] = s.recovering[topic]?.filter { $0.key.connection != connection.id }
                    if s.recovering[topic]?.isEmpty ?? true { s.recovering.removeValue(forKey: topic) }
                }
            }
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
            let key = RecoveringKey(connection: connection.id, variant: variant)
            if s.recovering[topic]?.removeValue(forKey: key) != nil, s.recovering[topic]?.isEmpty ?? false {
                s.recovering.removeValue(forKey: topic)
            }
            let change = s.topics.unsubscribe(connection.id, topic: topic, variant: variant)
            if change.changed { s.recipients.removeValue(forKey: topic) }
            return change
        }
        return self.recordGauges(change)
    }

    /// Records the subscription gauges after a change; returns whether anything changed.
    @discardableResult
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
    ///
    /// A topic under `configuration.historyTopicPrefix` gets an offset (`offset`, else the hub's
    /// counter) and the hub's epoch on the message, and the message is kept in its history ring;
    /// subscriptions still recovering get it after their missed messages (`recover`).
    /// - Returns: the number of frames handed over (a lane may still find a member closing).
    @discardableResult
    public func publish(topic: String, payload: ByteBuffer, contentType: String? = "application/json", offset: HubPublishOffset? = nil) -> Int {
        let now = self.clock.now()
        let prefix = self.configuration.historyTopicPrefix
        let (message, plan): (HubMessage, FanoutPlan?) = self.state.withLock { s in
            s.sequence += 1
            var m = HubMessage(destination: topic, payload: payload, contentType: contentType, sequence: s.sequence)
            if topic.hasPrefix(prefix) {
                let value = offset?.offset ?? s.history.nextOffset()
                s.history.record(topic: topic, offset: value, explicitFloor: offset?.completeAfter, payload: payload, contentType: contentType, now: now)
                m.position = HubStreamPosition(offset: value, epoch: s.history.epoch)
                if var waiting = s.recovering[topic] {
                    let limit = self.configuration.history.maxBufferedWhileRecovering
                    for key in waiting.keys {
                        if waiting[key]!.messages.count < limit {
                            waiting[key]!.messages.append(m)
                        } else {
                            waiting[key]!.overflowed = true
                        }
                    }
                    s.recovering[topic] = waiting
                }
            }
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

    // MARK: Recovery (Centrifugo "History and recovery")

    /// How a recovery ended (the marker's content).
    public struct RecoveryOutcome: Sendable, Hashable {
        /// All the missed messages were handed over (else the client reloads its state by REST).
        public var recovered: Bool
        /// Messages handed over before the marker.
        public var missed: Int
        /// The position the marker carries: the last message the subscription has now seen.
        public var position: HubStreamPosition
    }

    /// Subscribes `connection` to `topic` under `variant`, first handing it what it missed since
    /// `position`, in order, then a marker, then what was published meanwhile — nothing twice,
    /// nothing lost:
    /// 1. under the lock, the subscription starts buffering what `publish` sends to the topic (not
    ///    yet in the fan-out), and the history ring is read;
    /// 2. the missed messages come from `log` (the topic's durable log, e.g. the chat's rows) when
    ///    given, else from the ring; more than `maxMessages`, a ring that no longer reaches back to
    ///    `position`, or another epoch → none, and the marker says `recovered: false`;
    /// 3. the missed messages and the marker (`HubMessage.recovered`, body
    ///    `{"type":"RECOVERY","recovered":…,"missed":N,"offset":…,"epoch":"…"}`) are encoded for the
    ///    connection's format and queued;
    /// 4. the buffered messages with an offset above the last one handed over follow, batch by
    ///    batch; when the buffer is found empty (under the lock) the subscription joins the topic's
    ///    fan-out, so a later publish comes after all of them.
    /// A buffer over `HubHistoryConfiguration.maxBufferedWhileRecovering` closes the connection as a
    /// slow consumer (the client reconnects and recovers again). nil when the connection is gone.
    public func recover(
        _ connection: HubConnection, topic: String, variant: String = "", since position: HubStreamPosition,
        log: (any HubTopicLog)? = nil, maxMessages: Int = 1000
    ) async -> RecoveryOutcome? {
        let now = self.clock.now()
        let key = RecoveringKey(connection: connection.id, variant: variant)
        let lookup: HubHistory.Lookup? = self.state.withLock { s in
            guard s.connections[connection.id] != nil else { return nil }
            s.recovering[topic, default: [:]][key] = PendingLive()
            return s.history.lookup(topic: topic, after: position, now: now)
        }
        guard let lookup else { return nil }
        let epoch = self.epoch
        var missed: [HubStreamPosition.Offset] = []
        var recovered: Bool
        var top: UInt64?
        switch lookup {
        case .missed(let m, let t):
            (missed, recovered, top) = (m, true, t)
        case .incomplete(let t):
            (recovered, top) = (false, t)
        }
        if let log, position.epoch == epoch {
            if case .messages(let rows) = await log.messages(after: position.offset, limit: maxMessages), rows.count <= maxMessages,
                zip(rows, rows.dropFirst()).allSatisfy({ $0.offset < $1.offset }), rows.first.map({ $0.offset > position.offset }) ?? true
            {
                (missed, recovered) = (rows, true)
                top = max(top ?? 0, rows.last?.offset ?? position.offset)
            } else {
                (missed, recovered) = ([], false)
            }
        } else if missed.count > maxMessages {
            (missed, recovered) = ([], false)
        }
        let last = recovered ? (missed.last?.offset ?? position.offset) : (top ?? 0)
        let marker = RecoveryOutcome(recovered: recovered, missed: missed.count, position: HubStreamPosition(offset: last, epoch: epoch))
        // Missed messages, then the marker.
        let firstSequence: UInt64 = self.state.withLock { s in
            let first = s.sequence + 1
            s.sequence += UInt64(missed.count + 1)
            return first
        }
        let encoder = connection.format.encoder
        for (i, entry) in missed.enumerated() {
            // A gap longer than the outbound queue goes out in steps as the socket drains, so it
            // never overflows the queue (which would drop the connection as a slow consumer).
            if i > 0, i % self.recoveryStep == 0, !(await self.waitForRoom(connection)) { break }
            let m = HubMessage(
                destination: topic, payload: entry.payload, contentType: entry.contentType, sequence: firstSequence + UInt64(i),
                position: HubStreamPosition(offset: entry.offset, epoch: epoch))
            self.send(encoder.encode(m, variant: variant), to: connection)
        }
        let body: JSONValue = [
            "type": "RECOVERY", "recovered": .bool(recovered), "missed": .number(Double(missed.count)),
            "offset": .string(String(last)), "epoch": .string(epoch),
        ]
        let markerMessage = HubMessage(
            destination: topic, payload: ByteBuffer(bytes: body.jsonBytes), contentType: "application/json",
            sequence: firstSequence + UInt64(missed.count), position: marker.position, recovered: recovered)
        self.send(encoder.encode(markerMessage, variant: variant), to: connection)
        // What was published meanwhile, until the buffer is found empty: then join the fan-out.
        var delivered = last
        while true {
            enum Step {
                case gone
                case joined(TopicRegistry.Change)
                case overflowed
                case batch([HubMessage])
            }
            let step: Step = self.state.withLock { s in
                guard let pending = s.recovering[topic]?[key], s.connections[connection.id] != nil else { return .gone }
                if pending.overflowed { return .overflowed }
                if pending.messages.isEmpty {
                    s.recovering[topic]?.removeValue(forKey: key)
                    if s.recovering[topic]?.isEmpty ?? false { s.recovering.removeValue(forKey: topic) }
                    let change = s.topics.subscribe(connection.id, topic: topic, variant: variant)
                    if change.changed { s.recipients.removeValue(forKey: topic) }
                    return .joined(change)
                }
                s.recovering[topic]?[key] = PendingLive()
                return .batch(pending.messages)
            }
            switch step {
            case .gone:
                return nil
            case .overflowed:
                self.state.withLock { s in
                    s.recovering[topic]?.removeValue(forKey: key)
                    if s.recovering[topic]?.isEmpty ?? false { s.recovering.removeValue(forKey: topic) }
                }
                self.close(connection, reason: .slowConsumer)
                return marker
            case .joined(let change):
                self.recordGauges(change)
                return marker
            case .batch(let messages):
                for (i, m) in messages.enumerated() {
                    if let offset = m.position?.offset {
                        guard offset > delivered else { continue }
                        delivered = offset
                    }
                    if i > 0, i % self.recoveryStep == 0, !(await self.waitForRoom(connection)) { return nil }
                    self.send(encoder.encode(m, variant: variant), to: connection)
                }
            }
        }
    }

    /// Missed messages handed at once during a recovery: a quarter of the outbound queue.
    private var recoveryStep: Int { max(1, self.configuration.outboundQueue.maxFrames / 4) }

    /// Waits (a millisecond at a time, at most 10 s) until the connection's queue holds less than a
    /// quarter of its limits; false when the connection closed or the client does not read (then it
    /// is closed as a slow consumer).
    private func waitForRoom(_ connection: HubConnection) async -> Bool {
        let limits = self.configuration.outboundQueue
        for _ in 0..<10_000 {
            // First a pause: what was just handed to a lane reaches the queue on its event loop.
            try? await Task.sleep(for: .milliseconds(1))
            if connection.isClosing { return false }
            let depth = connection.queueDepth
            if depth.frames < limits.maxFrames / 4 && depth.bytes < limits.maxBytes / 4 { return true }
        }
        self.close(connection, reason: .slowConsumer)
        return false
    }

    /// The last offset this hub published on `topic` and its epoch (nil: none kept).
    public func position(topic: String) -> HubStreamPosition? {
        self.state.withLock { s in s.history.top(topic: topic).map { HubStreamPosition(offset: $0, epoch: s.history.epoch) } }
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
