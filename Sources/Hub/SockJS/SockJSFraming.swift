public import NIOCore

/// SockJS protocol (sockjs-protocol 0.3.3) pieces: the `/info` document, the framing of
/// `<base>/{server}/{session}/websocket`, and that of the HTTP transports `xhr`, `xhr_streaming`
/// and `xhr_send` (sockjs-protocol "XhrPolling", "XhrStreaming"; run by `SockJSHTTPTransport`).
public enum SockJSFraming {
    /// `GET <base>/info` body: `{"websocket":true,"cookie_needed":false,"origins":["*:*"],"entropy":N}`.
    /// Serve it as `application/json; charset=UTF-8` with `Cache-Control: no-store, no-cache,
    /// must-revalidate, max-age=0` and CORS headers.
    public static func infoJSON(entropy: UInt32 = UInt32.random(in: 0...UInt32.max)) -> String {
        #"{"websocket":true,"cookie_needed":false,"origins":["*:*"],"entropy":\#(entropy)}"#
    }

    /// Sent once when the session opens.
    public static let openFrame = "o"
    /// Sent every 25 s (`SockJSConfiguration.heartbeatInterval`).
    public static let heartbeatFrame = "h"

    /// `c[code,"reason"]`; the default is the protocol's `c[3000,"Go away!"]`.
    public static func closeFrame(code: Int = 3000, reason: String = "Go away!") -> String {
        var out: [UInt8] = Array("c[\(code),".utf8)
        JSONWriter.writeString(reason, into: &out)
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `a["m1","m2",…]`: each message is JSON-escaped (NUL → `\u0000`, control chars, U+2028/9).
    public static func messageFrame<Bytes: Sequence>(_ messages: [Bytes]) -> [UInt8] where Bytes.Element == UInt8 {
        var out: [UInt8] = [UInt8(ascii: "a"), UInt8(ascii: "[")]
        for (i, m) in messages.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            JSONWriter.writeEscaped(m, into: &out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    public static func messageFrame(_ message: String) -> String {
        String(decoding: self.messageFrame([Array(message.utf8)]), as: UTF8.self)
    }

    /// `a["…"]` of one message, into a buffer.
    public static func writeMessageFrame<Bytes: Sequence>(_ message: Bytes, into buffer: inout ByteBuffer) where Bytes.Element == UInt8 {
        buffer.writeBytes(self.messageFrame([message]))
    }

    /// Joins several `a[…]` frames into one (`a[x]`,`a[y]` → `a[x,y]`) so a burst costs one
    /// WebSocket message. Non-`a` frames are not merged.
    public static func merge(_ frames: [ByteBuffer]) -> ByteBuffer {
        precondition(!frames.isEmpty)
        if frames.count == 1 { return frames[0] }
        var total = 0
        for f in frames { total += f.readableBytes }
        var out = ByteBuffer()
        out.reserveCapacity(total)
        out.writeStaticString("a[")
        for (i, f) in frames.enumerated() {
            if i > 0 { out.writeStaticString(",") }
            // strip the leading "a[" and trailing "]"
            if let inner = f.getSlice(at: f.readerIndex + 2, length: f.readableBytes - 3) {
                var inner = inner
                out.writeBuffer(&inner)
            }
        }
        out.writeStaticString("]")
        return out
    }

    /// True for a buffer holding an `a[…]` frame.
    public static func isMessageFrame(_ frame: ByteBuffer) -> Bool {
        frame.readableBytes >= 3 && frame.getInteger(at: frame.readerIndex, as: UInt8.self) == UInt8(ascii: "a")
            && frame.getInteger(at: frame.readerIndex + 1, as: UInt8.self) == UInt8(ascii: "[")
    }

    public enum DecodeError: Error, Sendable, Hashable, CustomStringConvertible {
        case invalidJSON(String)
        case notStrings
        public var description: String {
            switch self {
            case .invalidJSON(let r): "broken JSON encoding (\(r))"
            case .notStrings: "payload expected (a JSON array of strings)"
            }
        }
    }

    /// A client WebSocket message: a JSON array of strings (`["CONNECT\n…\u0000"]`) or a single
    /// JSON string. An empty message yields no strings.
    public static func decodeClientMessage<Bytes: Collection>(_ bytes: Bytes) throws(DecodeError) -> [String] where Bytes.Element == UInt8 {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return [] }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes)
        } catch {
            throw .invalidJSON(error.reason)
        }
        switch value {
        case .string(let s): return [s]
        case .array(let items):
            var out: [String] = []
            out.reserveCapacity(items.count)
            for item in items {
                guard case .string(let s) = item else { throw .notStrings }
                out.append(s)
            }
            return out
        default:
            throw .notStrings
        }
    }

    // MARK: HTTP transports (sockjs-protocol 0.3.3 "XhrPolling", "XhrStreaming")

    /// What an `xhr_streaming` response starts with: 2048 `h` and a newline ("The transport must
    /// first send 2KiB of `h` bytes as prelude"), so that browsers start handing over chunks.
    public static let streamingPrelude: String = String(repeating: "h", count: 2048) + "\n"

    /// The close frame a second receiving request of one session gets (sockjs-protocol
    /// "Protocol": "The server must not allow two receiving connections to wait on a single session").
    public static let anotherConnectionStillOpen = closeFrame(code: 2010, reason: "Another connection still open")

    /// Why an `xhr_send` body was refused: answered 500 with `message` as the text body
    /// (sockjs-protocol "XhrPolling.test_invalid_json").
    public enum SendBodyError: Error, Sendable, Hashable {
        /// No body, or JSON that is not an array of strings.
        case payloadExpected
        /// Not JSON.
        case brokenJSON

        public var message: String {
            switch self {
            case .payloadExpected: "Payload expected."
            case .brokenJSON: "Broken JSON encoding."
            }
        }
    }

    /// An `xhr_send` body: a JSON array of strings (`["CONNECT\n…\u0000"]`). An empty body or
    /// anything but an array of strings is `payloadExpected`, what does not parse `brokenJSON`.
    public static func decodeSendBody<Bytes: Collection>(_ bytes: Bytes) throws(SendBodyError) -> [String] where Bytes.Element == UInt8 {
        if bytes.isEmpty { throw .payloadExpected }
        guard let value = try? JSONValue(parsing: bytes) else { throw .brokenJSON }
        guard case .array(let items) = value else { throw .payloadExpected }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .string(let s) = item else { throw .payloadExpected }
            out.append(s)
        }
        return out
    }

    /// True for a `{server}` or `{session}` path segment the HTTP transports accept: 1 to
    /// `maxLength` printable ASCII bytes without `.` (sockjs-protocol "SessionURLs": any value, "but
    /// not an empty string, anything containing dots").
    public static func isValidSessionSegment<S: StringProtocol>(_ segment: S, maxLength: Int) -> Bool {
        let utf8 = segment.utf8
        guard !utf8.isEmpty, utf8.count <= maxLength else { return false }
        return utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "/") }
    }

    /// True for a buffer holding the heart-beat frame `h`.
    public static func isHeartbeatFrame(_ frame: ByteBuffer) -> Bool {
        frame.readableBytes == 1 && frame.getInteger(at: frame.readerIndex, as: UInt8.self) == UInt8(ascii: "h")
    }

    /// True for a buffer holding a close frame `c[…]`.
    public static func isCloseFrame(_ frame: ByteBuffer) -> Bool {
        frame.readableBytes >= 3 && frame.getInteger(at: frame.readerIndex, as: UInt8.self) == UInt8(ascii: "c")
            && frame.getInteger(at: frame.readerIndex + 1, as: UInt8.self) == UInt8(ascii: "[")
    }
}
