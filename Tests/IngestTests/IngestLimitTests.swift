import Foundation
import Ingest
import MediaCore
import NIOCore
import NIOPosix
import Testing

/// What a publisher (or anyone who can open a TCP connection) can make the ingest hold, and the
/// numbers it may send: refused or clamped where they enter, never trapped on.
@Suite("Ingest limits and impossible values")
struct IngestLimitTests {
    private func command(_ name: String, _ tx: Double, _ args: [AMF0Value]) -> RTMPMessage {
        .command(RTMPCommand(name: name, transactionId: tx, arguments: args))
    }

    private func publishingSession() throws -> RTMPPublishSession {
        var session = RTMPPublishSession()
        _ = try session.receive(command("connect", 1, [.object(["app": .string("live")])]), messageStreamId: 0)
        _ = try session.receive(command("publish", 5, [.null, .string("k"), .string("live")]), messageStreamId: 1)
        _ = session.authorizationAccepted()
        return session
    }

    @Test("onMetaData with framerate 0 or 1e300, a width of 1e300 or NaN: those values are dropped, said once")
    func impossibleMetadataIsDropped() throws {
        var session = try publishingSession()
        let data: RTMPMessage = .data([.string("@setDataFrame"), .string("onMetaData"), .ecmaArray([
            "width": .number(1e300), "height": .number(720), "framerate": .number(0), "videodatarate": .number(.nan),
            "audiosamplerate": .number(-48000), "audiochannels": .number(2),
        ])])
        let first = try session.receive(data, messageStreamId: 1)
        guard case .emit(.metadata(let metadata))? = first.first else { Issue.record("no metadata"); return }
        #expect(metadata == StreamMetadata(height: 720, audioChannels: 2))
        let notices = first.compactMap { if case .notice(let text) = $0 { return text } else { return nil } }
        #expect(notices.count == 1)
        #expect(notices.first?.contains("framerate=0.0") == true)
        #expect(notices.first?.contains("width=1e+300") == true)
        // A publisher repeating it does not repeat the log line.
        let again = try session.receive(.data([.string("onMetaData"), .ecmaArray(["framerate": .number(1e300)])]), messageStreamId: 1)
        #expect(again.count == 1)
        guard case .emit(.metadata(let second))? = again.first else { Issue.record("no metadata"); return }
        #expect(second.frameRate == nil)
    }

    @Test("timestamps stepping by 2^31 ms for ever stay within MediaPacket.timestampRange")
    func unwrappedTimestampsAreClamped() {
        var unwrapper = RTMPTimestampUnwrapper()
        var timestamp: UInt32 = 0
        var last: Int64 = 0
        for _ in 0..<4_200_000 {
            timestamp &+= 0x7FFF_FFFF
            last = unwrapper.unwrap(timestamp)
        }
        #expect(last == MediaPacket.timestampRange.upperBound)
        #expect(unwrapper.unwrap(timestamp &- 1000) == MediaPacket.timestampRange.upperBound - 1000)
    }

    /// The first 128-byte chunk of a message of `length` bytes on `csid`.
    private func firstChunk(csid: UInt8, length: Int) -> [UInt8] {
        [csid, 0, 0, 0, UInt8(length >> 16), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF), 18, 1, 0, 0, 0]
            + [UInt8](repeating: 5, count: 128)
    }

    @Test("messages being reassembled on all chunk streams together are bounded by maxPartialBytes")
    func reassemblyBudget() throws {
        var decoder = RTMPChunkDecoder(maxPartialBytes: 1000)
        var input = ByteBuffer(bytes: firstChunk(csid: 3, length: 600))
        #expect(try decoder.nextMessage(from: &input) == nil)
        #expect(decoder.partialBytes == 600)
        input.writeBytes(firstChunk(csid: 4, length: 600))
        #expect(throws: RTMPChunkError.reassemblyLimit(wouldHold: 1200, limit: 1000)) { try decoder.nextMessage(from: &input) }

        // Completing or aborting a message gives its bytes back.
        var fresh = RTMPChunkDecoder(maxPartialBytes: 1000)
        var bytes = ByteBuffer(bytes: firstChunk(csid: 3, length: 600))
        #expect(try fresh.nextMessage(from: &bytes) == nil)
        fresh.abort(chunkStreamId: 3)
        #expect(fresh.partialBytes == 0)
        bytes.writeBytes(firstChunk(csid: 4, length: 600))
        for _ in 0..<3 { bytes.writeBytes([0xC4] + [UInt8](repeating: 6, count: 128)) }
        bytes.writeBytes([0xC4] + [UInt8](repeating: 6, count: 88))
        #expect(try fresh.nextMessage(from: &bytes)?.payload.readableBytes == 600)
        #expect(fresh.partialBytes == 0)
    }

    @Test("before publish a connection may reassemble 256 KiB; once publishing, up to 16 MiB")
    func reassemblyBudgetGrowsWhenPublishing() throws {
        // Five 60 KB messages interleaved chunk by chunk: 300 KB held at once.
        var chunks = ByteBuffer()
        for csid in UInt8(6)...10 { chunks.writeBytes(firstChunk(csid: csid, length: 60_000)) }

        var early = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 1))
        early.receive(ClientBytes.handshake())
        _ = try early.process()
        early.receive(chunks)
        #expect(throws: RTMPIngestError.chunk(.reassemblyLimit(wouldHold: 300_000, limit: 256 << 10))) { try early.process() }

        var publishing = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 1))
        var setup = ClientBytes()
        setup.publishSequence(key: "k")
        var start = ClientBytes.handshake()
        start.writeImmutableBuffer(setup.bytes)
        publishing.receive(start)
        _ = try publishing.process()
        _ = publishing.authorizationAccepted()
        publishing.receive(chunks)
        _ = try publishing.process()
        #expect(publishing.reassemblyBytes == 300_000)
    }
}

@Suite("Ingest connection limits", .serialized)
struct IngestConnectionLimitTests {
    @Test("connections over the per-address limit are closed at once; the publisher already there carries on")
    func perAddressLimit() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"]) { $0.maxConnectionsPerAddress = 4 }
        let events = test.collect(roomId: "room-1")
        let ffmpeg = try FFmpegProcess.publish(fixture: "h264-aac-2s-gop.flv", url: "rtmp://127.0.0.1:\(test.port)/live/good-key", realtime: true)
        try await waitUntil("good publish") { test.authorizer.started.count == 1 }
        var idle: [RawClient] = []
        for _ in 0..<3 { idle.append(try await RawClient.connect(port: test.port)) }
        try await waitUntil("counted") { test.server.connectionCount == 4 }
        let refused = try await RawClient.connect(port: test.port)
        #expect(await refused.closedByServer(within: 3))
        for client in idle { #expect(client.channel.isActive) }
        #expect(test.logs.all.contains { $0.level == .warning && $0.message.contains("LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP") })
        #expect(test.metrics.value("livehub_rtmp_connections_refused_total", [("limit", "per_address")]) == 1)
        // Closing one makes room again.
        try await idle.removeFirst().channel.close()
        try await waitUntil("freed") { test.server.connectionCount == 3 }
        let again = try await RawClient.connect(port: test.port)
        #expect(!(await again.closedByServer(within: 0.5)))
        #expect(try await ffmpeg.wait() == 0)
        let observed = ObservedTracks(await events.value)
        #expect(observed.video == (try Fixtures.expected("h264-aac-2s-gop")).video)
        try await test.server.shutdown()
    }

    @Test("a peer trickling bytes without publishing is closed at the publish deadline")
    func tricklingPeerIsClosedAtTheDeadline() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"]) { $0.publishDeadline = .milliseconds(800) }
        let client = try await RawClient.connect(port: test.port)
        try await client.send(ClientBytes.handshake())
        var connect = ClientBytes()
        connect.command("connect", 1, [.object(["app": .string("live"), "tcUrl": .string(String(repeating: "x", count: 400))])])
        var bytes = connect.bytes
        let started = ContinuousClock.now
        // One byte every 50 ms: always "active", never publishing.
        while client.channel.isActive, let byte = bytes.readSlice(length: 1), ContinuousClock.now - started < .seconds(5) {
            try? await client.send(byte)
            try await Task.sleep(for: .milliseconds(50))
        }
        let elapsed = ContinuousClock.now - started
        #expect(!client.channel.isActive)
        #expect(elapsed < .seconds(2), "closed after \(elapsed)")
        #expect(test.logs.all.contains { $0.level == .warning && $0.message.contains("no publish within 0.8 s") })
        try await test.server.shutdown()
    }
}
