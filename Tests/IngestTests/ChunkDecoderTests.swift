import Ingest
import NIOCore
import NIOTestUtils
import Testing

/// A test-only `ByteToMessageDecoder` over the pure parser, for `ByteToMessageDecoderVerifier`.
struct ChunkFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = RTMPRawMessage
    var decoder = RTMPChunkDecoder()

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard var message = try decoder.nextMessage(from: &buffer) else { return .needMoreData }
        if message.typeId == 1, let size = message.payload.getInteger(at: message.payload.readerIndex, as: UInt32.self) {
            try decoder.setChunkSize(size)
        }
        // Compare by content: the verifier checks equality of outputs.
        message.payload = ByteBuffer(bytes: Array(message.payload.readableBytesView))
        context.fireChannelRead(Self.wrapInboundOut(message))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

@Suite("RTMP chunk stream")
struct ChunkDecoderTests {
    private func message(csid: UInt32, ts: UInt32, type: UInt8 = 9, msid: UInt32 = 1, size: Int, fill: UInt8) -> RTMPRawMessage {
        RTMPRawMessage(chunkStreamId: csid, timestamp: ts, typeId: type, messageStreamId: msid,
                       payload: ByteBuffer(bytes: [UInt8](repeating: fill, count: size)))
    }

    private func decodeAll(_ bytes: ByteBuffer, decoder: inout RTMPChunkDecoder) throws -> [RTMPRawMessage] {
        var buffer = bytes
        var out: [RTMPRawMessage] = []
        while let message = try decoder.nextMessage(from: &buffer) { out.append(message) }
        return out
    }

    @Test("messages decode the same when drip-fed byte by byte and when many arrive in one buffer")
    func verifierDripFeedAndBatch() throws {
        let encoder = RTMPChunkEncoder()
        var pairs: [(ByteBuffer, [RTMPRawMessage])] = []
        for message in [
            message(csid: 4, ts: 0, type: 8, size: 10, fill: 1),
            message(csid: 6, ts: 33, size: 300, fill: 2),  // three 128-byte chunks
            message(csid: 6, ts: 0x100_0000, size: 200, fill: 3),  // extended timestamp on both chunks
            message(csid: 300, ts: 66, size: 129, fill: 4),  // 2-byte basic header (64...319)
            message(csid: 400, ts: 99, size: 5, fill: 5),  // 3-byte basic header
        ] {
            var bytes = ByteBuffer()
            encoder.encode(message, into: &bytes)
            pairs.append((bytes, [message]))
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { ChunkFrameDecoder() }
    }

    @Test("fmt 3 continuation chunks repeat the extended timestamp when the header used 0xFFFFFF")
    func fmt3RepeatsExtendedTimestamp() throws {
        // fmt 0, csid 6, ts 0xFFFFFF + ext 0x01020304, length 200, type 9, msid 1; then fmt 3 + ext.
        var bytes = ByteBuffer(bytes: [0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x09, 0x01, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04])
        bytes.writeRepeatingByte(0xAA, count: 128)
        bytes.writeBytes([0xC6, 0x01, 0x02, 0x03, 0x04])
        bytes.writeRepeatingByte(0xBB, count: 72)
        var decoder = RTMPChunkDecoder()
        let messages = try decodeAll(bytes, decoder: &decoder)
        #expect(messages.count == 1)
        #expect(messages.first?.timestamp == 0x0102_0304)
        #expect(messages.first?.payload.readableBytes == 200)
        #expect(messages.first?.payload.getInteger(at: messages.first!.payload.readerIndex + 128, as: UInt8.self) == 0xBB)
    }

    @Test("a fmt 3 chunk that starts a new message adds the previous delta, also when extended")
    func fmt3NewMessageAddsDelta() throws {
        // fmt 0 ts 1000 len 1; fmt 1 delta 0xFFFFFF-ext(20_000_000) len 1; fmt 3 (+ext) → ts + 20_000_000 again.
        var bytes = ByteBuffer(bytes: [0x04, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x01, 0x08, 0x01, 0x00, 0x00, 0x00, 0x11])
        bytes.writeBytes([0x44, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x08])
        bytes.writeInteger(UInt32(20_000_000))
        bytes.writeBytes([0x22])
        bytes.writeBytes([0xC4])
        bytes.writeInteger(UInt32(20_000_000))
        bytes.writeBytes([0x33])
        var decoder = RTMPChunkDecoder()
        let messages = try decodeAll(bytes, decoder: &decoder)
        #expect(messages.map(\.timestamp) == [1000, 20_001_000, 40_001_000])
    }

    @Test("chunks of interleaved chunk streams reassemble into their own messages")
    func interleavedChunkStreams() throws {
        var audio = ByteBuffer(), video = ByteBuffer()
        let encoder = RTMPChunkEncoder()
        encoder.encode(message(csid: 4, ts: 10, type: 8, size: 256, fill: 0xA0), into: &audio)
        encoder.encode(message(csid: 6, ts: 20, size: 256, fill: 0xB0), into: &video)
        // Each encodes to chunk(128) + chunk(128): interleave audio1 video1 audio2 video2.
        let audioFirst = 12 + 128, videoFirst = 12 + 128
        var mixed = ByteBuffer()
        mixed.writeImmutableBuffer(audio.getSlice(at: 0, length: audioFirst)!)
        mixed.writeImmutableBuffer(video.getSlice(at: 0, length: videoFirst)!)
        mixed.writeImmutableBuffer(audio.getSlice(at: audioFirst, length: audio.readableBytes - audioFirst)!)
        mixed.writeImmutableBuffer(video.getSlice(at: videoFirst, length: video.readableBytes - videoFirst)!)
        var decoder = RTMPChunkDecoder()
        let messages = try decodeAll(mixed, decoder: &decoder)
        #expect(messages.map(\.chunkStreamId) == [4, 6])
        #expect(messages[0].payload == ByteBuffer(bytes: [UInt8](repeating: 0xA0, count: 256)))
        #expect(messages[1].payload == ByteBuffer(bytes: [UInt8](repeating: 0xB0, count: 256)))
    }

    @Test("Set Chunk Size in the middle of the stream applies to the next chunk")
    func setChunkSizeMidStream() throws {
        var client = ClientBytes()
        client.send(.video(timestamp: 0, payload: ByteBuffer(bytes: [UInt8](repeating: 1, count: 300))), csid: 6, msid: 1)
        client.send(.setChunkSize(4096), csid: 2)
        client.send(.video(timestamp: 40, payload: ByteBuffer(bytes: [UInt8](repeating: 2, count: 3000))), csid: 6, msid: 1)
        var decoder = RTMPChunkDecoder()
        var buffer = client.bytes
        var sizes: [Int] = []
        while let raw = try decoder.nextMessage(from: &buffer) {
            if case .setChunkSize(let size) = try RTMPMessage(decoding: raw) { try decoder.setChunkSize(size) }
            sizes.append(raw.payload.readableBytes)
        }
        #expect(sizes == [300, 4, 3000])
        #expect(decoder.chunkSize == 4096)
        #expect(buffer.readableBytes == 0)
    }

    @Test("Abort drops the partial message of that chunk stream only")
    func abortDropsPartialMessage() throws {
        let encoder = RTMPChunkEncoder()
        var first = ByteBuffer()
        encoder.encode(message(csid: 6, ts: 0, size: 200, fill: 9), into: &first)
        var partial = first.getSlice(at: 0, length: 12 + 128)!  // first chunk only
        var decoder = RTMPChunkDecoder()
        #expect(try decoder.nextMessage(from: &partial) == nil)
        decoder.abort(chunkStreamId: 6)
        // A new fmt 1 message on csid 6 starts cleanly after the abort.
        var next = ByteBuffer(bytes: [0x46, 0x00, 0x00, 0x21, 0x00, 0x00, 0x02, 0x09, 0x55, 0x66])
        let message = try decoder.nextMessage(from: &next)
        #expect(message?.payload == ByteBuffer(bytes: [0x55, 0x66]))
        #expect(message?.timestamp == 33)
    }

    @Test("bad chunk sizes, oversized messages and unknown chunk streams are errors")
    func limitsAreEnforced() throws {
        var decoder = RTMPChunkDecoder()
        #expect(throws: RTMPChunkError.invalidChunkSize(0)) { try decoder.setChunkSize(0) }
        #expect(throws: RTMPChunkError.invalidChunkSize(65537)) { try decoder.setChunkSize(65537) }
        #expect(throws: RTMPChunkError.invalidChunkSize(0x8000_0001)) { try decoder.setChunkSize(0x8000_0001) }
        try decoder.setChunkSize(65536)

        var unknown = ByteBuffer(bytes: [0x47, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x09, 0x00])
        #expect(throws: RTMPChunkError.unknownChunkStream(7)) { try decoder.nextMessage(from: &unknown) }

        var huge = ByteBuffer(bytes: [0x06, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x09, 0x01, 0x00, 0x00, 0x00])
        var fresh = RTMPChunkDecoder()
        #expect(throws: RTMPChunkError.messageTooLarge(length: 0x90_0000, limit: 8 << 20)) {
            try fresh.nextMessage(from: &huge)
        }

        var small = RTMPChunkDecoder(maxChunkStreams: 2)
        var many = ByteBuffer()
        for csid in UInt8(3)...5 { many.writeBytes([csid, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0]) }
        #expect(throws: RTMPChunkError.tooManyChunkStreams(limit: 2)) {
            while try small.nextMessage(from: &many) != nil {}
        }
    }
}
