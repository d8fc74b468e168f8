import NIOCore
import Testing

@testable import Hub

/// The hub's registries are values: every change answers with named results and the counts are
/// derived in one place.
@Suite struct RegistryTests {
    let a = HubConnectionID(rawValue: 1), b = HubConnectionID(rawValue: 2)

    @Test func aSubscriptionIsStoredOnceAndAClosingConnectionLeavesEveryTopic() {
        var topics = TopicRegistry()
        #expect(topics.subscribe(a, topic: "chat", variant: "sub-1") == .init(changed: true, subscriptions: 1, topics: 1))
        #expect(topics.subscribe(a, topic: "chat", variant: "sub-1").changed == false, "the same (topic, variant) twice")
        #expect(topics.subscribe(a, topic: "chat", variant: "sub-2") == .init(changed: true, subscriptions: 2, topics: 1))
        #expect(topics.subscribe(a, topic: "status", variant: "") == .init(changed: true, subscriptions: 3, topics: 2))
        #expect(topics.subscribe(b, topic: "chat", variant: "x").changed)
        #expect(topics.subscriberCount(topic: "chat") == 3)
        #expect(topics.unsubscribe(a, topic: "chat", variant: "nope").changed == false)
        #expect(topics.unsubscribe(a, topic: "chat", variant: "sub-1") == .init(changed: true, subscriptions: 3, topics: 2))
        #expect(topics.removeAll(of: a) == ["chat", "status"])
        #expect(topics.subscriptionCount == 1 && topics.topicCount == 1)
        #expect(topics.subscribers == ["chat": [b: ["x"]]])
        #expect(topics.removeAll(of: a).isEmpty, "idempotent")
    }

    @Test func presenceCountsAUsersConnectionsPerProtocol() {
        var presence = PresenceRegistry()
        let stomp = HubWireFormat(name: "stomp", protocolName: "stomp", encoder: NoEncoder(), acceptsUserMessages: false)
        #expect(presence.opened(stomp) == 1)
        #expect(presence.attach("u", a, protocolName: "stomp") == .init(isFirstConnectionOfUser: true, usersOnline: 1))
        #expect(presence.attach("u", b, protocolName: "socketio") == .init(isFirstConnectionOfUser: false, usersOnline: 1))
        #expect(presence.connections(of: "u", protocolName: "stomp") == 1)
        #expect(presence.detach("u", a, protocolName: "stomp") == .init(wasLastConnectionOfUser: false, usersOnline: 0))
        #expect(presence.detach("u", b, protocolName: "socketio") == .init(wasLastConnectionOfUser: true, usersOnline: 0))
        #expect(presence.userCount == 0 && presence.usersOnlineByProtocol.isEmpty)
        #expect(presence.closed(stomp) == 0 && presence.connectionsByFormat.isEmpty)
    }

    struct NoEncoder: HubMessageEncoder {
        func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame { fatalError("not encoded in this test") }
    }
}
