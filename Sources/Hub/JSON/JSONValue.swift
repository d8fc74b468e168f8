/// A JSON value with object key order preserved (so what we encode is what the Server wrote).
/// Used for Socket.IO payloads and SockJS frames; parsing is `JSONParser`, encoding `JSONWriter`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Ordered members; lookups return the first member with the key.
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(b)
        case .number(let n): hasher.combine(n)
        case .string(let s): hasher.combine(s)
        case .array(let a): hasher.combine(a)
        case .object(let o):
            for (k, v) in o {
                hasher.combine(k)
                hasher.combine(v)
            }
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    public subscript(index: Int) -> JSONValue? {
        guard case .array(let a) = self, a.indices.contains(index) else { return nil }
        return a[index]
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// Integral numbers only.
    public var intValue: Int? {
        guard case .number(let n) = self, n.rounded() == n, abs(n) < 9.0e15 else { return nil }
        return Int(n)
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [(String, JSONValue)]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Parses UTF-8 JSON text.
    public init(parsing text: String, maxDepth: Int = 64) throws(JSONParseError) {
        var parser = JSONParser(bytes: Array(text.utf8), maxDepth: maxDepth)
        self = try parser.parseDocument()
    }

    /// Parses UTF-8 JSON bytes.
    public init<Bytes: Collection>(parsing bytes: Bytes, maxDepth: Int = 64) throws(JSONParseError) where Bytes.Element == UInt8 {
        var parser = JSONParser(bytes: Array(bytes), maxDepth: maxDepth)
        self = try parser.parseDocument()
    }

    /// Compact JSON text.
    public var jsonString: String {
        var out: [UInt8] = []
        JSONWriter.write(self, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        JSONWriter.write(self, into: &out)
        return out
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { self.jsonString }
}

public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(self.offset): \(self.reason)" }
}

/// Recursive-descent JSON parser (RFC 8259) over bytes, with a depth limit.
struct JSONParser {
    let bytes: [UInt8]
    var i = 0
    let maxDepth: Int

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: self.i, reason: reason) }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        self.skipWhitespace()
        let v = try self.parseValue(depth: 0)
        self.skipWhitespace()
        guard self.i == self.bytes.count else { throw self.fail("trailing characters") }
        return v
    }

    /// Parses one value starting at `i` and leaves `i` after it (for prefix parsing).
    mutating func parseValuePrefix() throws(JSONParseError) -> JSONValue {
        self.skipWhitespace()
        return try self.parseValue(depth: 0)
    }

    mutating func skipWhitespace() {
        while self.i < self.bytes.count {
            switch self.bytes[self.i] {
            case 0x20, 0x09, 0x0A, 0x0D: self.i += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= self.maxDepth else { throw self.fail("nested too deeply") }
        guard self.i < self.bytes.count else { throw self.fail("unexpected end") }
        switch self.bytes[self.i] {
        case UInt8(ascii: "{"):
            self.i += 1
            var members: [(String, JSONValue)] = []
            self.skipWhitespace()
            if self.peek == UInt8(ascii: "}") {
                self.i += 1
                return .object(members)
            }
            while true {
                self.skipWhitespace()
                guard self.peek == UInt8(ascii: "\"") else { throw self.fail("expected object key") }
                let key = try self.parseString()
                self.skipWhitespace()
                guard self.peek == UInt8(ascii: ":") else { throw self.fail("expected ':'") }
                self.i += 1
                self.skipWhitespace()
                let value = try self.parseValue(depth: depth + 1)
                members.append((key, value))
                self.skipWhitespace()
                switch self.peek {
                case UInt8(ascii: ","): self.i += 1
                case UInt8(ascii: "}"):
                    self.i += 1
                    return .object(members)
                default: throw self.fail("expected ',' or '}'")
                }
            }
        case UInt8(ascii: "["):
            self.i += 1
            var items: [JSONValue] = []
            self.skipWhitespace()
            if self.peek == UInt8(ascii: "]") {
                self.i += 1
                return .array(items)
            }
            while true {
                self.skipWhitespace()
                items.append(try self.parseValue(depth: depth + 1))
                self.skipWhitespace()
                switch self.peek {
                case UInt8(ascii: ","): self.i += 1
                case UInt8(ascii: "]"):
                    self.i += 1
                    return .array(items)
                default: throw self.fail("expected ',' or ']'")
                }
            }
        case UInt8(ascii: "\""):
            return .string(try self.parseString())
        case UInt8(ascii: "t"):
            try self.literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try self.literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try self.literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try self.parseNumber())
        default:
            throw self.fail("unexpected character")
        }
    }

    var peek: UInt8? { self.i < self.bytes.count ? self.bytes[self.i] : nil }

    mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard self.i + n <= self.bytes.count else { throw self.fail("unexpected end") }
        let ok = word.withUTF8Buffer { w in
            for k in 0..<n where self.bytes[self.i + k] != w[k] { return false }
            return true
        }
        guard ok else { throw self.fail("invalid literal") }
        self.i += n
    }

    mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = self.i
        if self.peek == UInt8(ascii: "-") { self.i += 1 }
        guard let first = self.peek, first >= 0x30, first <= 0x39 else { throw self.fail("invalid number") }
        if first == 0x30 {
            self.i += 1
        } else {
            while let c = self.peek, c >= 0x30, c <= 0x39 { self.i += 1 }
        }
        if self.peek == UInt8(ascii: ".") {
            self.i += 1
            guard let c = self.peek, c >= 0x30, c <= 0x39 else { throw self.fail("invalid number") }
            while let c = self.peek, c >= 0x30, c <= 0x39 { self.i += 1 }
        }
        if self.peek == UInt8(ascii: "e") || self.peek == UInt8(ascii: "E") {
            self.i += 1
            if self.peek == UInt8(ascii: "+") || self.peek == UInt8(ascii: "-") { self.i += 1 }
            guard let c = self.peek, c >= 0x30, c <= 0x39 else { throw self.fail("invalid number") }
            while let c = self.peek, c >= 0x30, c <= 0x39 { self.i += 1 }
        }
        let text = String(decoding: self.bytes[start..<self.i], as: UTF8.self)
        guard let d = Double(text), d.isFinite else { throw self.fail("invalid number") }
        return d
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard self.i + 4 <= self.bytes.count else { throw self.fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = self.bytes[self.i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw self.fail("bad \\u escape")
            }
            v = v << 4 | d
            self.i += 1
        }
        return v
    }

    mutating func parseString() throws(JSONParseError) -> String {
        self.i += 1  // opening quote
        var out: [UInt8] = []
        // Fast path: copy runs without escapes.
        while true {
            guard self.i < self.bytes.count else { throw self.fail("unterminated string") }
            let c = self.bytes[self.i]
            if c == UInt8(ascii: "\"") {
                self.i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c < 0x20 { throw self.fail("control character in string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                self.i += 1
                continue
            }
            self.i += 1
            guard self.i < self.bytes.count else { throw self.fail("unterminated escape") }
            let e = self.bytes[self.i]
            self.i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try self.parseHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    // surrogate pair
                    if self.i + 6 <= self.bytes.count, self.bytes[self.i] == UInt8(ascii: "\\"), self.bytes[self.i + 1] == UInt8(ascii: "u") {
                        self.i += 2
                        let low = try self.parseHex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    scalar = 0xFFFD
                }
                let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: String(Character(u)).utf8)
            default:
                throw self.fail("bad escape")
            }
        }
    }
}
