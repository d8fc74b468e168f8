/// Why a byte stream is not valid STOMP. The `description` is the `message` of the ERROR frame.
public enum STOMPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownCommand(String)
    case lineTooLong(limit: Int)
    case tooManyHeaders(limit: Int)
    case malformedHeader
    case invalidEscape
    case invalidContentLength
    case bodyTooLarge(limit: Int)
    case missingNullTerminator

    public var description: String {
        switch self {
        case .unknownCommand(let c): "unknown command '\(c.prefix(32))'"
        case .lineTooLong(let l): "header line too long (max \(l) bytes)"
        case .tooManyHeaders(let l): "too many headers (max \(l))"
        case .malformedHeader: "malformed header line (expected name:value)"
        case .invalidEscape: "invalid header escape sequence"
        case .invalidContentLength: "invalid content-length"
        case .bodyTooLarge(let l): "frame body too large (max \(l) bytes)"
        case .missingNullTerminator: "frame body not terminated by NUL"
        }
    }
}

/// Limits of `STOMPFrameParser`.
public struct STOMPParserLimits: Sendable, Hashable {
    /// Body bytes per frame. 64 KiB = DESIGN.md "WebSocket: max frame 64 KiB"; chat is ≤ 500 chars.
    public var maxBodyLength: Int
    /// Bytes per command/header line. 8 KiB fits a JWT in an `Authorization` header with room to spare.
    public var maxHeaderLineLength: Int
    /// Headers per frame. Real clients send < 10.
    public var maxHeaders: Int

    public init(maxBodyLength: Int = 64 * 1024, maxHeaderLineLength: Int = 8 * 1024, maxHeaders: Int = 64) {
        self.maxBodyLength = maxBodyLength
        self.maxHeaderLineLength = maxHeaderLineLength
        self.maxHeaders = maxHeaders
    }
}

/// Incremental STOMP 1.2 frame parser ("Augmented BNF"). Pure value type: append bytes, then call
/// `next()` until it returns `.needMoreData`. Each byte is scanned once, so drip-feeding a frame
/// byte by byte costs the same as one buffer. Errors are fatal for the connection (ERROR + close).
public struct STOMPFrameParser: Sendable {
    public enum Output: Sendable, Hashable {
        case frame(STOMPFrame)
        /// A bare EOL between frames (STOMP 1.2 "Heart-beating").
        case heartbeat
        case needMoreData
    }

    private enum State: Sendable {
        /// Between frames; `scanned` = bytes of the command line already searched for EOL.
        case command(scanned: Int)
        case headers(STOMPCommand, STOMPHeaders, scanned: Int)
        /// `scanned` = body bytes already searched for NUL (no content-length).
        case body(STOMPCommand, STOMPHeaders, contentLength: Int?, scanned: Int)
        case failed(STOMPParseError)
    }

    public let limits: STOMPParserLimits
    private var buffer: [UInt8] = []
    private var start = 0  // first unconsumed byte
    private var state: State = .command(scanned: 0)

    public init(limits: STOMPParserLimits = .init()) {
        self.limits = limits
    }

    /// Bytes buffered but not yet returned as frames.
    public var bufferedBytes: Int { self.buffer.count - self.start }

    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if self.start > 0 && self.start >= self.buffer.count / 2 {
            self.buffer.removeFirst(self.start)
            self.start = 0
        }
        self.buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ string: String) { self.append(string.utf8) }

    /// Next frame, heart-beat, or `.needMoreData`. After an error every call throws the same error.
    public mutating func next() throws(STOMPParseError) -> Output {
        while true {
            switch self.state {
            case .failed(let e):
                throw e
            case .command(let scanned):
                let avail = self.buffer.count - self.start
                if avail == 0 { return .needMoreData }
                // heart-beat: bare LF or CRLF between frames
                if self.buffer[self.start] == 0x0A {
                    self.start += 1
                    return .heartbeat
                }
                if self.buffer[self.start] == 0x0D {
                    if avail < 2 { return .needMoreData }
                    if self.buffer[self.start + 1] == 0x0A {
                        self.start += 2
                        return .heartbeat
                    }
                }
                guard let eol = self.findByte(0x0A, from: self.start + scanned) else {
                    if avail > self.limits.maxHeaderLineLength { return try self.fail(.lineTooLong(limit: self.limits.maxHeaderLineLength)) }
                    self.state = .command(scanned: avail)
                    return .needMoreData
                }
                let line = self.line(self.start, eol)
                if line.count > self.limits.maxHeaderLineLength { return try self.fail(.lineTooLong(limit: self.limits.maxHeaderLineLength)) }
                guard let command = STOMPCommand(bytes: line) else {
                    return try self.fail(.unknownCommand(String(decoding: line, as: UTF8.self)))
                }
                self.start = eol + 1
                self.state = .headers(command, STOMPHeaders(), scanned: 0)
            case .headers(let command, var headers, let scanned):
                let avail = self.buffer.count - self.start
                guard let eol = self.findByte(0x0A, from: self.start + scanned) else {
                    if avail > self.limits.maxHeaderLineLength { return try self.fail(.lineTooLong(limit: self.limits.maxHeaderLineLength)) }
                    self.state = .headers(command, headers, scanned: avail)
                    return .needMoreData
                }
                let line = self.line(self.start, eol)
                if line.count > self.limits.maxHeaderLineLength { return try self.fail(.lineTooLong(limit: self.limits.maxHeaderLineLength)) }
                self.start = eol + 1
                if line.isEmpty {
                    var contentLength: Int?
                    if let cl = headers["content-length"] {
                        guard let n = Int(cl.trimmingSpaces), n >= 0 else { return try self.fail(.invalidContentLength) }
                        guard n <= self.limits.maxBodyLength else { return try self.fail(.bodyTooLarge(limit: self.limits.maxBodyLength)) }
                        contentLength = n
                    }
                    self.state = .body(command, headers, contentLength: contentLength, scanned: 0)
                    continue
                }
                guard headers.count < self.limits.maxHeaders else { return try self.fail(.tooManyHeaders(limit: self.limits.maxHeaders)) }
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return try self.fail(.malformedHeader) }
                let rawName = line[line.startIndex..<colon]
                let rawValue = line[(colon + 1)...]
                if command.escapesHeaders {
                    guard let name = Self.unescape(rawName), let value = Self.unescape(rawValue) else { return try self.fail(.invalidEscape) }
                    headers.append(name, value)
                } else {
                    headers.append(String(decoding: rawName, as: UTF8.self), String(decoding: rawValue, as: UTF8.self))
                }
                self.state = .headers(command, headers, scanned: 0)
            case .body(let command, let headers, let contentLength, let scanned):
                let avail = self.buffer.count - self.start
                let bodyEnd: Int
                if let n = contentLength {
                    guard avail >= n + 1 else { return .needMoreData }
                    guard self.buffer[self.start + n] == 0 else { return try self.fail(.missingNullTerminator) }
                    bodyEnd = self.start + n
                } else {
                    guard let nul = self.findByte(0, from: self.start + scanned) else {
                        if avail > self.limits.maxBodyLength { return try self.fail(.bodyTooLarge(limit: self.limits.maxBodyLength)) }
                        self.state = .body(command, headers, contentLength: nil, scanned: avail)
                        return .needMoreData
                    }
                    if nul - self.start > self.limits.maxBodyLength { return try self.fail(.bodyTooLarge(limit: self.limits.maxBodyLength)) }
                    bodyEnd = nul
                }
                let frame = STOMPFrame(command, headers: headers, body: Array(self.buffer[self.start..<bodyEnd]))
                self.start = bodyEnd + 1
                self.state = .command(scanned: 0)
                if self.start == self.buffer.count {
                    self.buffer.removeAll(keepingCapacity: self.buffer.capacity <= 64 * 1024)
                    self.start = 0
                }
                return .frame(frame)
            }
        }
    }

    private mutating func fail(_ e: STOMPParseError) throws(STOMPParseError) -> Output {
        self.state = .failed(e)
        self.buffer = []
        self.start = 0
        throw e
    }

    private func findByte(_ byte: UInt8, from: Int) -> Int? {
        var i = from
        while i < self.buffer.count {
            if self.buffer[i] == byte { return i }
            i += 1
        }
        return nil
    }

    /// Line content without the LF and an optional preceding CR.
    private func line(_ from: Int, _ eol: Int) -> ArraySlice<UInt8> {
        var end = eol
        if end > from && self.buffer[end - 1] == 0x0D { end -= 1 }
        return self.buffer[from..<end]
    }

    /// STOMP 1.2 "Value Encoding": `\r` `\n` `\c` `\\`; any other escape is a fatal error.
    static func unescape(_ bytes: ArraySlice<UInt8>) -> String? {
        guard bytes.contains(0x5C) else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var it = bytes.makeIterator()
        while let b = it.next() {
            if b != 0x5C {
                out.append(b)
                continue
            }
            switch it.next() {
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "c"): out.append(UInt8(ascii: ":"))
            case UInt8(ascii: "\\"): out.append(0x5C)
            default: return nil
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
