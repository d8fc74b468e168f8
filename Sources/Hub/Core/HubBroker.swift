public import NIOCore

/// The seam between "publish" and "deliver locally". The Server publishes every broadcast (a room's
/// chat, products, status and viewers; a user's bell events) through a broker, never through the
/// `Hub` directly. In one process the broker is `InProcessHubBroker`, which delivers straight to
/// the local hub. A multi-node broker (issue 20: PostgreSQL outbox + `LISTEN/NOTIFY`) records the
/// event for every node and each node's listener calls `Hub.publish`/`Hub.sendToUser` on its own
/// hub; the STOMP and Socket.IO code does not change.
public protocol HubBroker: Sendable {
    /// Publish to a topic's subscribers on every node. `offset`: the message's offset in its
    /// topic when the publisher numbers it (the chat topic: the row's `seq`); nil: the broker's
    /// (in one process the hub's counter; in a cluster the outbox id).
    func publish(topic: String, payload: ByteBuffer, contentType: String?, offset: UInt64?) async
    /// Push an event to every connection of a user on every node.
    func sendToUser(userId: String, event: String, payload: ByteBuffer) async
}

extension HubBroker {
    public func publish(topic: String, payload: ByteBuffer, contentType: String?) async {
        await self.publish(topic: topic, payload: payload, contentType: contentType, offset: nil)
    }

    /// A JSON payload (`contentType: application/json`).
    public func publish(topic: String, payload: ByteBuffer) async {
        await self.publish(topic: topic, payload: payload, contentType: "application/json")
    }

    public func sendToUser(userId: String, event: String, json: String) async {
        await self.sendToUser(userId: userId, event: event, payload: ByteBuffer(string: json))
    }
}

/// The single-process broker: delivers straight to the local hub (no hop, no copy).
public struct InProcessHubBroker: HubBroker {
    public let hub: Hub

    public init(hub: Hub) {
        self.hub = hub
    }

    public func publish(topic: String, payload: ByteBuffer, contentType: String?, offset: UInt64?) async {
        self.hub.publish(topic: topic, payload: payload, contentType: contentType, offset: offset.map { HubPublishOffset($0) })
    }

    public func sendToUser(userId: String, event: String, payload: ByteBuffer) async {
        self.hub.sendToUser(userId: userId, event: event, payload: payload)
    }
}
