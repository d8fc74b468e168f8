import NIOCore

/// How STOMP frames travel on the WebSocket.
public enum STOMPFraming: Sendable, Hashable {
    /// Plain STOMP over WebSocket (`/ws/live`, `/ws/live/websocket`).
    case raw
    /// SockJS framing (`/ws/live/{server}/{session}/websocket`): `o`, `h`, `a[…]`, `c[…]`.
    case sockJS
}

/// Encodes hub publishes as STOMP MESSAGE frames.
///
/// Encode-once: a MESSAGE must carry the subscriber's `subscription` id, so the hub asks for one
/// encoding per distinct subscription id (the `variant`) per publish and shares that buffer among
/// every subscriber using the same id. stompjs numbers subscriptions `sub-0`, `sub-1`… in
/// subscribe order, so nearly all viewers of a room share a few ids. `message-id` is
/// `m-<hub sequence>`, identical for all subscribers (STOMP only requires it to identify the
/// message). The payload bytes are copied once into each encoding.
public struct STOMPMessageEncoder: HubMessageEncoder {
    public let framing: STOMPFraming

    public init(framing: STOMPFraming) {
        self.framing = framing
    }

    public func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame {
        var frame = ByteBuffer()
        frame.reserveCapacity(message.payload.readableBytes + 128 + message.destination.utf8.count)
        STOMPFrameEncoder.encodeMessage(message, subscription: variant, into: &frame)
        switch self.framing {
        case .raw:
            return .text(frame)
        case .sockJS:
            var out = ByteBuffer()
            out.reserveCapacity(frame.readableBytes + frame.readableBytes / 8 + 16)
            SockJSFraming.writeMessageFrame(frame.readableBytesView, into: &out)
            return .text(out)
        }
    }

    /// A frame produced by the session (CONNECTED, RECEIPT, ERROR, error MESSAGE).
    public func encode(_ frame: STOMPFrame) -> HubOutboundFrame {
        let bytes = STOMPFrameEncoder.encode(frame)
        switch self.framing {
        case .raw: return .text(ByteBuffer(bytes: bytes))
        case .sockJS: return .text(ByteBuffer(bytes: SockJSFraming.messageFrame([bytes])))
        }
    }

    /// STOMP heart-beat: one EOL (SockJS: `a["\n"]`).
    public var heartbeat: HubOutboundFrame {
        switch self.framing {
        case .raw: return .text(ByteBuffer(string: "\n"))
        case .sockJS: return .text(ByteBuffer(string: "a[\"\\n\"]"))
        }
    }
}

extension HubWireFormat {
    /// STOMP over a plain WebSocket.
    public static let stomp = HubWireFormat(name: "stomp", protocolName: "stomp", encoder: STOMPMessageEncoder(framing: .raw), acceptsUserMessages: false)
    /// STOMP over the SockJS WebSocket transport.
    public static let stompSockJS = HubWireFormat(name: "stomp-sockjs", protocolName: "stomp", encoder: STOMPMessageEncoder(framing: .sockJS), acceptsUserMessages: false)

    public static func stomp(_ framing: STOMPFraming) -> HubWireFormat {
        framing == .raw ? .stomp : .stompSockJS
    }
}
