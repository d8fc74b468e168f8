/// Who is subscribed to what, as a value (the `Hub` keeps it under its lock). Each subscription is
/// stored once, in `subscribers` (topic → connection → variants: a STOMP client may subscribe to
/// one topic twice, with two ids); `topicsByConnection` is only the index that lets a closing
/// connection leave every topic without a scan. The counts are derived here, in one place.
struct TopicRegistry {
    /// What a change left behind, for the gauges.
    struct Change: Equatable {
        /// False when nothing changed (a duplicate subscribe, an unknown unsubscribe).
        var changed: Bool
        var subscriptions: Int
        var topics: Int
    }

    private(set) var subscribers: [String: [HubConnectionID: [String]]] = [:]
    private var topicsByConnection: [HubConnectionID: Set<String>] = [:]
    private(set) var subscriptionCount = 0

    var topicCount: Int { subscribers.count }

    /// Adds (topic, variant) for the connection; unchanged if it already holds exactly that.
    mutating func subscribe(_ connection: HubConnectionID, topic: String, variant: String) -> Change {
        var variants = subscribers[topic]?[connection] ?? []
        guard !variants.contains(variant) else { return unchanged }
        variants.append(variant)
        subscribers[topic, default: [:]][connection] = variants
        topicsByConnection[connection, default: []].insert(topic)
        subscriptionCount += 1
        return changed
    }

    /// Removes one (topic, variant); unchanged if the connection did not hold it.
    mutating func unsubscribe(_ connection: HubConnectionID, topic: String, variant: String) -> Change {
        guard var variants = subscribers[topic]?[connection], let index = variants.firstIndex(of: variant) else { return unchanged }
        variants.remove(at: index)
        subscriptionCount -= 1
        if variants.isEmpty {
            leave(connection, topic: topic)
        } else {
            subscribers[topic]?[connection] = variants
        }
        return changed
    }

    /// Removes every subscription of a closing connection; returns the topics it left.
    mutating func removeAll(of connection: HubConnectionID) -> Set<String> {
        guard let topics = topicsByConnection[connection] else { return [] }
        for topic in topics {
            subscriptionCount -= subscribers[topic]?[connection]?.count ?? 0
            leave(connection, topic: topic)
        }
        return topics
    }

    /// Subscriptions (variants included) on a topic.
    func subscriberCount(topic: String) -> Int {
        subscribers[topic]?.values.reduce(0) { $0 + $1.count } ?? 0
    }

    private mutating func leave(_ connection: HubConnectionID, topic: String) {
        subscribers[topic]?.removeValue(forKey: connection)
        if subscribers[topic]?.isEmpty == true { subscribers.removeValue(forKey: topic) }
        topicsByConnection[connection]?.remove(topic)
        if topicsByConnection[connection]?.isEmpty == true { topicsByConnection.removeValue(forKey: connection) }
    }

    private var unchanged: Change { Change(changed: false, subscriptions: subscriptionCount, topics: topicCount) }
    private var changed: Change { Change(changed: true, subscriptions: subscriptionCount, topics: topicCount) }
}

/// Who is online, as a value (the `Hub` keeps it under its lock): each signed-in user's connections,
/// and connections counted per wire format and per protocol. The per-user limit and the "users
/// online" gauges are read from here.
struct PresenceRegistry {
    /// A user gained a connection.
    struct Joined: Equatable {
        var isFirstConnectionOfUser: Bool
        /// Users with ≥ 1 connection of the connection's protocol.
        var usersOnline: Int
    }

    /// A user lost a connection.
    struct Left: Equatable {
        var wasLastConnectionOfUser: Bool
        var usersOnline: Int
    }

    private(set) var connectionsOfUser: [String: Set<HubConnectionID>] = [:]
    /// protocol name → userId → connections of that protocol.
    private var usersByProtocol: [String: [String: Int]] = [:]
    private(set) var connectionsByFormat: [String: Int] = [:]
    private var connectionsByProtocol: [String: Int] = [:]

    var userCount: Int { connectionsOfUser.count }

    /// Users online per protocol name.
    var usersOnlineByProtocol: [String: Int] { usersByProtocol.mapValues(\.count) }

    /// Counts an opened connection; returns the connections of its protocol now.
    mutating func opened(_ format: HubWireFormat) -> Int {
        connectionsByFormat[format.name, default: 0] += 1
        connectionsByProtocol[format.protocolName, default: 0] += 1
        return connectionsByProtocol[format.protocolName] ?? 0
    }

    /// Counts a closed connection; returns the connections of its protocol now.
    mutating func closed(_ format: HubWireFormat) -> Int {
        connectionsByFormat[format.name, default: 1] -= 1
        if connectionsByFormat[format.name] == 0 { connectionsByFormat.removeValue(forKey: format.name) }
        connectionsByProtocol[format.protocolName, default: 1] -= 1
        return connectionsByProtocol[format.protocolName] ?? 0
    }

    /// Connections `userId` holds of one protocol (the per-user limit counts these).
    func connections(of userId: String, protocolName: String) -> Int {
        usersByProtocol[protocolName]?[userId] ?? 0
    }

    mutating func attach(_ userId: String, _ connection: HubConnectionID, protocolName: String) -> Joined {
        let first = connectionsOfUser[userId] == nil
        connectionsOfUser[userId, default: []].insert(connection)
        usersByProtocol[protocolName, default: [:]][userId, default: 0] += 1
        return Joined(isFirstConnectionOfUser: first, usersOnline: usersByProtocol[protocolName]?.count ?? 0)
    }

    mutating func detach(_ userId: String, _ connection: HubConnectionID, protocolName: String) -> Left {
        var last = false
        if connectionsOfUser[userId]?.remove(connection) != nil, connectionsOfUser[userId]?.isEmpty == true {
            connectionsOfUser.removeValue(forKey: userId)
            last = true
        }
        if let count = usersByProtocol[protocolName]?[userId] {
            if count <= 1 { usersByProtocol[protocolName]?.removeValue(forKey: userId) } else { usersByProtocol[protocolName]?[userId] = count - 1 }
        }
        if usersByProtocol[protocolName]?.isEmpty == true { usersByProtocol.removeValue(forKey: protocolName) }
        return Left(wasLastConnectionOfUser: last, usersOnline: usersByProtocol[protocolName]?.count ?? 0)
    }
}
