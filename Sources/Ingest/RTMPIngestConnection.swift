import MediaCore
import NIOCore

/// Everything that can end an ingest connection because of what the peer sent.
public enum RTMPIngestError: Error, Hashable, Sendable, CustomStringConvertible {
    case handshake(RTMPHandshakeParser.Error)
    case chunk(RTMPChunkError)
    case message(RTMPMessageError)
    case session(RTMPSessionError)

    public var description: String {
        switch self {
        case .handshake(let error): return error.description
        case .chunk(let error): return error.description
        case .message(let error): return error.description
        case .session(let error): return error.description
        }
    }
}

/// One server-side RTMP connection without the socket: handshake → chunks → messages →
/// publish session → FLV demux, with acknowledgements and the outbound chunk stream.
///
/// Bytes go in with `receive(_:)`; `process()` returns actions for the NIO handler (write,
/// authorize, emit media, close). Processing pauses while the authorizer is asked, so nothing
/// that follows `publish` is handled before the answer (`authorizationAccepted()` /
/// `authorizationRejected(_:)`, then `process()` again).
public struct RTMPIngestConnection: Sendable {
    public struct Limits: Sendable {
        public var maxChunkSize: Int
        public var maxMessageSize: Int
        public var maxChunkStreams: Int
        /// Bytes the messages being reassembled may declare together until the publish is
        /// authorised (`RTMPChunkDecoder.maxPartialBytes`). Default 256 KiB: before `publish` a
        /// client sends only small commands, so an unauthenticated peer cannot make us hold more.
        public var reassemblyBytesBeforePublish: Int
        /// The same once publishing: room for a few large keyframes in flight. Default 16 MiB.
        public var reassemblyBytes: Int
        public var amf: AMF0Decoder

        public init(
            maxChunkSize: Int = 65536, maxMessageSize: Int = 8 << 20, maxChunkStreams: Int = 64,
            reassemblyBytesBeforePublish: Int = 256 << 10, reassemblyBytes: Int = 16 << 20, amf: AMF0Decoder = AMF0Decoder()
        ) {
            self.maxChunkSize = maxChunkSize
            self.maxMessageSize = maxMessageSize
            self.maxChunkStreams = maxChunkStreams
            self.reassemblyBytesBeforePublish = reassemblyBytesBeforePublish
            self.reassemblyBytes = reassemblyBytes
            self.amf = amf
        }
    }

    public enum Action: Sendable {
        /// Bytes for the peer (S0+S1+S2, responses, acknowledgements).
        case write(ByteBuffer)
        case handshakeCompleted
        case authorize(app: String, streamKey: String)
        case refuse(PublishRejection)
        case emit(StreamEvent)
        case unpublish
        case notice(String)
    }

    enum Phase: Sendable {
        case handshake(RTMPHandshakeParser)
        case chunks
    }

    private var phase: Phase
    private var inbound = ByteBuffer()
    /// `inbound` is a buffer `receive` allocated (not a socket read handed in): appending to it
    /// copies only what it holds.
    private var inboundIsOwnBuffer = false
    private static let emptyBuffer = ByteBuffer()
    private var chunkDecoder: RTMPChunkDecoder
    private var encoder = RTMPChunkEncoder()
    public private(set) var session: RTMPPublishSession
    private let amf: AMF0Decoder
    private let reassemblyBytesWhilePublishing: Int

    /// RTMP 1.0 §5.4.3/§5.4.4: acknowledge every `peerWindow` bytes received.
    private var peerWindow: UInt32
    private var totalBytesReceived: UInt64 = 0
    private var lastAcknowledged: UInt64 = 0

    public init(
        session: RTMPPublishSession.Configuration = .init(), limits: Limits = .init(),
        handshake: RTMPHandshakeParser = RTMPHandshakeParser()
    ) {
        self.phase = .handshake(handshake)
        self.session = RTMPPublishSession(configuration: session)
        self.chunkDecoder = RTMPChunkDecoder(
            maxMessageSize: limits.maxMessageSize, maxChunkSize: limits.maxChunkSize, maxChunkStreams: limits.maxChunkStreams,
            maxPartialBytes: limits.reassemblyBytesBeforePublish)
        self.amf = limits.amf
        self.reassemblyBytesWhilePublishing = limits.reassemblyBytes
        self.peerWindow = session.windowAckSize
    }

    public var totalBytes: UInt64 { totalBytesReceived }

    /// Bytes that arrived and are not yet consumed.
    public var bufferedBytes: Int { inbound.readableBytes }
    /// Storage the inbound buffer holds, consumed bytes included (memory per publisher).
    public var bufferCapacity: Int { inbound.capacity }
    /// What the messages being reassembled declare (bounded by the limits above).
    public var reassemblyBytes: Int { chunkDecoder.partialBytes }

    public mutating func receive(_ bytes: ByteBuffer) {
        totalBytesReceived += UInt64(bytes.readableBytes)
        if inbound.readableBytes == 0 {
            inbound = bytes
            inboundIsOwnBuffer = false
        } else if inboundIsOwnBuffer {
            // Our own buffer from an earlier merge: append (amortized), dropping consumed bytes
            // first so it never keeps every byte since it was last empty (512 KiB in a replay).
            if inbound.readerIndex >= 4096 { inbound.discardReadBytes() }
            inbound.writeImmutableBuffer(bytes)
        } else {
            // A read rarely ends on a chunk boundary, so the buffer often still holds the start of
            // a chunk when the next read arrives. That leftover's storage is the previous socket
            // read, shared with the message slices handed out of it: writing into it would first
            // copy the whole allocation (copy-on-write of its full capacity, up to 64 KiB per read;
            // perf: memmove was the top symbol under 10 publishers). The leftover and the new read
            // go into a buffer of our own instead.
            var merged = ByteBufferAllocator().buffer(capacity: inbound.readableBytes + bytes.readableBytes)
            merged.writeBuffer(&inbound)
            merged.writeImmutableBuffer(bytes)
            inbound = merged
            inboundIsOwnBuffer = true
        }
    }

    /// Handle every complete unit in the buffer (stops early while authorizing).
    public mutating func process() throws(RTMPIngestError) -> [Action] {
        var actions: [Action] = []
        var out = ByteBuffer()
        defer {
            // Let go of a consumed read (`clear()` would allocate a same-size replacement while
            // handed-out slices share the storage).
            if inbound.readableBytes == 0 { inbound = Self.emptyBuffer }
        }
        func flush(_ actions: inout [Action], _ out: inout ByteBuffer) {
            if out.readableBytes > 0 {
                actions.append(.write(out))
                out = ByteBuffer()
            }
        }

        if case .handshake(var parser) = phase {
            while true {
                let action: RTMPHandshakeParser.Action?
                do {
                    action = try parser.parse(&inbound)
                } catch {
                    throw .handshake(error)
                }
                guard let action else {
                    phase = .handshake(parser)
                    return actions
                }
                switch action {
                case .send(let bytes):
                    actions.append(.write(bytes))
                case .complete:
                    phase = .chunks
                    actions.append(.handshakeCompleted)
                }
                if case .chunks = phase { break }
            }
        }

        while !session.isAwaitingAuthorization {
            if case .finished = session.state { break }
            let raw: RTMPRawMessage?
            do {
                raw = try chunkDecoder.nextMessage(from: &inbound)
            } catch {
                flush(&actions, &out)
                throw .chunk(error)
            }
            guard let raw else { break }
            let message: RTMPMessage
            do {
                message = try RTMPMessage(decoding: raw, amf: amf)
            } catch {
                throw .message(error)
            }
            switch message {
            case .setChunkSize(let size):
                do {
                    try chunkDecoder.setChunkSize(size)
                } catch {
                    throw .chunk(error)
                }
                continue
            case .abort(let csid):
                chunkDecoder.abort(chunkStreamId: csid)
                continue
            case .windowAcknowledgementSize(let size):
                peerWindow = max(size, 1)
                continue
            default:
                break
            }
            let sessionActions: [RTMPPublishSession.Action]
            do {
                sessionActions = try session.receive(message, messageStreamId: raw.messageStreamId)
            } catch {
                throw .session(error)
            }
            translate(sessionActions, into: &actions, out: &out)
        }
        // RTMP 1.0 §5.4.3 Acknowledgement: sequence number = bytes received so far (u32, wraps).
        if totalBytesReceived - lastAcknowledged >= UInt64(peerWindow), case .chunks = phase {
            lastAcknowledged = totalBytesReceived
            write(.control(.acknowledgement(sequenceNumber: UInt32(truncatingIfNeeded: totalBytesReceived))), into: &out)
        }
        flush(&actions, &out)
        return actions
    }

    public mutating func authorizationAccepted() -> [Action] {
        if session.isAwaitingAuthorization { chunkDecoder.maxPartialBytes = reassemblyBytesWhilePublishing }
        var actions: [Action] = []
        var out = ByteBuffer()
        translate(session.authorizationAccepted(), into: &actions, out: &out)
        if out.readableBytes > 0 { actions.append(.write(out)) }
        return actions
    }

    public mutating func authorizationRejected(_ reason: PublishRejection) -> [Action] {
        var actions: [Action] = []
        var out = ByteBuffer()
        translate(session.authorizationRejected(reason), into: &actions, out: &out)
        if out.readableBytes > 0 { actions.insert(.write(out), at: 0) }
        return actions
    }

    private mutating func translate(_ sessionActions: [RTMPPublishSession.Action], into actions: inout [Action], out: inout ByteBuffer) {
        for action in sessionActions {
            switch action {
            case .send(let message):
                write(message, into: &out)
            case .authorize(let app, let key):
                if out.readableBytes > 0 {
                    actions.append(.write(out))
                    out = ByteBuffer()
                }
                actions.append(.authorize(app: app, streamKey: key))
            case .refuse(let reason):
                if out.readableBytes > 0 {
                    actions.append(.write(out))
                    out = ByteBuffer()
                }
                actions.append(.refuse(reason))
            case .emit(let event):
                actions.append(.emit(event))
            case .unpublish:
                actions.append(.unpublish)
            case .notice(let text):
                actions.append(.notice(text))
            }
        }
    }

    private mutating func write(_ message: RTMPOutboundMessage, into out: inout ByteBuffer) {
        let (typeId, body) = message.message.encodedBody()
        encoder.encode(
            RTMPRawMessage(
                chunkStreamId: message.chunkStreamId, timestamp: message.timestamp, typeId: typeId,
                messageStreamId: message.messageStreamId, payload: body),
            into: &out)
        if case .setChunkSize(let size) = message.message {
            encoder.setChunkSize(Int(size))
        }
    }
}
