public import NIOCore

/// Answer to "may this connection subscribe to `destination`?".
public enum SubscribeDecision: Sendable, Hashable {
    case allow
    /// Not subscribed; the client is told through `/user/queue/errors` (see `STOMPSession`).
    case refuse(code: String, message: String)
}

/// Answer to an application `SEND`.
public enum SendOutcome: Sendable, Hashable {
    case accepted
    /// e.g. `("unauthorized", "guests cannot chat")`, `("too-long", "…")`, `("room-ended", "…")`,
    /// `("unknown-room", "…")`. The connection stays open; see `STOMPSession` for how the client learns.
    case refused(code: String, message: String)
}

/// The live-room domain (Server) behind the STOMP endpoint.
///
/// Calls for one connection are made one at a time, in frame order (a connection's frames are
/// processed sequentially), so `handleSend` for `/app/live/1/join` always precedes a later
/// `/app/live/1/leave` of the same connection. Different connections call concurrently.
public protocol LiveRoomBackend: Sendable {
    /// Called for `SUBSCRIBE` to `/topic/...` destinations (e.g. refuse an unknown room).
    /// `/user/queue/errors` never reaches the backend; `/app/...` and `/queue/...` are refused by the hub.
    func canSubscribe(destination: String, connection: HubConnectionContext) async -> SubscribeDecision
    /// `SEND` to `/app/...` (chat, join, leave). `body` is the raw frame body (JSON for stompjs).
    /// The send rate limit has already been applied by the hub.
    func handleSend(destination: String, body: ByteBuffer, contentType: String?, connection: HubConnectionContext) async -> SendOutcome
    /// The connection is gone (DISCONNECT, socket closed, heart-beat timeout, slow client, shutdown).
    /// Exactly once per connection that completed CONNECT — use it to make a dropped viewer leave.
    func connectionClosed(_ connection: HubConnectionContext) async
    /// See the default in the extension below.
    func recoveryLog(destination: String) -> (any HubTopicLog)?
}

extension LiveRoomBackend {
    /// The durable log recovery reads a destination's missed messages from (the chat topic's rows);
    /// nil: the hub's history ring. Default nil.
    public func recoveryLog(destination: String) -> (any HubTopicLog)? { nil }
}
