public import NIOCore

/// Where the Server sends broadcasts. In one process that is the local `Hub`
/// (`InProcessHubBroker`); a multi-node deployment implements this over e.g. PostgreSQL
/// `LISTEN/NOTIFY`, calling `Hub.publish`/`Hub.sendToUser` on every node when a notification
/// arrives — the STOMP and Socket.IO code does not change.
public protocol HubBroker: Sendable {
    /// Publish to a topic on every node.
    func publish(topic: String, payload: ByteBuffer, contentType: String?, keepInHistory: Bool) async
    /// Push an event to every connection of a user on every node.
    func sendToUser(userId: String, event: String, payload: ByteBuffer) async
}

/// The single-process broker: delivers straight to the local hub.
public struct InProcessHubBroker: HubBroker {
    public let hub: Hub

    public init(hub: Hub) {
        self.hub = hub
    }

    public func publish(topic: String, payload: ByteBuffer, contentType: String?, keepInHistory: Bool) async {
        self.hub.publish(topic: topic, payload: payload, contentType: contentType, keepInHistory: keepInHistory)
    }

    public func sendToUser(userId: String, event: String, payload: ByteBuffer) async {
        self.hub.sendToUser(userId: userId, event: event, payload: payload)
    }
}
