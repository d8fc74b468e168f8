import NIOCore

/// RTMP 1.0 §7.1.7 User Control Message events (§7.1.7 table / PROTOCOLS.md §1).
public enum RTMPUserControlEvent: Sendable, Hashable {
    /// 0 StreamBegin(msid).
    case streamBegin(UInt32)
    /// 1 StreamEOF(msid).
    case streamEOF(UInt32)
    /// 3 SetBufferLength(msid, ms).
    case setBufferLength(UInt32, milliseconds: UInt32)
    /// 6 PingRequest(timestamp): answer with PingResponse carrying the same value.
    case pingRequest(UInt32)
    /// 7 PingResponse(timestamp).
    case pingResponse(UInt32)
    /// Any other event type, kept raw.
    case other(UInt16, ByteBuffer)
}

/// An AMF0 command (RTMP 1.0 §7.1.1 Command Message, type 20): name, transaction id, then
/// a command object (often null) and arguments.
public struct RTMPCommand: Sendable, Hashable {
    public var name: String
    public var transactionId: Double
    /// Everything after the transaction id.
    public var arguments: [AMF0Value]

    public init(name: String, transactionId: Double, arguments: [AMF0Value]) {
        self.name = name
        self.transactionId = transactionId
        self.arguments = arguments
    }
}

/// RTMP 1.0 §5.4 / §7 messages, typed. Unknown types are kept as `.unknown` and ignored.
public enum RTMPMessage: Sendable {
    /// §5.4.1 Set Chunk Size (type 1).
    case setChunkSize(UInt32)
    /// §5.4.2 Abort Message (type 2).
    case abort(chunkStreamId: UInt32)
    /// §5.4.3 Acknowledgement (type 3).
    case acknowledgement(sequenceNumber: UInt32)
    /// §7.1.7 User Control Message (type 4).
    case userControl(RTMPUserControlEvent)
    /// §5.4.4 Window Acknowledgement Size (type 5).
    case windowAcknowledgementSize(UInt32)
    /// §5.4.5 Set Peer Bandwidth (type 6): size and limit type (0 hard, 1 soft, 2 dynamic).
    case setPeerBandwidth(UInt32, limitType: UInt8)
    /// §7.1.5 Audio Message (type 8): an FLV AUDIODATA body.
    case audio(timestamp: UInt32, payload: ByteBuffer)
    /// §7.1.5 Video Message (type 9): an FLV VIDEODATA body.
    case video(timestamp: UInt32, payload: ByteBuffer)
    /// §7.1.2 Data Message AMF0 (type 18).
    case data([AMF0Value])
    /// §7.1.1 Command Message AMF0 (type 20).
    case command(RTMPCommand)
    /// AMF3 (15/17), shared objects (16/19), aggregate (22) and anything else.
    case unknown(typeId: UInt8)

    public enum TypeID {
        public static let setChunkSize: UInt8 = 1
        public static let abort: UInt8 = 2
        public static let acknowledgement: UInt8 = 3
        public static let userControl: UInt8 = 4
        public static let windowAcknowledgementSize: UInt8 = 5
        public static let setPeerBandwidth: UInt8 = 6
        public static let audio: UInt8 = 8
        public static let video: UInt8 = 9
        public static let dataAMF0: UInt8 = 18
        public static let commandAMF0: UInt8 = 20
    }
}

/// Why a message body could not be understood. Closes the connection.
public enum RTMPMessageError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated(typeId: UInt8)
    case malformedAMF(AMF0DecodingError)
    case malformedCommand(String)

    public var description: String {
        switch self {
        case .truncated(let typeId): return "message type \(typeId) truncated"
        case .malformedAMF(let error): return "malformed AMF0: \(error)"
        case .malformedCommand(let reason): return "malformed command: \(reason)"
        }
    }
}

extension RTMPMessage {
    /// Decode a reassembled message. Media payloads stay slices of the chunk buffer.
    public init(decoding raw: RTMPRawMessage, amf: AMF0Decoder = AMF0Decoder()) throws(RTMPMessageError) {
        var body = raw.payload
        func u32() throws(RTMPMessageError) -> UInt32 {
            guard let value = body.readInteger(as: UInt32.self) else { throw .truncated(typeId: raw.typeId) }
            return value
        }
        switch raw.typeId {
        case TypeID.setChunkSize:
            self = .setChunkSize(try u32())
        case TypeID.abort:
            self = .abort(chunkStreamId: try u32())
        case TypeID.acknowledgement:
            self = .acknowledgement(sequenceNumber: try u32())
        case TypeID.userControl:
            guard let event = body.readInteger(as: UInt16.self) else { throw .truncated(typeId: raw.typeId) }
            switch event {
            case 0: self = .userControl(.streamBegin(try u32()))
            case 1: self = .userControl(.streamEOF(try u32()))
            case 3:
                let streamId = try u32()
                self = .userControl(.setBufferLength(streamId, milliseconds: try u32()))
            case 6: self = .userControl(.pingRequest(try u32()))
            case 7: self = .userControl(.pingResponse(try u32()))
            default: self = .userControl(.other(event, body))
            }
        case TypeID.windowAcknowledgementSize:
            self = .windowAcknowledgementSize(try u32())
        case TypeID.setPeerBandwidth:
            let size = try u32()
            // The limit type byte is optional in practice (some clients omit it).
            self = .setPeerBandwidth(size, limitType: body.readInteger(as: UInt8.self) ?? 2)
        case TypeID.audio:
            self = .audio(timestamp: raw.timestamp, payload: body)
        case TypeID.video:
            self = .video(timestamp: raw.timestamp, payload: body)
        case TypeID.dataAMF0:
            do {
                self = .data(try amf.decodeAll(body))
            } catch {
                throw .malformedAMF(error)
            }
        case TypeID.commandAMF0:
            let values: [AMF0Value]
            do {
                values = try amf.decodeAll(body)
            } catch {
                throw .malformedAMF(error)
            }
            guard values.count >= 2, case .string(let name) = values[0] else {
                throw .malformedCommand("command name is not a string")
            }
            guard case .number(let transactionId) = values[1] else {
                throw .malformedCommand("transaction id of \(name.prefix(32)) is not a number")
            }
            self = .command(RTMPCommand(name: name, transactionId: transactionId, arguments: Array(values.dropFirst(2))))
        default:
            self = .unknown(typeId: raw.typeId)
        }
    }

    /// The wire form of a message the server sends: type id and body (RTMP 1.0 §5.4, §7.1).
    public func encodedBody(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> (typeId: UInt8, body: ByteBuffer) {
        var body = allocator.buffer(capacity: 16)
        switch self {
        case .setChunkSize(let size):
            body.writeInteger(size)
            return (TypeID.setChunkSize, body)
        case .abort(let csid):
            body.writeInteger(csid)
            return (TypeID.abort, body)
        case .acknowledgement(let sequence):
            body.writeInteger(sequence)
            return (TypeID.acknowledgement, body)
        case .userControl(let event):
            switch event {
            case .streamBegin(let id): body.writeInteger(UInt16(0)); body.writeInteger(id)
            case .streamEOF(let id): body.writeInteger(UInt16(1)); body.writeInteger(id)
            case .setBufferLength(let id, let ms): body.writeInteger(UInt16(3)); body.writeInteger(id); body.writeInteger(ms)
            case .pingRequest(let value): body.writeInteger(UInt16(6)); body.writeInteger(value)
            case .pingResponse(let value): body.writeInteger(UInt16(7)); body.writeInteger(value)
            case .other(let type, var data): body.writeInteger(type); body.writeBuffer(&data)
            }
            return (TypeID.userControl, body)
        case .windowAcknowledgementSize(let size):
            body.writeInteger(size)
            return (TypeID.windowAcknowledgementSize, body)
        case .setPeerBandwidth(let size, let limitType):
            body.writeInteger(size)
            body.writeInteger(limitType)
            return (TypeID.setPeerBandwidth, body)
        case .audio(_, let payload):
            return (TypeID.audio, payload)
        case .video(_, let payload):
            return (TypeID.video, payload)
        case .data(let values):
            AMF0Encoder.encode(values, into: &body)
            return (TypeID.dataAMF0, body)
        case .command(let command):
            AMF0Encoder.encode([.string(command.name), .number(command.transactionId)] + command.arguments, into: &body)
            return (TypeID.commandAMF0, body)
        case .unknown(let typeId):
            return (typeId, body)
        }
    }
}
