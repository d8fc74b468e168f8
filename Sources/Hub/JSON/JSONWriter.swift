public import NIOCore

/// Compact JSON encoding into bytes. Strings escape `"` `\` and every control character
/// (so NUL becomes `\u0000`), plus U+2028/U+2029 (SockJS clients eval-safe framing).
public enum JSONWriter {
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): self.writeNumber(n, into: &out)
        case .string(let s): self.writeString(s, into: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (k, v) in a.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                self.write(v, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (k, (key, v)) in o.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                self.write(v, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeNumber(_ n: Double, into out: inout [UInt8]) {
        if !n.isFinite {
            out.append(contentsOf: "null".utf8)
        } else if n.rounded() == n, abs(n) < 1e15 {
            out.append(contentsOf: String(Int64(n)).utf8)
        } else {
            out.append(contentsOf: "\(n)".utf8)
        }
    }

    /// Writes `s` as a quoted JSON string.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        self.writeEscaped(s.utf8, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// Writes the escaped contents (no quotes) of UTF-8 bytes.
    public static func writeEscaped<Bytes: Sequence>(_ bytes: Bytes, into out: inout [UInt8]) where Bytes.Element == UInt8 {
        var pendingE2 = 0  // tracking E2 80 A8/A9 (U+2028/2029)
        for b in bytes {
            if pendingE2 == 1 {
                if b == 0x80 { pendingE2 = 2; continue }
                out.append(0xE2)
                pendingE2 = 0
            } else if pendingE2 == 2 {
                if b == 0xA8 || b == 0xA9 {
                    out.append(contentsOf: (b == 0xA8 ? "\\u2028" : "\\u2029").utf8)
                    pendingE2 = 0
                    continue
                }
                out.append(0xE2)
                out.append(0x80)
                pendingE2 = 0
            }
            switch b {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0x08: out.append(0x5C); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(0x5C); out.append(UInt8(ascii: "f"))
            case 0x00..<0x20, 0x7F:
                out.append(contentsOf: "\\u00".utf8)
                out.append(self.hex[Int(b >> 4)])
                out.append(self.hex[Int(b & 0xF)])
            case 0xE2:
                pendingE2 = 1
            default:
                out.append(b)
            }
        }
        if pendingE2 >= 1 { out.append(0xE2) }
        if pendingE2 == 2 { out.append(0x80) }
    }

    /// Writes a quoted JSON string into a ByteBuffer.
    public static func writeString(_ s: String, into buffer: inout ByteBuffer) {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        self.writeString(s, into: &out)
        buffer.writeBytes(out)
    }

    public static func write(_ value: JSONValue, into buffer: inout ByteBuffer) {
        var out: [UInt8] = []
        self.write(value, into: &out)
        buffer.writeBytes(out)
    }
}
