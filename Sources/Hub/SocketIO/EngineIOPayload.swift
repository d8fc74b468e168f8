public import NIOCore

/// The body of an Engine.IO v4 long-polling request or response (engine.io-protocol v4 "Packet
/// encoding", HTTP long-polling): packets separated by the record separator `0x1E`, each a text
/// packet (`<type digit><data>`, e.g. `4hello`) or a binary one, `b` followed by the bytes in
/// base64 (`bAQID`). A packet's own text never contains `0x1E` (JSON escapes it).
public enum EngineIOPayload {
    /// ASCII "record separator".
    public static let separator: UInt8 = 0x1E

    /// One packet of a payload.
    public enum Packet: Sendable, Hashable {
        /// A text packet, as a WebSocket text frame would carry it.
        case text(String)
        /// A binary packet (`b` + base64): only its decoded size is kept (the bell is text-only).
        case binary(byteCount: Int)
    }

    public enum DecodeError: Error, Sendable, Hashable, CustomStringConvertible {
        /// An empty body (engine.io: a parse error).
        case empty
        /// The body is larger than the session's `maxPayload`.
        case tooLarge(Int)
        /// Two separators in a row, or one at an end: an empty packet.
        case emptyPacket(index: Int)
        /// A `b` packet whose data is not base64.
        case invalidBase64(index: Int)

        public var description: String {
            switch self {
            case .empty: "empty payload"
            case .tooLarge(let n): "payload of \(n) bytes is above maxPayload"
            case .emptyPacket(let i): "packet \(i) of the payload is empty"
            case .invalidBase64(let i): "binary packet \(i) is not base64"
            }
        }
    }

    /// Splits a request body into packets. Every packet is checked (a body is refused whole);
    /// text is read as UTF-8 (invalid sequences become U+FFFD, as engine.io's server reads it).
    public static func decode(_ body: ByteBuffer, maxPayload: Int) throws(DecodeError) -> [Packet] {
        let count = body.readableBytes
        guard count <= maxPayload else { throw .tooLarge(count) }
        guard count > 0 else { throw .empty }
        let bytes = body.readableBytesView
        var packets: [Packet] = []
        var start = bytes.startIndex
        var index = 0
        while true {
            let end = bytes[start...].firstIndex(of: self.separator) ?? bytes.endIndex
            let packet = bytes[start..<end]
            guard let first = packet.first else { throw .emptyPacket(index: index) }
            if first == UInt8(ascii: "b") {
                guard let size = self.base64DecodedSize(packet.dropFirst()) else { throw .invalidBase64(index: index) }
                packets.append(.binary(byteCount: size))
            } else {
                packets.append(.text(String(decoding: packet, as: UTF8.self)))
            }
            index += 1
            guard end < bytes.endIndex else { return packets }
            start = bytes.index(after: end)
        }
    }

    /// The frames of one poll's answer as a body: text frames as they are, binary ones as `b` +
    /// base64, separated by `0x1E`.
    public static func encode(_ frames: [HubOutboundFrame]) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(frames.reduce(0) { $0 + $1.byteCount + 1 })
        for (i, frame) in frames.enumerated() {
            if i > 0 { out.writeInteger(self.separator) }
            switch frame {
            case .text(var buffer):
                out.writeBuffer(&buffer)
            case .binary(let buffer):
                out.writeInteger(UInt8(ascii: "b"))
                self.writeBase64(buffer.readableBytesView, into: &out)
            }
        }
        return out
    }

    /// Text packets as a body (tests, seeds).
    public static func encode(texts: [String]) -> ByteBuffer {
        self.encode(texts.map { HubOutboundFrame.text(ByteBuffer(string: $0)) })
    }

    // MARK: base64 (RFC 4648 §4, with padding)

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The size `data` decodes to, or nil if it is not padded base64.
    static func base64DecodedSize(_ data: some Collection<UInt8>) -> Int? {
        guard data.count % 4 == 0 else { return nil }
        var padding = 0
        for (i, byte) in data.enumerated() {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "+"), UInt8(ascii: "/"):
                if padding > 0 { return nil }
            case UInt8(ascii: "="):
                guard i >= data.count - 2 else { return nil }
                padding += 1
            default:
                return nil
            }
        }
        return data.count / 4 * 3 - padding
    }

    static func writeBase64(_ bytes: ByteBufferView, into out: inout ByteBuffer) {
        var iterator = bytes.makeIterator()
        while let a = iterator.next() {
            let b = iterator.next()
            let c = iterator.next()
            let n = UInt32(a) << 16 | UInt32(b ?? 0) << 8 | UInt32(c ?? 0)
            out.writeInteger(self.alphabet[Int(n >> 18 & 63)])
            out.writeInteger(self.alphabet[Int(n >> 12 & 63)])
            out.writeInteger(b == nil ? UInt8(ascii: "=") : self.alphabet[Int(n >> 6 & 63)])
            out.writeInteger(c == nil ? UInt8(ascii: "=") : self.alphabet[Int(n & 63)])
        }
    }
}
