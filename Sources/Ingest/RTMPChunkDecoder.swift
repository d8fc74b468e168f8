import NIOCore

/// One complete RTMP message after chunk reassembly (RTMP 1.0 §6.1 "RTMP Message Format").
public struct RTMPRawMessage: Sendable, Equatable {
    /// The chunk stream it arrived on (§5.3.1.1); the encoder uses it for outbound messages.
    public var chunkStreamId: UInt32
    /// u32 milliseconds as on the wire (wraps; unwrap per track later).
    public var timestamp: UInt32
    public var typeId: UInt8
    public var messageStreamId: UInt32
    public var payload: ByteBuffer

    public init(chunkStreamId: UInt32, timestamp: UInt32, typeId: UInt8, messageStreamId: UInt32, payload: ByteBuffer) {
        self.chunkStreamId = chunkStreamId
        self.timestamp = timestamp
        self.typeId = typeId
        self.messageStreamId = messageStreamId
        self.payload = payload
    }
}

/// Why the chunk stream cannot be read any further. Each one closes the connection.
public enum RTMPChunkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// fmt 1/2/3 on a chunk stream that never had a fmt 0 header.
    case unknownChunkStream(UInt32)
    case messageTooLarge(length: Int, limit: Int)
    case tooManyChunkStreams(limit: Int)
    case invalidChunkSize(UInt32)
    /// A fmt 1/2 header changed the length/type in the middle of a message.
    case headerInsideMessage(UInt32)
    /// Starting this message would make the partly reassembled messages of all chunk streams
    /// together declare more than `limit` bytes.
    case reassemblyLimit(wouldHold: Int, limit: Int)

    public var description: String {
        switch self {
        case .unknownChunkStream(let csid): return "continuation on unknown chunk stream \(csid)"
        case .messageTooLarge(let length, let limit): return "message of \(length) bytes (limit \(limit))"
        case .tooManyChunkStreams(let limit): return "more than \(limit) chunk streams"
        case .invalidChunkSize(let size): return "invalid chunk size \(size)"
        case .headerInsideMessage(let csid): return "new message header inside an unfinished message on chunk stream \(csid)"
        case .reassemblyLimit(let wouldHold, let limit):
            return "partly reassembled messages would hold \(wouldHold) bytes (limit \(limit))"
        }
    }
}

/// RTMP 1.0 §5.3 Chunking: a pure parser that turns chunks into complete messages.
///
/// Call `nextMessage(from:)` until it returns `nil` ("need more bytes"); bytes of an incomplete
/// chunk are left in the buffer. The caller applies Set Chunk Size and Abort (through
/// `setChunkSize(_:)` / `abort(chunkStreamId:)`) before asking for the next message, which is
/// exactly when they take effect on the wire.
public struct RTMPChunkDecoder: Sendable {
    /// Largest message accepted. Default 8 MiB: a 1080p keyframe is a few hundred KiB; the
    /// limit bounds the memory one connection can make us hold.
    public let maxMessageSize: Int
    /// Largest chunk size a peer may announce. Default 64 KiB (DESIGN.md limits).
    public let maxChunkSize: Int
    /// Most chunk streams with state. Default 64: publishers use 3–8.
    public let maxChunkStreams: Int
    /// Most bytes that the messages being reassembled, on all chunk streams together, may declare
    /// (each one's buffer is allocated at its declared length when its first chunk arrives). The
    /// connection keeps it small until the publish is authorised and raises it then
    /// (`RTMPIngestConnection.Limits`): 64 chunk streams × 8 MiB would otherwise be 512 MiB per
    /// connection for anyone who can open a TCP connection.
    public var maxPartialBytes: Int
    /// What the messages being reassembled declare now.
    public private(set) var partialBytes = 0

    /// RTMP 1.0 §5.4.1: 128 until the peer sends Set Chunk Size.
    public private(set) var chunkSize: Int = 128

    /// Per chunk stream: the last header seen (§5.3.1.2 headers compress against it) and the
    /// message being reassembled.
    struct ChunkStream: Sendable {
        var timestamp: UInt32 = 0
        /// The timestamp field of the last fmt 0/1/2 header: absolute for fmt 0, a delta
        /// otherwise. A fmt 3 header that starts a new message adds it (as ffmpeg's rtmppkt.c).
        var timestampField: UInt32 = 0
        /// The last fmt 0/1/2 header used the extended timestamp: fmt 3 repeats the 4 bytes.
        var extended = false
        var length: Int = 0
        var typeId: UInt8 = 0
        var messageStreamId: UInt32 = 0
        /// Message in progress, nil between messages.
        var partial: ByteBuffer?
        var received: Int = 0
    }

    private var streams: [UInt32: ChunkStream] = [:]

    public init(maxMessageSize: Int = 8 << 20, maxChunkSize: Int = 65536, maxChunkStreams: Int = 64, maxPartialBytes: Int = 16 << 20) {
        self.maxMessageSize = maxMessageSize
        self.maxChunkSize = maxChunkSize
        self.maxChunkStreams = maxChunkStreams
        self.maxPartialBytes = maxPartialBytes
    }

    /// RTMP 1.0 §5.4.1 Set Chunk Size: 1...maxChunkSize (the top bit must be 0, so ≥ 2^31 is
    /// invalid whatever the limit).
    public mutating func setChunkSize(_ size: UInt32) throws(RTMPChunkError) {
        guard size >= 1, size < 0x8000_0000, Int(size) <= maxChunkSize else { throw .invalidChunkSize(size) }
        chunkSize = Int(size)
    }

    /// RTMP 1.0 §5.4.2 Abort Message: drop the partial message of `chunkStreamId`.
    public mutating func abort(chunkStreamId: UInt32) {
        if let stream = streams[chunkStreamId], stream.partial != nil {
            partialBytes -= stream.length
            streams[chunkStreamId]!.partial = nil
            streams[chunkStreamId]!.received = 0
        }
    }

    /// The next complete message, or nil when more bytes are needed.
    public mutating func nextMessage(from buffer: inout ByteBuffer) throws(RTMPChunkError) -> RTMPRawMessage? {
        while true {
            switch try readChunk(from: &buffer) {
            case .needMoreBytes: return nil
            case .partial: continue
            case .message(let message): return message
            }
        }
    }

    enum ChunkResult {
        case needMoreBytes
        case partial
        case message(RTMPRawMessage)
    }

    /// Reads one whole chunk (header + body) or nothing.
    mutating func readChunk(from buffer: inout ByteBuffer) throws(RTMPChunkError) -> ChunkResult {
        var cursor = buffer.readerIndex
        // §5.3.1.1 Chunk Basic Header.
        guard let first = buffer.getInteger(at: cursor, as: UInt8.self) else { return .needMoreBytes }
        cursor += 1
        let fmt = first >> 6
        var csid = UInt32(first & 0x3F)
        if csid == 0 {
            guard let b1 = buffer.getInteger(at: cursor, as: UInt8.self) else { return .needMoreBytes }
            cursor += 1
            csid = 64 + UInt32(b1)
        } else if csid == 1 {
            guard let b1 = buffer.getInteger(at: cursor, as: UInt8.self),
                let b2 = buffer.getInteger(at: cursor + 1, as: UInt8.self)
            else { return .needMoreBytes }
            cursor += 2
            csid = 64 + UInt32(b1) + UInt32(b2) * 256
        }

        var stream: ChunkStream
        if let existing = streams[csid] {
            stream = existing
        } else {
            guard fmt == 0 else { throw .unknownChunkStream(csid) }
            guard streams.count < maxChunkStreams else { throw .tooManyChunkStreams(limit: maxChunkStreams) }
            stream = ChunkStream()
        }

        // §5.3.1.2 Chunk Message Header.
        let headerLength = [11, 7, 3, 0][Int(fmt)]
        guard buffer.readableBytes >= cursor - buffer.readerIndex + headerLength else { return .needMoreBytes }
        var timestampField = stream.timestampField
        var extended = stream.extended
        if fmt <= 2 {
            timestampField = buffer.getUInt24(at: cursor)
            extended = timestampField == 0xFF_FFFF
        }
        if fmt <= 1 {
            let length = Int(buffer.getUInt24(at: cursor + 3))
            let typeId = buffer.getInteger(at: cursor + 6, as: UInt8.self)!
            if stream.partial != nil {
                // A new header in the middle of a message: only legal if it repeats the header.
                guard length == stream.length, typeId == stream.typeId else { throw .headerInsideMessage(csid) }
            }
            stream.length = length
            stream.typeId = typeId
            if fmt == 0 {
                stream.messageStreamId = buffer.getInteger(at: cursor + 7, endianness: .little, as: UInt32.self)!
            }
        }
        cursor += headerLength
        // §5.3.1.3 Extended Timestamp, repeated on fmt 3 when the last header used it.
        if extended {
            guard let value = buffer.getInteger(at: cursor, as: UInt32.self) else { return .needMoreBytes }
            cursor += 4
            if fmt <= 2 { timestampField = value }
        }
        guard stream.length <= maxMessageSize else {
            throw .messageTooLarge(length: stream.length, limit: maxMessageSize)
        }

        let startsMessage = stream.partial == nil
        let alreadyReceived = startsMessage ? 0 : stream.received
        let bodyLength = min(chunkSize, stream.length - alreadyReceived)
        guard buffer.readableBytes >= cursor - buffer.readerIndex + bodyLength else { return .needMoreBytes }

        // The whole chunk is here: commit.
        if fmt <= 2 {
            stream.timestampField = timestampField
            stream.extended = extended
        }
        if startsMessage {
            switch fmt {
            case 0: stream.timestamp = timestampField
            default: stream.timestamp &+= stream.timestampField
            }
        }
        buffer.moveReaderIndex(to: cursor)
        let body = buffer.readSlice(length: bodyLength)!

        if startsMessage && bodyLength == stream.length {
            // Single-chunk message: hand out a slice, no copy.
            streams[csid] = stream
            return .message(
                RTMPRawMessage(
                    chunkStreamId: csid, timestamp: stream.timestamp, typeId: stream.typeId,
                    messageStreamId: stream.messageStreamId, payload: body))
        }
        if startsMessage {
            guard partialBytes + stream.length <= maxPartialBytes else {
                throw .reassemblyLimit(wouldHold: partialBytes + stream.length, limit: maxPartialBytes)
            }
            partialBytes += stream.length
            var partial = ByteBufferAllocator().buffer(capacity: stream.length)
            partial.writeImmutableBuffer(body)
            stream.partial = partial
            stream.received = bodyLength
        } else {
            // `stream` is a copy of the dictionary's entry: both hold the partial message. Take it
            // out of both before appending, or every chunk would copy the whole message so far
            // (copy-on-write: quadratic in the number of chunks of a keyframe).
            var partial = stream.partial!
            stream.partial = nil
            streams[csid]!.partial = nil
            partial.writeImmutableBuffer(body)
            stream.partial = partial
            stream.received += bodyLength
        }
        if stream.received == stream.length {
            let payload = stream.partial!
            stream.partial = nil
            stream.received = 0
            partialBytes -= stream.length
            streams[csid] = stream
            return .message(
                RTMPRawMessage(
                    chunkStreamId: csid, timestamp: stream.timestamp, typeId: stream.typeId,
                    messageStreamId: stream.messageStreamId, payload: payload))
        }
        streams[csid] = stream
        return .partial
    }
}

/// RTMP 1.0 §5.3 Chunking, outbound: what the server sends (fmt 0 first chunk, fmt 3
/// continuations, extended timestamp repeated on continuations as ffmpeg/librtmp expect).
public struct RTMPChunkEncoder: Sendable {
    public private(set) var chunkSize: Int = 128

    public init() {}

    /// Takes effect for messages encoded after this call (send Set Chunk Size first).
    public mutating func setChunkSize(_ size: Int) {
        chunkSize = max(1, min(size, 0x7FFF_FFFF))
    }

    public func encode(_ message: RTMPRawMessage, into out: inout ByteBuffer) {
        let extended = message.timestamp >= 0xFF_FFFF
        var payload = message.payload
        var first = true
        repeat {
            writeBasicHeader(fmt: first ? 0 : 3, csid: message.chunkStreamId, into: &out)
            if first {
                out.writeUInt24(extended ? 0xFF_FFFF : message.timestamp)
                out.writeUInt24(UInt32(payload.readableBytes))
                out.writeInteger(message.typeId)
                out.writeInteger(message.messageStreamId, endianness: .little)
            }
            if extended { out.writeInteger(message.timestamp) }
            let body = payload.readSlice(length: min(chunkSize, payload.readableBytes))!
            out.writeImmutableBuffer(body)
            first = false
        } while payload.readableBytes > 0
    }

    private func writeBasicHeader(fmt: UInt8, csid: UInt32, into out: inout ByteBuffer) {
        switch csid {
        case 2...63:
            out.writeInteger(fmt << 6 | UInt8(csid))
        case 64...319:
            out.writeInteger(fmt << 6)
            out.writeInteger(UInt8(csid - 64))
        default:
            let value = csid - 64
            out.writeInteger(fmt << 6 | 1)
            out.writeInteger(UInt8(value & 0xFF))
            out.writeInteger(UInt8((value >> 8) & 0xFF))
        }
    }
}

extension ByteBuffer {
    func getUInt24(at index: Int) -> UInt32 {
        let b0 = UInt32(getInteger(at: index, as: UInt8.self)!)
        let b1 = UInt32(getInteger(at: index + 1, as: UInt8.self)!)
        let b2 = UInt32(getInteger(at: index + 2, as: UInt8.self)!)
        return b0 << 16 | b1 << 8 | b2
    }

    mutating func writeUInt24(_ value: UInt32) {
        writeInteger(UInt8((value >> 16) & 0xFF))
        writeInteger(UInt8((value >> 8) & 0xFF))
        writeInteger(UInt8(value & 0xFF))
    }
}
