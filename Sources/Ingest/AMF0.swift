import NIOCore

/// One AMF0 value (AMF0 specification, Adobe 2006, §2 "AMF 0 Data Types").
///
/// A value type: objects and ECMA arrays keep the order of their properties (RTMP peers and
/// FLV metadata readers care about it), and there is no `Any` anywhere.
public enum AMF0Value: Sendable, Hashable {
    /// §2.2 number-marker (0x00): IEEE-754 double, big-endian.
    case number(Double)
    /// §2.3 boolean-marker (0x01).
    case boolean(Bool)
    /// §2.4 string-marker (0x02) and §2.14 long-string-marker (0x0C); the encoder picks the
    /// long form when the UTF-8 length does not fit in 16 bits.
    case string(String)
    /// §2.5 object-marker (0x03): anonymous object, ordered properties.
    case object(AMF0Object)
    /// §2.7 null-marker (0x05).
    case null
    /// §2.8 undefined-marker (0x06).
    case undefined
    /// §2.10 ecma-array-marker (0x08): associative array, ordered properties.
    case ecmaArray(AMF0Object)
    /// §2.12 strict-array-marker (0x0A).
    case strictArray([AMF0Value])
    /// §2.13 date-marker (0x0B): milliseconds since the epoch and a (reserved) time zone.
    case date(millisecondsSince1970: Double, timeZone: Int16)

    public var numberValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .boolean(let value) = self { return value }
        return nil
    }

    /// The properties of an object or an ECMA array.
    public var objectValue: AMF0Object? {
        switch self {
        case .object(let object), .ecmaArray(let object): return object
        default: return nil
        }
    }
}

/// The ordered property list of an AMF0 object or ECMA array.
public struct AMF0Object: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public struct Property: Sendable, Hashable {
        public var name: String
        public var value: AMF0Value

        public init(name: String, value: AMF0Value) {
            self.name = name
            self.value = value
        }
    }

    public var properties: [Property]

    public init(_ properties: [Property] = []) {
        self.properties = properties
    }

    public init(dictionaryLiteral elements: (String, AMF0Value)...) {
        self.properties = elements.map { Property(name: $0.0, value: $0.1) }
    }

    /// The first property named `name` (lookup is linear: AMF objects are small).
    public subscript(name: String) -> AMF0Value? {
        get { properties.first { $0.name == name }?.value }
        set {
            if let index = properties.firstIndex(where: { $0.name == name }) {
                if let newValue {
                    properties[index].value = newValue
                } else {
                    properties.remove(at: index)
                }
            } else if let newValue {
                properties.append(Property(name: name, value: newValue))
            }
        }
    }

    public var count: Int { properties.count }
}

/// Why AMF0 bytes could not be decoded.
public enum AMF0DecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated
    case unsupportedMarker(UInt8)
    case nestingTooDeep(limit: Int)
    case stringTooLong(length: Int, limit: Int)
    case tooManyElements(count: Int, limit: Int)
    case invalidUTF8
    case missingObjectEnd

    public var description: String {
        switch self {
        case .truncated: return "AMF0 value truncated"
        case .unsupportedMarker(let marker): return "unsupported AMF0 marker 0x\(String(marker, radix: 16))"
        case .nestingTooDeep(let limit): return "AMF0 nesting deeper than \(limit)"
        case .stringTooLong(let length, let limit): return "AMF0 string of \(length) bytes (limit \(limit))"
        case .tooManyElements(let count, let limit): return "AMF0 container with \(count) elements (limit \(limit))"
        case .invalidUTF8: return "AMF0 string is not UTF-8"
        case .missingObjectEnd: return "AMF0 object without end marker"
        }
    }
}

/// AMF0 decoder with limits. Pure: reads from a `ByteBuffer` and never keeps state between calls.
public struct AMF0Decoder: Sendable {
    /// Deepest nesting of objects/arrays accepted. Default 16: RTMP commands and FLV metadata
    /// nest two or three levels; a deep nest is only useful to exhaust the stack.
    public var maxDepth: Int
    /// Longest string accepted (bytes). Default 64 KiB: stream keys, URLs and encoder names are
    /// short; a 1 MB string is an attack, not metadata.
    public var maxStringLength: Int
    /// Most elements in one object, ECMA array or strict array. Default 4096.
    public var maxElements: Int

    public init(maxDepth: Int = 16, maxStringLength: Int = 64 * 1024, maxElements: Int = 4096) {
        self.maxDepth = maxDepth
        self.maxStringLength = maxStringLength
        self.maxElements = maxElements
    }

    /// Decode every value in `buffer` (an RTMP command or data message body).
    public func decodeAll(_ buffer: ByteBuffer) throws(AMF0DecodingError) -> [AMF0Value] {
        var buffer = buffer
        var values: [AMF0Value] = []
        while buffer.readableBytes > 0 {
            if values.count >= maxElements {
                throw .tooManyElements(count: values.count + 1, limit: maxElements)
            }
            values.append(try decode(from: &buffer))
        }
        return values
    }

    /// Decode one value, moving the reader index past it. On error the index is unspecified.
    public func decode(from buffer: inout ByteBuffer) throws(AMF0DecodingError) -> AMF0Value {
        try decodeValue(from: &buffer, depth: 0)
    }

    private func decodeValue(from buffer: inout ByteBuffer, depth: Int) throws(AMF0DecodingError) -> AMF0Value {
        guard let marker = buffer.readInteger(as: UInt8.self) else { throw .truncated }
        switch marker {
        case 0x00:
            guard let bits = buffer.readInteger(as: UInt64.self) else { throw .truncated }
            return .number(Double(bitPattern: bits))
        case 0x01:
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw .truncated }
            return .boolean(byte != 0)
        case 0x02:
            guard let length = buffer.readInteger(as: UInt16.self) else { throw .truncated }
            return .string(try readString(from: &buffer, length: Int(length)))
        case 0x0C:
            guard let length = buffer.readInteger(as: UInt32.self) else { throw .truncated }
            return .string(try readString(from: &buffer, length: Int(length)))
        case 0x03:
            return .object(try readProperties(from: &buffer, depth: depth + 1, declaredCount: nil))
        case 0x05:
            return .null
        case 0x06:
            return .undefined
        case 0x08:
            guard let count = buffer.readInteger(as: UInt32.self) else { throw .truncated }
            return .ecmaArray(try readProperties(from: &buffer, depth: depth + 1, declaredCount: Int(count)))
        case 0x0A:
            guard let count = buffer.readInteger(as: UInt32.self) else { throw .truncated }
            guard depth + 1 <= maxDepth else { throw .nestingTooDeep(limit: maxDepth) }
            guard Int(count) <= maxElements else { throw .tooManyElements(count: Int(count), limit: maxElements) }
            // Each element takes at least one byte: refuse counts the buffer cannot hold.
            guard Int(count) <= buffer.readableBytes else { throw .truncated }
            var elements: [AMF0Value] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<count {
                elements.append(try decodeValue(from: &buffer, depth: depth + 1))
            }
            return .strictArray(elements)
        case 0x0B:
            guard let bits = buffer.readInteger(as: UInt64.self),
                let zone = buffer.readInteger(as: Int16.self)
            else { throw .truncated }
            return .date(millisecondsSince1970: Double(bitPattern: bits), timeZone: zone)
        default:
            // 0x04 movieclip, 0x07 reference, 0x0D unsupported, 0x0E recordset, 0x0F XML,
            // 0x10 typed object, 0x11 AMF3 switch: never sent by publishers.
            throw .unsupportedMarker(marker)
        }
    }

    private func readString(from buffer: inout ByteBuffer, length: Int) throws(AMF0DecodingError) -> String {
        guard length <= maxStringLength else { throw .stringTooLong(length: length, limit: maxStringLength) }
        guard let bytes = buffer.readSlice(length: length) else { throw .truncated }
        guard let string = bytes.getString(at: bytes.readerIndex, length: length) else { throw .invalidUTF8 }
        return string
    }

    /// Object properties (and ECMA array pairs) end with an empty name and the object-end
    /// marker 0x09 (§2.11). Some encoders end ECMA arrays early; the declared count is a hint.
    private func readProperties(from buffer: inout ByteBuffer, depth: Int, declaredCount: Int?) throws(AMF0DecodingError) -> AMF0Object {
        guard depth <= maxDepth else { throw .nestingTooDeep(limit: maxDepth) }
        var properties: [AMF0Object.Property] = []
        if let declaredCount, declaredCount <= maxElements { properties.reserveCapacity(declaredCount) }
        while true {
            guard let nameLength = buffer.readInteger(as: UInt16.self) else {
                // A few encoders omit the end marker of a top-level ECMA array.
                if declaredCount != nil && buffer.readableBytes == 0 { return AMF0Object(properties) }
                throw .missingObjectEnd
            }
            if nameLength == 0 {
                guard let end = buffer.readInteger(as: UInt8.self) else { throw .truncated }
                guard end == 0x09 else { throw .missingObjectEnd }
                return AMF0Object(properties)
            }
            let name = try readString(from: &buffer, length: Int(nameLength))
            guard properties.count < maxElements else {
                throw .tooManyElements(count: properties.count + 1, limit: maxElements)
            }
            let value = try decodeValue(from: &buffer, depth: depth)
            properties.append(AMF0Object.Property(name: name, value: value))
        }
    }
}

/// AMF0 encoder (for the server's responses and for tests).
public enum AMF0Encoder {
    public static func encode(_ values: [AMF0Value], into buffer: inout ByteBuffer) {
        for value in values { encode(value, into: &buffer) }
    }

    public static func encode(_ value: AMF0Value, into buffer: inout ByteBuffer) {
        switch value {
        case .number(let number):
            buffer.writeInteger(UInt8(0x00))
            buffer.writeInteger(number.bitPattern)
        case .boolean(let bool):
            buffer.writeInteger(UInt8(0x01))
            buffer.writeInteger(UInt8(bool ? 1 : 0))
        case .string(let string):
            let length = string.utf8.count
            if length <= Int(UInt16.max) {
                buffer.writeInteger(UInt8(0x02))
                buffer.writeInteger(UInt16(length))
            } else {
                buffer.writeInteger(UInt8(0x0C))
                buffer.writeInteger(UInt32(truncatingIfNeeded: length))
            }
            buffer.writeString(string)
        case .object(let object):
            buffer.writeInteger(UInt8(0x03))
            encodeProperties(object, into: &buffer)
        case .null:
            buffer.writeInteger(UInt8(0x05))
        case .undefined:
            buffer.writeInteger(UInt8(0x06))
        case .ecmaArray(let object):
            buffer.writeInteger(UInt8(0x08))
            buffer.writeInteger(UInt32(object.count))
            encodeProperties(object, into: &buffer)
        case .strictArray(let elements):
            buffer.writeInteger(UInt8(0x0A))
            buffer.writeInteger(UInt32(elements.count))
            for element in elements { encode(element, into: &buffer) }
        case .date(let milliseconds, let timeZone):
            buffer.writeInteger(UInt8(0x0B))
            buffer.writeInteger(milliseconds.bitPattern)
            buffer.writeInteger(timeZone)
        }
    }

    private static func encodeProperties(_ object: AMF0Object, into buffer: inout ByteBuffer) {
        for property in object.properties {
            let name = Array(property.name.utf8.prefix(Int(UInt16.max)))
            buffer.writeInteger(UInt16(name.count))
            buffer.writeBytes(name)
            encode(property.value, into: &buffer)
        }
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt8(0x09))
    }
}
