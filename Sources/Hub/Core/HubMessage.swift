public import NIOCore

/// A protocol-neutral message: what the Server publishes to a topic or pushes to a user.
///
/// `destination` is the topic for `Hub.publish` (for STOMP it is the destination string, e.g.
/// `/topic/live/42/chat`) and the event name for `Hub.sendToUser` (Socket.IO `notification:new`).
public struct HubMessage: Sendable, Equatable {
    public var destination: String
    /// Encoded payload (JSON for every current client). Shared, never copied per subscriber.
    public var payload: ByteBuffer
    public var contentType: String?
    /// Hub-wide sequence number; STOMP uses it for `message-id`.
    public var sequence: UInt64
    /// The message's place in its topic's stream (`Hub.publish` on a topic with history; STOMP
    /// headers `offset` and `epoch`). Identical for every subscriber, so still encoded once.
    public var position: HubStreamPosition?
    /// Set on the marker that ends a recovery (STOMP header `recovered:true|false`).
    public var recovered: Bool?

    public init(
        destination: String, payload: ByteBuffer, contentType: String? = "application/json", sequence: UInt64 = 0,
        position: HubStreamPosition? = nil, recovered: Bool? = nil
    ) {
        self.destination = destination
        self.payload = payload
        self.contentType = contentType
        self.sequence = sequence
        self.position = position
        self.recovered = recovered
    }

    /// The payload as a string (tests, logs).
    public var payloadString: String { String(buffer: self.payload) }
}

/// One encoded WebSocket message. The buffer is shared by every connection it is written to.
public enum HubOutboundFrame: Sendable, Hashable {
    case text(ByteBuffer)
    case binary(ByteBuffer)

    public var buffer: ByteBuffer {
        switch self {
        case .text(let b), .binary(let b): return b
        }
    }

    public var isText: Bool {
        if case .text = self { return true }
        return false
    }

    public var byteCount: Int { self.buffer.readableBytes }

    /// Copy of the bytes (tests, logs).
    public var bytes: [UInt8] { Array(self.buffer.readableBytesView) }

    public var string: String { String(buffer: self.buffer) }

    /// True when both frames point at the very same memory — proves "encode once, write the same
    /// bytes to every subscriber".
    public func sharesStorage(with other: HubOutboundFrame) -> Bool {
        let a = self.buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let b = other.buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        return a == b && self.byteCount == other.byteCount
    }
}

/// Turns a `HubMessage` into the bytes of one wire format.
///
/// `variant` is the per-subscription key given to `Hub.subscribe` (STOMP: the `SUBSCRIBE` `id`,
/// because a MESSAGE must carry `subscription:<id>`; Socket.IO: empty). During one publish the hub
/// calls `encode` once per distinct `(format, variant)` pair among the recipients and writes the
/// resulting buffer to all of them. Clients number their subscriptions the same way
/// (stompjs: `sub-0`, `sub-1`…), so a room of 10 000 viewers costs a handful of encodes.
public protocol HubMessageEncoder: Sendable {
    func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame
}

/// A wire format: a name (metrics `protocol` dimension, encode cache key) and its encoder.
/// Defined by the adapters (`.stomp`, `.stompSockJS`, `.socketIO`); the core knows nothing else.
public struct HubWireFormat: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    /// Metrics `protocol` dimension (several formats may share one, e.g. STOMP raw and SockJS).
    public let protocolName: String
    public let encoder: any HubMessageEncoder
    /// Whether `Hub.sendToUser` delivers to connections of this format (Socket.IO: yes; STOMP: no,
    /// a MESSAGE needs a subscription).
    public let acceptsUserMessages: Bool

    public init(name: String, protocolName: String? = nil, encoder: any HubMessageEncoder, acceptsUserMessages: Bool) {
        self.name = name
        self.protocolName = protocolName ?? name
        self.encoder = encoder
        self.acceptsUserMessages = acceptsUserMessages
    }

    public static func == (lhs: HubWireFormat, rhs: HubWireFormat) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.name) }
    public var description: String { self.name }
}

/// Why a connection is being closed; each adapter maps it to its own goodbye (STOMP ERROR,
/// SockJS `c[…]`, Engine.IO `1`) and a WebSocket close code.
public enum HubCloseReason: Sendable, Hashable {
    /// Client asked (DISCONNECT, Socket.IO `41`/`1`).
    case normal
    /// The outbound queue overflowed.
    case slowConsumer
    /// Heart-beat / ping time-out, or no CONNECT in time.
    case timeout
    /// Protocol violation or bad credentials; `message` has already been sent to the client.
    case protocolError(String)
    /// Frame/message above the limit.
    case tooLarge
    /// Server shutdown.
    case shutdown

    /// RFC 6455 §7.4.1 close code.
    public var webSocketCloseCode: UInt16 {
        switch self {
        case .normal: 1000
        case .shutdown: 1001
        case .protocolError: 1008
        case .tooLarge: 1009
        case .slowConsumer: 1013
        case .timeout: 1000
        }
    }

    public var text: String {
        switch self {
        case .normal: "bye"
        case .slowConsumer: "slow consumer"
        case .timeout: "timeout"
        case .protocolError(let m): m
        case .tooLarge: "message too large"
        case .shutdown: "server shutting down"
        }
    }
}
