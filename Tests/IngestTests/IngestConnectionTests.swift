import Ingest
import MediaCore
import NIOCore
import Testing

@Suite("Ingest connection (handshake, acknowledgements, pausing)")
struct IngestConnectionTests {
    @Test("the handshake answers S0+S1+S2 in one write, S2 echoing C1, and completes after C2")
    func handshakeEchoesC1() throws {
        var connection = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 3))
        var c0c1 = ByteBuffer(bytes: [3])
        let c1 = (0..<1536).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        c0c1.writeBytes(c1)
        connection.receive(c0c1)
        let actions = try connection.process()
        #expect(actions.count == 1)
        guard case .write(let reply)? = actions.first else { Issue.record("no S0+S1+S2"); return }
        #expect(reply.readableBytes == 3073)
        #expect(reply.getInteger(at: 0, as: UInt8.self) == 3)
        #expect(reply.getBytes(at: 1 + 1536, length: 1536) == c1)
        connection.receive(ByteBuffer(bytes: [UInt8](repeating: 0, count: 1535)))
        #expect(try connection.process().isEmpty)
        connection.receive(ByteBuffer(bytes: [0]))
        guard case .handshakeCompleted? = try connection.process().first else { Issue.record("not completed"); return }
    }

    @Test("an acknowledgement is sent once the peer's bytes exceed its window")
    func acknowledgementAfterWindow() throws {
        var client = ClientBytes()
        client.send(.windowAcknowledgementSize(5000), csid: 2)
        for index in 0..<40 {
            client.send(.audio(timestamp: UInt32(index * 21), payload: ByteBuffer(bytes: [UInt8](repeating: 0xAF, count: 200))), csid: 4, msid: 1)
        }
        var replay = CaptureReplay()
        try replay.feed(ArraySlice(Array(ClientBytes.handshake().readableBytesView)))
        let total = 1 + 2 * 1536 + client.bytes.readableBytes
        try replay.feed(ArraySlice(Array(client.bytes.readableBytesView)))
        let acks = try decodeServerMessages(replay.written, skipHandshake: true).compactMap { _, message -> UInt32? in
            if case .acknowledgement(let sequence) = message { return sequence } else { return nil }
        }
        #expect(acks == [UInt32(total)])
    }

    @Test("nothing after publish is processed until the authorizer has answered")
    func processingPausesWhileAuthorizing() throws {
        var client = ClientBytes()
        client.publishSequence(key: "k")
        client.send(.audio(timestamp: 0, payload: ByteBuffer(bytes: [0xAF, 0x00, 0x11, 0x90])), csid: 4, msid: 1)
        var connection = RTMPIngestConnection()
        var all = ClientBytes.handshake()
        all.writeImmutableBuffer(client.bytes)
        connection.receive(all)
        let first = try connection.process()
        #expect(first.contains { if case .authorize(app: "live", streamKey: "k") = $0 { return true } else { return false } })
        #expect(!first.contains { if case .emit = $0 { return true } else { return false } })
        #expect(try connection.process().isEmpty)
        _ = connection.authorizationAccepted()
        let after = try connection.process()
        #expect(after.contains { if case .emit(.config) = $0 { return true } else { return false } })
    }

    @Test("unknown message types (AMF3, aggregate, shared objects) are ignored, not errors")
    func unknownTypesAreIgnored() throws {
        var client = ClientBytes()
        for typeId: UInt8 in [15, 16, 17, 19, 22, 99] {
            client.encoder.encode(
                RTMPRawMessage(chunkStreamId: 3, timestamp: 0, typeId: typeId, messageStreamId: 0, payload: ByteBuffer(bytes: [1, 2, 3])),
                into: &client.bytes)
        }
        client.publishSequence(key: "k")
        var connection = RTMPIngestConnection()
        var all = ClientBytes.handshake()
        all.writeImmutableBuffer(client.bytes)
        connection.receive(all)
        let actions = try connection.process()
        #expect(actions.contains { if case .authorize(app: "live", streamKey: "k") = $0 { return true } else { return false } })
    }
}
