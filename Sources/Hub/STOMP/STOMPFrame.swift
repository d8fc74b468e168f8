/// STOMP 1.2 "Frames": command, ordered headers, body.
public enum STOMPCommand: String, Sendable, Hashable, CaseIterable {
    // client
    case connect = "CONNECT"
    case stomp = "STOMP"
    case send = "SEND"
    case subscribe = "SUBSCRIBE"
    case unsubscribe = "UNSUBSCRIBE"
    case ack = "ACK"
    case nack = "NACK"
    case begin = "BEGIN"
    case commit = "COMMIT"
    case abort = "ABORT"
    case disconnect = "DISCONNECT"
    // server
    case connected = "CONNECTED"
    case message = "MESSAGE"
    case receipt = "RECEIPT"
    case error = "ERROR"

    /// STOMP 1.2 "Value Encoding": CONNECT and CONNECTED headers are not escaped.
    public var escapesHeaders: Bool {
        switch self {
        case .connect, .stomp, .connected: return false
        default: return true
        }
    }

    init?(bytes: ArraySlice<UInt8>) {
        guard bytes.count <= 11, let c = STOMPCommand(rawValue: String(decoding: bytes, as: UTF8.self)) else { return nil }
        self = c
    }
}

/// Ordered STOMP headers. STOMP 1.2 "Repeated Header Entries": only the first occurrence counts.
public struct STOMPHeaders: Sendable, Hashable, ExpressibleByDictionaryLiteral, Sequence {
    public struct Entry: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    public private(set) var entries: [Entry]

    public init() { self.entries = [] }
    public init(_ pairs: [(String, String)]) { self.entries = pairs.map { Entry(name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    /// First value for `name`.
    public subscript(name: String) -> String? {
        self.entries.first { $0.name == name }?.value
    }

    public mutating func append(_ name: String, _ value: String) {
        self.entries.append(Entry(name: name, value: value))
    }

    /// Replaces every occurrence (or appends).
    public mutating func set(_ name: String, _ value: String) {
        self.entries.removeAll { $0.name == name }
        self.entries.append(Entry(name: name, value: value))
    }

    public var count: Int { self.entries.count }
    public func makeIterator() -> IndexingIterator<[Entry]> { self.entries.makeIterator() }
}

/// A STOMP frame. The body is raw bytes (`content-length` bodies may contain NUL).
public struct STOMPFrame: Sendable, Hashable {
    public var command: STOMPCommand
    public var headers: STOMPHeaders
    public var body: [UInt8]

    public init(_ command: STOMPCommand, headers: STOMPHeaders = STOMPHeaders(), body: [UInt8] = []) {
        self.command = command
        self.headers = headers
        self.body = body
    }

    public init(_ command: STOMPCommand, headers: STOMPHeaders = STOMPHeaders(), body: String) {
        self.init(command, headers: headers, body: Array(body.utf8))
    }

    public var bodyString: String { String(decoding: self.body, as: UTF8.self) }
}
