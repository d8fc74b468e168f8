/// One registered connection with its protocol session, as a transport runs it: the seam between
/// the protocols (`STOMPEndpoint.open`, `SocketIOEndpoint.open`) and the transports. A session does
/// not know what carries it; a transport (the server's WebSocket one is `ConnectionRunner.attach`,
/// `Transport/ChannelConnection.swift`) feeds it complete frames and ticks, writes what the
/// connection's queue holds, and calls `finish` once when the connection is gone.
struct HubSessionHandle: Sendable {
    let connection: HubConnection
    /// How often the transport should tick the session at most (`nextTickDue` says when it must).
    let tickInterval: Duration
    /// Runs first, before any frame (Engine.IO's open packet); nothing for STOMP.
    let start: @Sendable () async -> Void
    /// Merges frames written together (SockJS `a[…]` runs), or returns them as they are.
    let coalesce: @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame]
    /// What the client is told before a close (STOMP `ERROR` on shutdown, SockJS `c[…]`, Engine.IO `1`).
    let goodbye: @Sendable (HubCloseReason) -> [HubOutboundFrame]
    /// One frame from the client; false once the session is closing.
    let onFrame: @Sendable (HubInboundFrame) async -> Bool
    /// A tick; false once the session is closing.
    let onTick: @Sendable () async -> Bool
    /// When `onTick` can next act (nil: any tick).
    let nextTickDue: @Sendable () -> Duration?
    /// Deregisters the connection and tells the backend (once the transport is done).
    let finish: @Sendable () async -> Void
}
