public import NIOCore

/// Serialises STOMP frames (STOMP 1.2 "Augmented BNF"): `COMMAND\n(name:value\n)*\n<body>\0`.
/// Header names/values are escaped except for CONNECT/CONNECTED. A `content-length` header is
/// added for non-empty bodies when absent.
public enum STOMPFrameEncoder {
    public static func encode(_ frame: STOMPFrame) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + frame.body.count)
        self.encode(frame, into: &out)
        return out
    }

    public static func encode(_ frame: STOMPFrame, into out: inout [UInt8]) {
        out.append(contentsOf: frame.command.rawValue.utf8)
        out.append(0x0A)
        var hasLength = false
        for h in frame.headers {
            if h.name == "content-length" { hasLength = true }
            self.writeHeader(h.name, h.value, escape: frame.command.escapesHeaders, into: &out)
        }
        if !hasLength && !frame.body.isEmpty {
            self.writeHeader("content-length", String(frame.body.count), escape: false, into: &out)
        }
        out.append(0x0A)
        out.append(contentsOf: frame.body)
        out.append(0)
    }

    public static func encodeBuffer(_ frame: STOMPFrame) -> ByteBuffer {
        ByteBuffer(bytes: self.encode(frame))
    }

    static func writeHeader(_ name: String, _ value: String, escape: Bool, into out: inout [UInt8]) {
        if escape {
            self.writeEscaped(name, into: &out)
            out.append(UInt8(ascii: ":"))
            self.writeEscaped(value, into: &out)
        } else {
            out.append(contentsOf: name.utf8)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: value.utf8)
        }
        out.append(0x0A)
    }

    /// STOMP 1.2 "Value Encoding".
    static func writeEscaped(_ s: String, into out: inout [UInt8]) {
        for b in s.utf8 {
            switch b {
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case UInt8(ascii: ":"): out.append(0x5C); out.append(UInt8(ascii: "c"))
            case 0x5C: out.append(0x5C); out.append(0x5C)
            default: out.append(b)
            }
        }
    }

    static func writeEscaped(_ s: String, into buffer: inout ByteBuffer) {
        var tmp: [UInt8] = []
        tmp.reserveCapacity(s.utf8.count)
        self.writeEscaped(s, into: &tmp)
        buffer.writeBytes(tmp)
    }

    /// STOMP 1.2 "MESSAGE" for a hub publish: `destination`, `message-id`, `subscription`,
    /// `content-type`, `offset` and `epoch` (a topic with history), `recovered` (the marker that
    /// ends a recovery), `content-length`, then the payload (written straight from the shared buffer).
    public static func encodeMessage(_ message: HubMessage, subscription: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("MESSAGE\ndestination:")
        self.writeEscaped(message.destination, into: &buffer)
        buffer.writeStaticString("\nmessage-id:m-")
        buffer.writeString(String(message.sequence))
        buffer.writeStaticString("\nsubscription:")
        self.writeEscaped(subscription, into: &buffer)
        if let ct = message.contentType {
            buffer.writeStaticString("\ncontent-type:")
            self.writeEscaped(ct, into: &buffer)
        }
        if let position = message.position {
            buffer.writeStaticString("\noffset:")
            buffer.writeString(String(position.offset))
            buffer.writeStaticString("\nepoch:")
            self.writeEscaped(position.epoch, into: &buffer)
        }
        if let recovered = message.recovered {
            buffer.writeStaticString(recovered ? "\nrecovered:true" : "\nrecovered:false")
        }
        buffer.writeStaticString("\ncontent-length:")
        buffer.writeString(String(message.payload.readableBytes))
        buffer.writeStaticString("\n\n")
        var payload = message.payload
        buffer.writeBuffer(&payload)
        buffer.writeInteger(UInt8(0))
    }
}
