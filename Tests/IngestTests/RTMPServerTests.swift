import Foundation
import Ingest
import MediaCore
import NIOCore
import NIOSSL
import Testing

/// End to end: a real `RTMPServer` on 127.0.0.1 and real ffmpeg publishers.
@Suite("RTMP server end to end", .serialized)
struct RTMPServerTests {
    @Test("an accepted key publishes every packet of the fixture to the room's stream", arguments: [
        "h264-aac-2s-gop", "audio-only", "video-only",
    ])
    func acceptedKeyPublishesEveryPacket(fixture: String) async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"])
        let events = test.collect(roomId: "room-1")
        let ffmpeg = try FFmpegProcess.publish(fixture: "\(fixture).flv", url: "rtmp://127.0.0.1:\(test.port)/live/good-key")
        #expect(try await ffmpeg.wait() == 0)
        let observed = ObservedTracks(await events.value)
        let expected = try Fixtures.expected(fixture)
        #expect(observed.video == expected.video)
        #expect(observed.audio == expected.audio)
        try await waitUntil("publisherStopped") { !test.authorizer.stopped.isEmpty }
        #expect(test.authorizer.events == [
            .asked(app: "live", key: "good-key"), .started(roomId: "room-1", session: 1),
            .stopped(roomId: "room-1", reason: "unpublished"),
        ])
        #expect(test.logs.all.filter { $0.level >= .warning }.isEmpty)
        // Metrics through the injected factory.
        #expect((test.metrics.value("livehub_rtmp_packets_in_total", [("type", "video")]) ?? 0) == Double(expected.video?.count ?? 0))
        #expect((test.metrics.value("livehub_rtmp_packets_in_total", [("type", "audio")]) ?? 0) == Double(expected.audio?.count ?? 0))
        #expect((test.metrics.value("livehub_rtmp_bytes_in_total") ?? 0) > 10_000)
        #expect(test.metrics.value("livehub_rtmp_publishers") == 0)
        try await test.server.shutdown()
    }

    @Test("a wrong key makes ffmpeg fail and the authorizer sees no start")
    func wrongKeyFails() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"])
        let ffmpeg = try FFmpegProcess.publish(fixture: "audio-only.flv", url: "rtmp://127.0.0.1:\(test.port)/live/bad-key")
        #expect(try await ffmpeg.wait() != 0)
        #expect(test.authorizer.events == [.asked(app: "live", key: "bad-key")])
        #expect(test.metrics.value("livehub_rtmp_publish_refused_total", [("reason", "unknownKey")]) == 1)
        #expect(!test.logs.all.contains { $0.message.contains("bad-key") || $0.metadata.values.contains { $0.contains("bad-key") } })
        try await test.server.shutdown()
    }

    @Test("a publish to another app is refused without asking the authorizer")
    func wrongAppIsRefused() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"])
        let ffmpeg = try FFmpegProcess.publish(fixture: "audio-only.flv", url: "rtmp://127.0.0.1:\(test.port)/other/good-key")
        #expect(try await ffmpeg.wait() != 0)
        #expect(test.authorizer.events.isEmpty)
        try await test.server.shutdown()
    }

    @Test("a second publisher with the same key takes over and the first one is closed")
    func secondPublisherTakesOver() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"])
        let url = "rtmp://127.0.0.1:\(test.port)/live/good-key"
        let first = try FFmpegProcess.publish(fixture: "h264-aac-2s-gop.flv", url: url, realtime: true)
        try await waitUntil("first publish") { test.authorizer.started.count == 1 }
        #expect(test.metrics.value("livehub_rtmp_publishers") == 1)
        let second = try FFmpegProcess.publish(fixture: "h264-aac-1s-gop.flv", url: url, realtime: true)
        try await waitUntil("takeover") { test.authorizer.started.count == 2 }
        #expect(try await first.wait(seconds: 10) != 0)  // its connection was closed under it
        #expect(test.authorizer.events.filter { $0 != .asked(app: "live", key: "good-key") } == [
            .started(roomId: "room-1", session: 1), .stopped(roomId: "room-1", reason: "takenOver"),
            .started(roomId: "room-1", session: 2),
        ])
        #expect(test.registry.stream(for: "room-1").isPublishing)
        second.terminate()
        _ = try await second.wait()
        try await waitUntil("second stop") { test.authorizer.stopped.count == 2 }
        #expect(["closed", "unpublished"].contains { test.authorizer.stopped.last == .stopped(roomId: "room-1", reason: $0) })
        try await test.server.shutdown()
    }

    @Test("the owner ending the room disconnects its publisher")
    func ownerEndDisconnects() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"])
        let ffmpeg = try FFmpegProcess.publish(fixture: "h264-aac-2s-gop.flv", url: "rtmp://127.0.0.1:\(test.port)/live/good-key", realtime: true)
        try await waitUntil("publish") { test.authorizer.started.count == 1 }
        await test.server.disconnectPublisher(roomId: "room-1")
        #expect(try await ffmpeg.wait(seconds: 10) != 0)
        #expect(test.authorizer.stopped == [.stopped(roomId: "room-1", reason: "endedByOwner")])
        #expect(!test.registry.stream(for: "room-1").isPublishing)
        try await test.server.shutdown()
    }

    @Test("a publisher that sends no media for the idle time-out is stopped as idle")
    func idlePublisherIsStopped() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"]) { $0.idleTimeout = .milliseconds(600) }
        let client = try await RawClient.connect(port: test.port)
        var bytes = ClientBytes()
        bytes.publishSequence(key: "good-key")
        var all = ClientBytes.handshake()
        all.writeImmutableBuffer(bytes.bytes)
        try await client.send(all)
        try await waitUntil("publish") { test.authorizer.started.count == 1 }
        #expect(await client.closedByServer(within: 5))
        try await waitUntil("idle stop") { test.authorizer.stopped.count == 1 }
        #expect(test.authorizer.stopped == [.stopped(roomId: "room-1", reason: "idle")])
        try await test.server.shutdown()
    }

    /// Client bytes after a valid handshake (and, for AMF cases, a connect).
    static func badInputs() -> [(name: String, reason: String, bytes: ByteBuffer)] {
        var cases: [(name: String, reason: String, bytes: ByteBuffer)] = []
        var random = ByteBuffer()
        var generator = SystemRandomNumberGenerator()
        random.writeInteger(UInt8(0x47))
        for _ in 0..<4096 { random.writeInteger(UInt8.random(in: 0...255, using: &generator)) }
        cases.append(("random bytes", "handshake version", random))
        var truncated = ByteBuffer(bytes: [3])
        truncated.writeRepeatingByte(0, count: 700)
        cases.append(("truncated handshake", "no publish within 0.5 s of connecting", truncated))
        func afterHandshake(_ build: (inout ClientBytes) -> Void) -> ByteBuffer {
            var client = ClientBytes()
            build(&client)
            var all = ClientBytes.handshake()
            all.writeImmutableBuffer(client.bytes)
            return all
        }
        cases.append(("chunk size 0", "invalid chunk size 0", afterHandshake { $0.send(.setChunkSize(0), csid: 2) }))
        cases.append(("chunk size above 2^31", "invalid chunk size 2147483664", afterHandshake { $0.send(.setChunkSize(0x8000_0010), csid: 2) }))
        cases.append(("chunk size above the limit", "invalid chunk size 65537", afterHandshake { $0.send(.setChunkSize(65537), csid: 2) }))
        var oversized = ClientBytes.handshake()
        oversized.writeBytes([0x06, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x09, 0x01, 0x00, 0x00, 0x00])
        cases.append(("message length over the limit", "limit 8388608", oversized))
        var unknown = ClientBytes.handshake()
        unknown.writeBytes([0x47, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x09, 0x00])
        cases.append(("continuation on an unknown chunk stream", "unknown chunk stream 7", unknown))
        cases.append(("connect with a number as command object", "command object has the wrong AMF type", afterHandshake { $0.command("connect", 1, [.number(7)]) }))
        cases.append(("command whose transaction id is a string", "transaction id of connect is not a number", afterHandshake {
            $0.send(.data([]), csid: 3)
            var body = ByteBuffer()
            AMF0Encoder.encode([.string("connect"), .string("one")], into: &body)
            $0.encoder.encode(RTMPRawMessage(chunkStreamId: 3, timestamp: 0, typeId: 20, messageStreamId: 0, payload: body), into: &$0.bytes)
        }))
        // Before publishing only 256 KiB may be in reassembly: the 1 MB command is refused as it starts.
        cases.append(("1 MB AMF string before publishing", "partly reassembled messages would hold 1048609 bytes (limit 262144)", afterHandshake {
            $0.send(.setChunkSize(65536), csid: 2)
            $0.command("connect", 1, [.object(["app": .string(String(repeating: "a", count: 1 << 20))])])
        }))
        return cases
    }

    @Test("each kind of bad input closes only its own connection while a good publisher carries on")
    func badInputClosesOnlyThatConnection() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"]) { $0.publishDeadline = .milliseconds(500) }
        let events = test.collect(roomId: "room-1")
        let ffmpeg = try FFmpegProcess.publish(fixture: "h264-aac-2s-gop.flv", url: "rtmp://127.0.0.1:\(test.port)/live/good-key", realtime: true)
        try await waitUntil("good publish") { test.authorizer.started.count == 1 }
        let cases = Self.badInputs()
        for (name, _, bytes) in cases {
            let client = try await RawClient.connect(port: test.port)
            try await client.send(bytes)
            #expect(await client.closedByServer(within: 3), "\(name) did not close the connection")
            #expect(test.registry.stream(for: "room-1").isPublishing, "\(name) disturbed the good publisher")
        }
        #expect(try await ffmpeg.wait() == 0)
        let observed = ObservedTracks(await events.value)
        let expected = try Fixtures.expected("h264-aac-2s-gop")
        #expect(observed.video == expected.video)
        #expect(observed.audio == expected.audio)
        // Exactly one warning line per bad connection, none for the good one.
        let warnings = test.logs.all.filter { $0.level == .warning }
        #expect(warnings.count == cases.count)
        #expect(Set(warnings.compactMap { $0.metadata["rtmp.connection"] }).count == cases.count)
        for (warning, badCase) in zip(warnings, cases) {
            #expect(warning.message.contains(badCase.reason), "\(badCase.name): \(warning.message)")
        }
        #expect(test.authorizer.started.count == 1)
        try await test.server.shutdown()
    }

    @Test("shutdown stops the publisher with reason shutdown and closes the listener")
    func shutdownStopsPublishers() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"])
        let port = test.port
        let ffmpeg = try FFmpegProcess.publish(fixture: "h264-aac-2s-gop.flv", url: "rtmp://127.0.0.1:\(port)/live/good-key", realtime: true)
        try await waitUntil("publish") { test.authorizer.started.count == 1 }
        try await test.server.shutdown()
        #expect(test.authorizer.stopped == [.stopped(roomId: "room-1", reason: "shutdown")])
        #expect(try await ffmpeg.wait(seconds: 10) != 0)
        await #expect(throws: (any Error).self) { _ = try await RawClient.connect(port: port) }
    }

    @Test("RTMPS: ffmpeg publishes over TLS with a self-signed certificate")
    func rtmpsPublish() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rtmps-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                             "-days", "1", "-subj", "/CN=127.0.0.1"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
        let tls = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))))
        let test = try await TestServer.start(keys: ["tls-key": "room-tls"], tls: NIOSSLContextBox(context: tls))
        let events = test.collect(roomId: "room-tls")
        let ffmpeg = try FFmpegProcess.publish(fixture: "h264-aac-1s-gop.flv", url: "rtmps://127.0.0.1:\(test.port)/live/tls-key")
        #expect(try await ffmpeg.wait() == 0)
        let observed = ObservedTracks(await events.value)
        let expected = try Fixtures.expected("h264-aac-1s-gop")
        #expect(observed.video == expected.video)
        #expect(observed.audio == expected.audio)
        try await test.server.shutdown()
    }
}
