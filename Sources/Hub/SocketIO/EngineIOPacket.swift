/// Engine.IO v4 packet (engine.io-protocol v4 "Protocol"), text encoding, one packet per
/// WebSocket frame: `<type digit><data>`.
public enum EngineIOPacket: Sendable, Hashable {
    /// `0{"sid":…}` (server → client)
    case open(String)
    /// `1`
    case close
    /// `2[probe]`
    case ping(String)
    /// `3[probe]`
    case pong(String)
    /// `4<data>`: a Socket.IO packet.
    case message(String)
    /// `5`
    case upgrade
    /// `6`
    case noop

    public enum DecodeError: Error, Sendable, Hashable, CustomStringConvertible {
        case empty
        case unknownType(Character)
        public var description: String {
            switch self {
            case .empty: "empty Engine.IO packet"
            case .unknownType(let c): "unknown Engine.IO packet type '\(c)'"
            }
        }
    }

    public static func decode(_ text: String) throws(DecodeError) -> EngineIOPacket {
        guard let first = text.first else { throw .empty }
        let rest = String(text.dropFirst())
        switch first {
        case "0": return .open(rest)
        case "1": return .close
        case "2": return .ping(rest)
        case "3": return .pong(rest)
        case "4": return .message(rest)
        case "5": return .upgrade
        case "6": return .noop
        default: throw .unknownType(first)
        }
    }

    public var encoded: String {
        switch self {
        case .open(let d): "0" + d
        case .close: "1"
        case .ping(let d): "2" + d
        case .pong(let d): "3" + d
        case .message(let d): "4" + d
        case .upgrade: "5"
        case .noop: "6"
        }
    }

    /// The handshake packet: `0{"sid","upgrades":[…],"pingInterval","pingTimeout","maxPayload"}`;
    /// `upgrades` is `["websocket"]` on long-polling, `[]` on a WebSocket (nothing to upgrade to).
    public static func handshake(sid: String, upgrades: [String] = [], pingInterval: Int, pingTimeout: Int, maxPayload: Int) -> EngineIOPacket {
        let json: JSONValue = [
            "sid": .string(sid), "upgrades": .array(upgrades.map { .string($0) }), "pingInterval": .number(Double(pingInterval)),
            "pingTimeout": .number(Double(pingTimeout)), "maxPayload": .number(Double(maxPayload)),
        ]
        return .open(json.jsonString)
    }
}

/// Socket.IO v5 packet types (socket.io-protocol v5).
public enum SocketIOPacketType: Int, Sendable, Hashable {
    case connect = 0
    case disconnect = 1
    case event = 2
    case ack = 3
    case connectError = 4
    case binaryEvent = 5
    case binaryAck = 6
}

/// A Socket.IO packet inside an Engine.IO message: `<type>[<attachments>-][<nsp>,][<ackId>][json]`.
public struct SocketIOPacket: Sendable, Hashable {
    public var type: SocketIOPacketType
    /// `/` is the default namespace (omitted on the wire).
    public var namespace: String
    public var ackId: Int?
    public var data: JSONValue?
    /// Binary attachment count (`45`/`46` only).
    public var attachments: Int?

    public init(type: SocketIOPacketType, namespace: String = "/", ackId: Int? = nil, data: JSONValue? = nil, attachments: Int? = nil) {
        self.type = type
        self.namespace = namespace
        self.ackId = ackId
        self.data = data
        self.attachments = attachments
    }

    public enum DecodeError: Error, Sendable, Hashable, CustomStringConvertible {
        case empty
        case unknownType(Character)
        case badAttachments
        case badAckId
        case invalidJSON(String)
        case invalidPayload(String)
        public var description: String {
            switch self {
            case .empty: "empty Socket.IO packet"
            case .unknownType(let c): "unknown Socket.IO packet type '\(c)'"
            case .badAttachments: "malformed binary attachment count"
            case .badAckId: "malformed ack id"
            case .invalidJSON(let r): "invalid JSON payload: \(r)"
            case .invalidPayload(let r): "invalid payload: \(r)"
            }
        }
    }

    /// Largest ack id accepted (socket.io uses an incrementing counter).
    static let maxAckId = 1 << 52

    public static func decode(_ text: String) throws(DecodeError) -> SocketIOPacket {
        let bytes = Array(text.utf8)
        guard let t = bytes.first else { throw .empty }
        guard t >= 0x30, t <= 0x36, let type = SocketIOPacketType(rawValue: Int(t - 0x30)) else {
            throw .unknownType(Character(Unicode.Scalar(t)))
        }
        var i = 1
        var packet = SocketIOPacket(type: type)
        if type == .binaryEvent || type == .binaryAck {
            var n = 0
            var digits = 0
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39, digits < 9 {
                n = n * 10 + Int(bytes[i] - 0x30)
                i += 1
                digits += 1
            }
            guard digits > 0, i < bytes.count, bytes[i] == UInt8(ascii: "-") else { throw .badAttachments }
            i += 1
            packet.attachments = n
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "/") {
            let start = i
            while i < bytes.count, bytes[i] != UInt8(ascii: ",") { i += 1 }
            packet.namespace = String(decoding: bytes[start..<i], as: UTF8.self)
            if i < bytes.count { i += 1 }  // the comma
        }
        if i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
            var n = 0
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                n = n * 10 + Int(bytes[i] - 0x30)
                guard n <= self.maxAckId else { throw .badAckId }
                i += 1
            }
            packet.ackId = n
        }
        if i < bytes.count {
            do {
                packet.data = try JSONValue(parsing: bytes[i...])
            } catch {
                throw .invalidJSON(error.description)
            }
        }
        // socket.io-parser isPayloadValid
        switch type {
        case .connect:
            if let d = packet.data, d.objectValue == nil { throw .invalidPayload("CONNECT payload must be an object") }
        case .disconnect:
            if packet.data != nil { throw .invalidPayload("DISCONNECT has no payload") }
        case .connectError:
            if let d = packet.data, d.objectValue == nil, d.stringValue == nil { throw .invalidPayload("CONNECT_ERROR payload must be an object or string") }
        case .event, .binaryEvent:
            guard let a = packet.data?.arrayValue, let name = a.first, name.stringValue != nil || name.intValue != nil else {
                throw .invalidPayload("EVENT payload must be an array starting with the event name")
            }
        case .ack, .binaryAck:
            guard packet.data?.arrayValue != nil else { throw .invalidPayload("ACK payload must be an array") }
            guard packet.ackId != nil else { throw .badAckId }
        }
        return packet
    }

    /// Encoded Socket.IO packet (without the Engine.IO `4` prefix).
    public var encoded: String {
        var out: [UInt8] = [UInt8(0x30 + self.type.rawValue)]
        if let a = self.attachments, self.type == .binaryEvent || self.type == .binaryAck {
            out.append(contentsOf: "\(a)-".utf8)
        }
        if self.namespace != "/" {
            out.append(contentsOf: self.namespace.utf8)
            out.append(UInt8(ascii: ","))
        }
        if let id = self.ackId { out.append(contentsOf: String(id).utf8) }
        if let d = self.data { JSONWriter.write(d, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// `4` + packet: the text of the WebSocket frame.
    public var engineIOText: String { "4" + self.encoded }

    /// Event name and arguments of an EVENT packet.
    public var eventName: String? {
        guard let first = self.data?.arrayValue?.first else { return nil }
        return first.stringValue ?? first.intValue.map(String.init)
    }

    public var eventArguments: [JSONValue] {
        Array((self.data?.arrayValue ?? []).dropFirst())
    }
}
