import Foundation
import MediaCore
import Metrics
import NIOCore
import Synchronization
import Testing

@testable import HLS

/// Counts what the service reports through swift-metrics.
final class CountingMetrics: MetricsFactory, Sendable {
    final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, TimerHandler, Sendable {
        let value = Mutex<Int64>(0)
        func increment(by amount: Int64) { value.withLock { $0 += amount } }
        func increment(by amount: Double) { value.withLock { $0 += Int64(amount) } }
        func reset() { value.withLock { $0 = 0 } }
        func record(_ value: Int64) {}
        func record(_ value: Double) {}
        func recordNanoseconds(_ duration: Int64) {}
    }

    let handlers = Mutex<[String: Handler]>([:])

    private func handler(_ label: String, _ dimensions: [(String, String)]) -> Handler {
        let key = ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
        return handlers.withLock { handlers in
            if let existing = handlers[key] { return existing }
            let handler = Handler()
            handlers[key] = handler
            return handler
        }
    }

    func value(_ key: String) -> Int64 { handlers.withLock { $0[key]?.value.withLock { $0 } ?? 0 } }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { handler(label, dimensions) }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        handler(label, dimensions)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        handler(label, dimensions)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { handler(label, dimensions) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// Blocking playlist reload, preload hints, status codes and headers (RFC 8216bis §6.2.5.2).
@Suite(.serialized) struct HLSServiceTests {
    /// A room fed with the first `seconds` of the 6 s H.264/AAC fixture, fully processed.
    func liveRoom(
        _ room: String, seconds: Int64 = 3, configuration: HLSConfiguration = HLSConfiguration(),
        metrics: CountingMetrics = CountingMetrics()
    ) async throws -> (HLSService, LiveStream, MediaFixture) {
        let fixture = try MediaFixture.h264()
        let service = HLSService(configuration: configuration, metricsFactory: metrics)
        let stream = LiveStream(id: room)
        service.attach(stream: stream)
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: seconds * 1000))
        // 3 s published: segment 0 (the first GOP, to the keyframe at 2 s) and part 1-0 complete;
        // part 1-1 needs the frame at 3.0 s.
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let text = String(buffer: (await service.handle(roomId: room, file: "media.m3u8")).body)
            if text.contains("part-1-0.m4s\"") { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(200))
        return (service, stream, fixture)
    }

    func preloadHint(_ playlist: String) -> String? {
        playlist.split(separator: "\n").first { $0.hasPrefix("#EXT-X-PRELOAD-HINT") }.map { String($0.split(separator: "\"")[1]) }
    }

    /// LL-HLS: a blocking request for the first part is answered once the first 0.5 s are in, a
    /// GOP before the first segment; a plain request (a non-LL client, which cannot play a playlist
    /// of parts only) waits for the first segment, which is the first GOP and starts with its
    /// keyframe (the committed 2 s-GOP fixture through real libav).
    @Test func theFirstPartIsServedBeforeTheFirstSegmentAndPlainRequestsWaitForTheFirstGop() async throws {
        let fixture = try MediaFixture.committed("h264-aac-2s-gop.flv")
        let service = HLSService(metricsFactory: CountingMetrics())
        let stream = LiveStream(id: "early")
        service.attach(stream: stream)
        // The packager is the stream's sink: when publish returns, the parts are in the store.
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 1100))
        let first = await service.handle(roomId: "early", file: "media.m3u8", query: ["_HLS_msn": "0", "_HLS_part": "0"])
        #expect(first.status == 200)
        let partsOnly = String(buffer: first.body)
        #expect(partsOnly.contains("#EXT-X-TARGETDURATION:2\n"))
        #expect(partsOnly.contains("#EXT-X-PART:DURATION=0.500,URI=\"part-0-0.m4s\",INDEPENDENT=YES\n"))
        #expect(partsOnly.contains("#EXT-X-PART:DURATION=0.500,URI=\"part-0-1.m4s\"\n"))
        #expect(!partsOnly.contains("#EXTINF"))
        #expect(preloadHint(partsOnly) == "part-0-2.m4s")
        #expect((await service.handle(roomId: "early", file: "part-0-0.m4s")).status == 200)
        #expect(service.respondNow(roomId: "early", file: "media.m3u8") == nil, "a plain request must wait")
        #expect(service.respondNow(roomId: "early", file: "index.m3u8") == nil)

        let plain = Task { await service.handle(roomId: "early", file: "media.m3u8") }
        try await Task.sleep(for: .milliseconds(300))
        fixture.publish(on: stream, packets: fixture.index(atMs: 1100)..<fixture.index(atMs: 2100), begin: false)
        let response = await plain.value
        #expect(response.status == 200)
        let playlist = String(buffer: response.body)
        #expect(playlist.contains("#EXT-X-TARGETDURATION:2\n"))
        #expect(playlist.contains("#EXTINF:2.000,\nseg-0.m4s\n"), "\(playlist)")
        #expect((await service.handle(roomId: "early", file: "index.m3u8")).status == 200)
        let dump = try await PlaylistDump.dump(service, room: "early", playlist: playlist)
        let frames = try dump.frames(ofSegment: "seg-0.m4s", initURI: "init-0.mp4")
        #expect(frames.first?.key == true)
        #expect(frames.count == 60)
        await service.shutdown()
    }

    /// A plain variant publishes nothing before its first segment, which is the first GOP.
    @Test func thePlainVariantsFirstSegmentIsTheFirstGop() async throws {
        let fixture = try MediaFixture.committed("h264-aac-1s-gop.flv")
        let service = HLSService(configuration: HLSConfiguration(variant: .fmp4), metricsFactory: CountingMetrics())
        let stream = LiveStream(id: "plain")
        service.attach(stream: stream)
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 900))
        #expect(service.respondNow(roomId: "plain", file: "media.m3u8") == nil)
        fixture.publish(on: stream, packets: fixture.index(atMs: 900)..<fixture.index(atMs: 1100), begin: false)
        let response = try #require(service.respondNow(roomId: "plain", file: "media.m3u8"))
        let playlist = String(buffer: response.body)
        #expect(playlist.contains("#EXT-X-TARGETDURATION:2\n"))
        #expect(playlist.contains("#EXTINF:1.000,\nseg-0.m4s\n"), "\(playlist)")
        let dump = try await PlaylistDump.dump(service, room: "plain", playlist: playlist)
        let frames = try dump.frames(ofSegment: "seg-0.m4s", initURI: "init-0.mp4")
        #expect(frames.first?.key == true && frames.count == 30)
        await service.shutdown()
    }

    @Test func thumbnailsAreDecodedOnlyWhenAskedForAndConcurrentRequestsShareOneDecode() async throws {
        var configuration = HLSConfiguration()
        configuration.thumbnailInterval = .seconds(3600)
        let fixture = try MediaFixture.h264()
        let service = HLSService(configuration: configuration, metricsFactory: CountingMetrics())
        let stream = LiveStream(id: "thumbs")
        service.attach(stream: stream)
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 2500))
        let thumbnails = try #require(service.segmentStore(roomId: "thumbs")).thumbnails
        #expect(thumbnails.jobsRun == 0)  // two keyframes went by, nobody asked

        async let first = service.handle(roomId: "thumbs", file: "thumbnail.jpg")
        async let second = service.handle(roomId: "thumbs", file: "thumbnail.jpg")
        let (a, b) = await (first, second)
        #expect(a.status == 200 && b.status == 200)
        #expect(a.body.getBytes(at: a.body.readerIndex, length: 2) == [0xFF, 0xD8])
        #expect(a.body == b.body)
        #expect(thumbnails.jobsRun == 1)

        // Fresh enough: a newer keyframe is not decoded until the JPEG is `thumbnailInterval` old.
        fixture.publish(on: stream, packets: fixture.index(atMs: 2500)..<fixture.index(atMs: 4500), begin: false)
        #expect((await service.handle(roomId: "thumbs", file: "thumbnail.jpg")).body == a.body)
        #expect(thumbnails.jobsRun == 1)
        await service.shutdown()
    }

    @Test func anOldThumbnailIsRemadeFromANewerKeyframeButNeverFromTheSameOneTwice() async throws {
        var configuration = HLSConfiguration()
        configuration.thumbnailInterval = .milliseconds(1)
        let fixture = try MediaFixture.h264()
        let service = HLSService(configuration: configuration, metricsFactory: CountingMetrics())
        let stream = LiveStream(id: "stale")
        service.attach(stream: stream)
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 1000))
        let thumbnails = try #require(service.segmentStore(roomId: "stale")).thumbnails
        #expect((await service.handle(roomId: "stale", file: "thumbnail.jpg")).status == 200)
        try await Task.sleep(for: .milliseconds(5))
        _ = await service.handle(roomId: "stale", file: "thumbnail.jpg")
        #expect(thumbnails.jobsRun == 1)  // no newer keyframe yet
        fixture.publish(on: stream, packets: fixture.index(atMs: 1000)..<fixture.index(atMs: 2500), begin: false)
        #expect((await service.handle(roomId: "stale", file: "thumbnail.jpg")).status == 200)
        #expect(thumbnails.jobsRun == 2)
        await service.shutdown()
    }

    @Test func aBlockingRequestForTheNextPartReturnsAsSoonAsThatPartExists() async throws {
        let (service, stream, fixture) = try await liveRoom("block")
        let playlist = String(buffer: (await service.handle(roomId: "block", file: "media.m3u8")).body)
        #expect(preloadHint(playlist) == "part-1-1.m4s")
        #expect(!playlist.contains("#EXT-X-PART:DURATION=0.500,URI=\"part-1-1.m4s\""))

        let done = Flag()
        let blocked = Task {
            let response = await service.handle(roomId: "block", file: "media.m3u8", query: ["_HLS_msn": "1", "_HLS_part": "1"])
            done.set()
            return response
        }
        let hinted = Task { await service.handle(roomId: "block", file: "part-1-1.m4s") }
        try await Task.sleep(for: .milliseconds(400))
        #expect(!done.isSet)

        let start = ContinuousClock.now
        fixture.publish(on: stream, packets: fixture.index(atMs: 3000)..<fixture.index(atMs: 3200), begin: false)
        let response = await blocked.value
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(response.status == 200)
        #expect(String(buffer: response.body).contains("#EXT-X-PART:DURATION=0.500,URI=\"part-1-1.m4s\"\n"))
        #expect(preloadHint(String(buffer: response.body)) == "part-1-2.m4s")
        let part = await hinted.value
        #expect(part.status == 200)
        #expect(part.header("Content-Type") == "video/mp4")
        #expect(part.body.readableBytes > 1000)
        await service.shutdown()
    }

    @Test func malformedOrContradictoryDirectivesAreRejectedWith400() async throws {
        let (service, _, _) = try await liveRoom("bad")
        for query in [
            ["_HLS_part": "1"],  // _HLS_part without _HLS_msn
            ["_HLS_msn": "3"],  // more than two segments past the last one (0)
            ["_HLS_msn": "abc"], ["_HLS_msn": "-1"], ["_HLS_msn": "1", "_HLS_part": "x"], ["_HLS_msn": ""],
        ] {
            let response = await service.handle(roomId: "bad", file: "media.m3u8", query: query)
            #expect(response.status == 400, "\(query)")
        }
        #expect(await service.handle(roomId: "bad", file: "media.m3u8", query: ["_HLS_msn": "0"]).status == 200)
        await service.shutdown()
    }

    @Test func aRequestStillBlockedAfterThreeTargetDurationsGets503() async throws {
        // 0.2 × target duration (2 s) = 400 ms instead of 6 s, to keep the test short.
        let (service, _, _) = try await liveRoom("slow", configuration: HLSConfiguration(blockingReloadTimeoutMultiplier: 0.2))
        let start = ContinuousClock.now
        let response = await service.handle(roomId: "slow", file: "media.m3u8", query: ["_HLS_msn": "2"])
        #expect(response.status == 503)
        #expect(ContinuousClock.now - start >= .milliseconds(350))
        let part = await service.handle(roomId: "slow", file: "part-1-1.m4s")  // hinted, held, never made
        #expect(part.status == 404)
        await service.shutdown()
    }

    @Test func directivesAreIgnoredOnceThePlaylistHasEnded() async throws {
        let (service, stream, _) = try await liveRoom("over")
        stream.end()
        _ = try await PlaylistDump.waitForEnd(service, room: "over")
        let response = await service.handle(roomId: "over", file: "media.m3u8", query: ["_HLS_msn": "99", "_HLS_part": "3"])
        #expect(response.status == 200)
        #expect(!String(buffer: response.body).contains("PRELOAD-HINT"))
        await service.shutdown()
    }

    @Test func unknownRoomsAndAnythingButTheExactFileNamesAre404() async throws {
        let (service, _, _) = try await liveRoom("names")
        #expect(await service.handle(roomId: "names", file: "seg-0.m4s").status == 200)
        #expect(await service.handle(roomId: "names", file: "init-0.mp4").status == 200)
        #expect(await service.handle(roomId: "names", file: "part-0-0.m4s").status == 200)
        for file in [
            "../index.m3u8", "..%2Findex.m3u8", "seg-00.m4s", "seg-0.ts", "seg--1.m4s", "seg-+1.m4s", "seg-0.m4s/",
            "part-0.m4s", "part-0-0-0.m4s", "init-.mp4", "init-0.mp4.bak", "INDEX.M3U8", "index.m3u8x", "", "/etc/passwd",
            "seg-99999999999.m4s", "seg-7.m4s",
        ] {
            #expect(await service.handle(roomId: "names", file: file).status == 404, "\(file)")
        }
        #expect(await service.handle(roomId: "elsewhere", file: "index.m3u8").status == 404)
        #expect(await service.handle(roomId: "../names", file: "index.m3u8").status == 404)
        #expect(!service.hasStream(roomId: "elsewhere"))
        #expect(service.hasStream(roomId: "names"))
        await service.shutdown()
    }

    @Test func responsesCarryContentTypeCachingAndCORSHeaders() async throws {
        let metrics = CountingMetrics()
        let (service, _, _) = try await liveRoom("headers", metrics: metrics)
        let playlist = await service.handle(roomId: "headers", file: "media.m3u8")
        #expect(playlist.header("Content-Type") == "application/vnd.apple.mpegurl")
        #expect(playlist.header("Cache-Control") == "no-cache")
        #expect(playlist.header("Access-Control-Allow-Origin") == "*")
        let multivariant = await service.handle(roomId: "headers", file: "index.m3u8")
        #expect(multivariant.header("Content-Type") == "application/vnd.apple.mpegurl")
        let segment = await service.handle(roomId: "headers", file: "seg-0.m4s")
        #expect(segment.header("Content-Type") == "video/mp4")
        #expect(segment.header("Cache-Control") == "public, max-age=3600, immutable")
        #expect(segment.header("Access-Control-Allow-Origin") == "*")
        let missing = await service.handle(roomId: "headers", file: "seg-9.m4s")
        #expect(missing.header("Access-Control-Allow-Origin") == "*")

        #expect(metrics.value("livehub_hls_segments_produced_total") == 1)
        #expect(metrics.value("livehub_hls_parts_produced_total") == 5)
        #expect(metrics.value("livehub_hls_playlist_requests_total,blocking=no") >= 2)
        #expect(metrics.value("livehub_hls_bytes_served_total") >= Int64(segment.body.readableBytes))
        _ = await service.handle(roomId: "headers", file: "media.m3u8", query: ["_HLS_msn": "0"])
        #expect(metrics.value("livehub_hls_playlist_requests_total,blocking=yes") == 1)
        #expect(metrics.value("livehub_hls_packager_errors_total") == 0)
        await service.shutdown()
    }

    @Test func theFinalWindowIsFreedAfterTheRetentionTime() async throws {
        let (service, stream, _) = try await liveRoom(
            "retained", configuration: HLSConfiguration(retainAfterEnd: .milliseconds(300)))
        stream.end()
        _ = try await PlaylistDump.waitForEnd(service, room: "retained")
        #expect(service.hasStream(roomId: "retained"))
        #expect(await service.handle(roomId: "retained", file: "seg-0.m4s").status == 200)
        try await Task.sleep(for: .milliseconds(800))
        #expect(!service.hasStream(roomId: "retained"))
        #expect(await service.handle(roomId: "retained", file: "seg-0.m4s").status == 404)
        await service.shutdown()
    }
}
