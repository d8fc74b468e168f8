public import NIOCore

/// What an inbound bell event produced: sent back as the Socket.IO ack (`43N[<value>]`) when the
/// client asked for one.
public enum BellEventResult: Sendable, Hashable {
    /// Ack payload, e.g. `{"ok":true,"unreadCount":3}`.
    case ack(JSONValue)
    /// Validation/domain error: acked as `{"error": code, "message": message}`; without an ack id it
    /// is emitted as an `error` event (`42["error",{"error":…,"message":…,"event":…}]`).
    case error(code: String, message: String)
}

/// The notification domain (Server) behind the Socket.IO endpoint.
public protocol BellBackend: Sendable {
    /// An event from an authenticated socket (`notification:read`, `notification:read-all`, …).
    /// `payload` is the first argument after the event name (`.null` if none); validate it here.
    /// The inbound rate limit has already been applied by the hub.
    func handleEvent(name: String, payload: JSONValue, connection: HubConnectionContext, identity: HubIdentity) async -> BellEventResult
    /// A socket joined the namespace as `identity` (after it is in the per-user set, so a
    /// `hub.sendToUser` from here — e.g. the current unread count — reaches it).
    /// `isFirstConnectionOfUser` tells whether the user just came online.
    func userConnected(_ connection: HubConnectionContext, identity: HubIdentity, isFirstConnectionOfUser: Bool) async
    /// A socket left; `wasLastConnectionOfUser` = the user entry was removed.
    func userDisconnected(_ connection: HubConnectionContext, identity: HubIdentity, wasLastConnectionOfUser: Bool) async
    /// See the default below.
    func missedEvents(after lastNotificationId: String, identity: HubIdentity) async -> [BellReplayEvent]
}

/// One event replayed to a reconnecting socket only (`BellBackend.missedEvents`).
public struct BellReplayEvent: Sendable, Hashable {
    public var event: String
    public var payload: ByteBuffer

    public init(event: String, payload: ByteBuffer) {
        self.event = event
        self.payload = payload
    }
}

extension BellBackend {
    /// The socket said the last notification it saw (`lastNotificationId` in the handshake's
    /// `auth` or the `AUTH` payload): what it missed since, sent to it alone, in order. Default: none.
    public func missedEvents(after lastNotificationId: String, identity: HubIdentity) async -> [BellReplayEvent] { [] }

    public func userConnected(_ connection: HubConnectionContext, identity: HubIdentity, isFirstConnectionOfUser: Bool) async {}
    public func userDisconnected(_ connection: HubConnectionContext, identity: HubIdentity, wasLastConnectionOfUser: Bool) async {}
}
