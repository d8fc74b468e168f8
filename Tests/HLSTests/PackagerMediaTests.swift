import Foundation
import MediaCore
import NIOCore
import Testing

@testable import HLS

/// Real media through the real packager, checked with ffmpeg/ffprobe.
@Suite(.serialized) struct PackagerMediaTests {
    func package(
        _ fixture: MediaFixture, variant: HLSVariant, room: String, targetSegmentDuration: Double = 2
    ) async throws -> (HLSService, PlaylistDump) {
        let service = HLSService(configuration: HLSConfiguration(variant: variant, targetSegmentDuration: targetSegmentDuration))
        let stream = LiveStream(id: room)
        service.attach(stream: stream)
        fixture.publish(on: stream)
        stream.end()
        let playlist = try await PlaylistDump.waitForEnd(service, room: room)
        return (service, try await PlaylistDump.dump(service, room: room, playlist: playlist))
    }

    /// Segments (but the last) last `durations` (default: 2 s each, the 2 s keyframe grid), start
    /// with a keyframe, and hold as many frames as their EXTINF says (within one frame).
    func checkKeyframeGrid(_ dump: PlaylistDump, initURI: String?, durations: [Double]? = nil, frameDuration: Double = 1.0 / 30) throws {
        for (index, uri) in dump.segmentURIs.enumerated() {
            let duration = dump.segmentDurations[index]
            if let durations {
                #expect(index < durations.count && abs(duration - durations[index]) <= frameDuration, "segment \(uri) lasts \(duration)")
            } else if index < dump.segmentURIs.count - 1 {
                #expect(abs(duration - 2) <= frameDuration, "segment \(uri) lasts \(duration)")
            }
            let frames = try dump.frames(ofSegment: uri, initURI: initURI)
            #expect(frames.first?.key == true, "segment \(uri): keyframe first is \(String(describing: frames.first?.key))")
            #expect(abs(Double(frames.count) * frameDuration - duration) <= frameDuration + 0.001, "\(uri): \(frames.count) frames vs \(duration) s")
        }
        if let durations { #expect(dump.segmentURIs.count == durations.count, "\(dump.segmentDurations)") }
    }

    struct GridCase: Sendable, CustomTestStringConvertible {
        var fixture: String
        var target: Double
        var durations: [Double]
        var testDescription: String { "\(fixture), target \(target) s" }
    }

    /// The committed 1 s- and 2 s-GOP fixtures (media-fixtures/, the files the end-to-end tests
    /// publish) through every variant: every segment starts with a keyframe, EXTINF follows the GOP
    /// (the first segment is the first GOP; then as many GOPs as fit the target), TARGETDURATION is
    /// the target, and with LL-HLS exactly the parts that start on a keyframe are INDEPENDENT.
    @Test(arguments: [
        GridCase(fixture: "h264-aac-1s-gop.flv", target: 2, durations: [1, 2, 1]),
        GridCase(fixture: "h264-aac-1s-gop.flv", target: 1, durations: [1, 1, 1, 1]),
        GridCase(fixture: "h264-aac-2s-gop.flv", target: 2, durations: [2, 2, 2]),
    ], HLSVariant.allCases)
    func everySegmentStartsWithAKeyframeWhenTheGopIsAtMostTheTarget(grid: GridCase, variant: HLSVariant) async throws {
        let fixture = try MediaFixture.committed(grid.fixture)
        let room = "grid-\(variant.rawValue)-\(Int(grid.target))-\(grid.durations.count)"
        let (service, dump) = try await package(fixture, variant: variant, room: room, targetSegmentDuration: grid.target)
        #expect(try dump.decodeErrors() == "")
        #expect(dump.mediaPlaylist.contains("#EXT-X-TARGETDURATION:\(Int(grid.target))\n"))
        try checkKeyframeGrid(dump, initURI: variant == .mpegts ? nil : "init-0.mp4", durations: grid.durations)
        if variant == .fmp4LowLatency {
            let keyframeEvery = grid.fixture.contains("1s") ? 1.0 : 2.0
            var listed = 0
            var time = 0.0
            var index = 0
            for line in dump.mediaPlaylist.split(separator: "\n") {
                if line.hasPrefix("#EXTINF:") {
                    time = dump.segmentDurations[...index].reduce(0, +)
                    index += 1
                } else if line.hasPrefix("#EXT-X-PART:") {
                    let onKeyframe = abs(time / keyframeEvery - (time / keyframeEvery).rounded()) < 0.01
                    #expect(line.hasSuffix(",INDEPENDENT=YES") == onKeyframe, "\(line) at \(time) s")
                    time += Double(line.split(separator: ",")[0].split(separator: "=")[1])!
                    listed += 1
                }
            }
            #expect(listed > 0)
        }
        await service.shutdown()
    }

    /// `thumbnail.jpg` appears (it is made off the packager's task) and is a JPEG of that size.
    func expectThumbnail(_ service: HLSService, room: String, in directory: URL, width: Int, height: Int) async throws {
        var thumbnail: HLSResponse?
        for _ in 0..<100 {
            let response = await service.handle(roomId: room, file: "thumbnail.jpg")
            if response.status == 200 {
                thumbnail = response
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let jpeg = try #require(thumbnail)
        #expect(jpeg.header("Content-Type") == "image/jpeg")
        let file = directory.appendingPathComponent("thumbnail.jpg")
        try Data(jpeg.body.readableBytesView).write(to: file)
        let probe = try run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", file.path])
        #expect(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "mjpeg,\(width),\(height)")
    }

    @Test func h264AndAACBecomeADecodableLowLatencyFMP4Playlist() async throws {
        let (service, dump) = try await package(try MediaFixture.h264(), variant: .fmp4LowLatency, room: "ll")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentURIs == ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s"])
        try checkKeyframeGrid(dump, initURI: "init-0.mp4")
        #expect(dump.mediaPlaylist.contains("#EXT-X-PART-INF:PART-TARGET=0.500\n"))
        #expect(dump.mediaPlaylist.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000\n"))
        for (index, parts) in dump.partDurations.enumerated() where !parts.isEmpty {
            #expect(parts.allSatisfy { $0 <= 0.5 })
            #expect(parts.dropLast().allSatisfy { $0 >= 0.425 })
            #expect(abs(parts.reduce(0, +) - dump.segmentDurations[index]) < 0.01)
        }
        // A segment is exactly its parts, back to back.
        var joined = ByteBuffer()
        for index in 0..<4 {
            var part = await service.handle(roomId: "ll", file: "part-2-\(index).m4s").body
            joined.writeBuffer(&part)
        }
        #expect(joined == (await service.handle(roomId: "ll", file: "seg-2.m4s")).body)

        let multivariant = String(buffer: (await service.handle(roomId: "ll", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000\nmedia.m3u8\n"))
        #expect(multivariant.contains("#EXT-X-STREAM-INF:BANDWIDTH="))

        try await expectThumbnail(service, room: "ll", in: dump.directory, width: 480, height: 270)
        await service.shutdown()
    }

    @Test func theMPEGTSVariantIsDecodableAndCutOnTheKeyframeGrid() async throws {
        let (service, dump) = try await package(try MediaFixture.h264(), variant: .mpegts, room: "ts")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentURIs == ["seg-0.ts", "seg-1.ts", "seg-2.ts"])
        #expect(!dump.mediaPlaylist.contains("#EXT-X-PART"))
        #expect(!dump.mediaPlaylist.contains("#EXT-X-MAP"))
        try checkKeyframeGrid(dump, initURI: nil)
        let segment = await service.handle(roomId: "ts", file: "seg-1.ts")
        #expect(segment.header("Content-Type") == "video/mp2t")
        // Every segment starts with its own tables (resend_headers): a PAT (PID 0) among the first packets.
        let bytes = Array(segment.body.readableBytesView.prefix(188 * 4))
        let pids = stride(from: 0, to: bytes.count, by: 188).map { (Int(bytes[$0 + 1] & 0x1F) << 8) | Int(bytes[$0 + 2]) }
        #expect(bytes.first == 0x47)
        #expect(pids.contains(0))
        await service.shutdown()
    }

    @Test func thePlainFMP4VariantHasWholeSegmentsAndNoParts() async throws {
        let (service, dump) = try await package(try MediaFixture.h264(), variant: .fmp4, room: "plain")
        #expect(try dump.decodeErrors() == "")
        #expect(!dump.mediaPlaylist.contains("#EXT-X-PART"))
        #expect(!dump.mediaPlaylist.contains("#EXT-X-PRELOAD-HINT"))
        try checkKeyframeGrid(dump, initURI: "init-0.mp4")
        await service.shutdown()
    }

    @Test(.enabled(if: MediaFixture.hasEncoder("libx265")))
    func hevcIsPackagedAsHvc1InFMP4() async throws {
        let (service, dump) = try await package(try MediaFixture.hevc(), variant: .fmp4LowLatency, room: "hevc")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentURIs.count == 3)  // the first GOP (to the keyframe at ~0.9 s), 2 s, the rest (1 s GOP)
        let initSection = try Data(contentsOf: dump.directory.appendingPathComponent("init-0.mp4"))
        #expect(initSection.range(of: Data("hvc1".utf8)) != nil)
        #expect(initSection.range(of: Data("hvcC".utf8)) != nil)
        let multivariant = String(buffer: (await service.handle(roomId: "hevc", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"hvc1.1.6.L"))
        #expect(multivariant.contains("RESOLUTION=320x240"))
        try await expectThumbnail(service, room: "hevc", in: dump.directory, width: 320, height: 240)
        await service.shutdown()
    }

    @Test(.enabled(if: MediaFixture.hasEncoder("libsvtav1")))
    func av1IsPackagedAsAv01InFMP4() async throws {
        let (service, dump) = try await package(try MediaFixture.av1(), variant: .fmp4LowLatency, room: "av1")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentURIs.count >= 1)
        let initSection = try Data(contentsOf: dump.directory.appendingPathComponent("init-0.mp4"))
        #expect(initSection.range(of: Data("av01".utf8)) != nil)
        #expect(initSection.range(of: Data("av1C".utf8)) != nil)
        let multivariant = String(buffer: (await service.handle(roomId: "av1", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"av01.0.") && multivariant.contains("M.08,mp4a.40.2\""))
        #expect(multivariant.contains("RESOLUTION=320x240"))
        try await expectThumbnail(service, room: "av1", in: dump.directory, width: 320, height: 240)
        await service.shutdown()
    }

    @Test(.enabled(if: MediaFixture.hasEncoder("libx265")))
    func aReconnectWithAnotherCodecStartsANewInitSectionAfterTheDiscontinuity() async throws {
        let h264 = try MediaFixture.h264(seconds: 4)
        let hevc = try MediaFixture.hevc()
        let service = HLSService(configuration: HLSConfiguration())
        let stream = LiveStream(id: "switch")
        service.attach(stream: stream)
        h264.publish(on: stream)
        stream.endPublish()
        hevc.publish(on: stream)
        stream.end()
        let playlist = try await PlaylistDump.waitForEnd(service, room: "switch")
        #expect(playlist.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"))
        #expect(playlist.contains("#EXT-X-MEDIA-SEQUENCE:0\n"))
        let dump = try await PlaylistDump.dump(service, room: "switch", playlist: playlist)
        // 2 s + 2 s of H.264 (2 s GOP), then the HEVC session (1 s GOP): 2 s, and the rest.
        #expect(dump.segmentURIs == ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s"])
        let newInit = try Data(contentsOf: dump.directory.appendingPathComponent("init-1.mp4"))
        #expect(newInit.range(of: Data("hvcC".utf8)) != nil)
        let frames = try dump.frames(ofSegment: "seg-2.m4s", initURI: "init-1.mp4")
        #expect(frames.first?.key == true)
        #expect(abs(Double(frames.count) / 30 - dump.segmentDurations[2]) <= 1.0 / 30 + 0.001)
        // EXT-X-PROGRAM-DATE-TIME keeps increasing across the reconnect.
        let dates = playlist.split(separator: "\n").filter { $0.hasPrefix("#EXT-X-PROGRAM-DATE-TIME:") }.map(String.init)
        #expect(dates == dates.sorted())
        let multivariant = String(buffer: (await service.handle(roomId: "switch", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"hvc1."))
        await service.shutdown()
    }

    @Test func anAudioOnlyStreamIsCutOnTime() async throws {
        let fixture = try MediaFixture.h264(seconds: 5, audio: true, video: false)
        let (service, dump) = try await package(fixture, variant: .fmp4LowLatency, room: "audio")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentDurations.count == 3)
        #expect(dump.segmentDurations.dropLast().allSatisfy { $0 > 1.9 && $0 <= 2.0 })
        #expect(dump.mediaPlaylist.contains("#EXT-X-TARGETDURATION:2\n"))
        let multivariant = String(buffer: (await service.handle(roomId: "audio", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"mp4a.40.2\"\nmedia.m3u8"))
        await service.shutdown()
    }

    @Test func aVideoOnlyStreamIsPackagedWithoutWaitingForAudio() async throws {
        var fixture = try MediaFixture.h264(seconds: 4, audio: false, video: true)
        fixture.metadata.frameRate = nil  // measured instead
        let (service, dump) = try await package(fixture, variant: .fmp4LowLatency, room: "video")
        #expect(try dump.decodeErrors() == "")
        try checkKeyframeGrid(dump, initURI: "init-0.mp4")
        let multivariant = String(buffer: (await service.handle(roomId: "video", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"avc1.64001e\",RESOLUTION=640x360,FRAME-RATE=30.000\n"))
        await service.shutdown()
    }

    @Test func announcedAudioThatNeverArrivesDelaysTheStartOnlyBrieflyAndVideoIsKept() async throws {
        var fixture = try MediaFixture.h264(seconds: 4, audio: false, video: true)
        fixture.metadata.audioSampleRate = 48000  // onMetaData promises audio, no AAC header ever comes
        let (service, dump) = try await package(fixture, variant: .fmp4LowLatency, room: "noaudio")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentURIs.count == 2)
        try checkKeyframeGrid(dump, initURI: "init-0.mp4")
        let multivariant = String(buffer: (await service.handle(roomId: "noaudio", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"avc1.64001e\","))
        await service.shutdown()
    }

    @Test func anAudioTrackThatStartsLateIsAddedWithANewInitSection() async throws {
        let fixture = try MediaFixture.h264(seconds: 6)
        let service = HLSService(configuration: HLSConfiguration())
        let stream = LiveStream(id: "late")
        service.attach(stream: stream)
        stream.beginPublish()
        stream.publish(.metadata(fixture.metadata))
        let video = fixture.configs.first { $0.kind == .video }!
        let audio = fixture.configs.first { $0.kind == .audio }!
        stream.publish(.config(video))
        let split = fixture.index(atMs: 2500)
        for packet in fixture.packets[0..<split] where packet.kind == .video { stream.publish(.packet(packet)) }
        stream.publish(.config(audio))
        fixture.publish(on: stream, packets: split..<fixture.packets.count, begin: false)
        stream.end()
        let playlist = try await PlaylistDump.waitForEnd(service, room: "late")
        let dump = try await PlaylistDump.dump(service, room: "late", playlist: playlist)
        #expect(playlist.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"))
        let lastSegment = try #require(dump.segmentURIs.last)
        #expect(try dump.frames(ofSegment: lastSegment, initURI: "init-1.mp4", stream: "a").count > 50)
        #expect(try dump.frames(ofSegment: "seg-0.m4s", initURI: "init-0.mp4", stream: "a").isEmpty)
        // Each session decodes cleanly on its own (ffmpeg's HLS demuxer cannot follow a track set
        // that changes at a discontinuity, so the playlist as a whole is not fed to it here).
        for (initURI, segments) in [("init-0.mp4", ["seg-0.m4s", "seg-1.m4s"]), ("init-1.mp4", [lastSegment])] {
            var data = try Data(contentsOf: dump.directory.appendingPathComponent(initURI))
            for segment in segments { data.append(try Data(contentsOf: dump.directory.appendingPathComponent(segment))) }
            let file = dump.directory.appendingPathComponent("session-\(initURI)")
            try data.write(to: file)
            let result = try run("ffmpeg", ["-v", "error", "-i", file.path, "-f", "null", "-"])
            #expect(result.status == 0 && result.stderr.isEmpty, "\(initURI): \(result.stderr)")
        }
        await service.shutdown()
    }

    @Test func aPublisherReconnectKeepsTheMediaSequenceAndInsertsADiscontinuity() async throws {
        let fixture = try MediaFixture.h264(seconds: 6)
        let service = HLSService(configuration: HLSConfiguration())
        let stream = LiveStream(id: "reconnect")
        service.attach(stream: stream)
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 3000))
        stream.endPublish()
        // The new publisher's clock starts somewhere else entirely.
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 4000), offsetMs: 90_000)
        stream.end()
        let playlist = try await PlaylistDump.waitForEnd(service, room: "reconnect")
        let dump = try await PlaylistDump.dump(service, room: "reconnect", playlist: playlist)
        #expect(dump.segmentURIs == ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s"])
        #expect(playlist.contains("seg-1.m4s\n#EXT-X-DISCONTINUITY\n"))
        #expect(!playlist.contains("init-1.mp4"))  // same codecs: the init section is reused
        #expect(dump.segmentDurations.map { ($0 * 10).rounded() / 10 } == [2, 1, 2, 2])
        #expect(try dump.decodeErrors() == "")
        await service.shutdown()
    }

    /// After a reconnect the output timeline continues where the previous session ended (it does not
    /// restart at 0): every track's timestamps keep increasing across the discontinuity. With a
    /// restart, ffmpeg's HLS demuxer realigned the tracks on whichever packet came first and
    /// reported "non monotonically increasing dts" for MPEG-TS (seen end to end, e2e/test_hls_e2e.py).
    @Test(arguments: [HLSVariant.mpegts, .fmp4LowLatency])
    func timestampsKeepIncreasingAcrossAReconnect(variant: HLSVariant) async throws {
        let fixture = try MediaFixture.h264(seconds: 6)
        let service = HLSService(configuration: HLSConfiguration(variant: variant))
        let stream = LiveStream(id: "continuous")
        service.attach(stream: stream)
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 3000))
        stream.endPublish()
        fixture.publish(on: stream, packets: 0..<fixture.index(atMs: 4000), offsetMs: 90_000)
        stream.end()
        let playlist = try await PlaylistDump.waitForEnd(service, room: "continuous")
        let dump = try await PlaylistDump.dump(service, room: "continuous", playlist: playlist)
        let ext = variant == .mpegts ? "ts" : "m4s"
        // The last segment of the first session (the first GOP, then the second's first second).
        let last = 1
        #expect(playlist.contains("seg-\(last).\(ext)\n#EXT-X-DISCONTINUITY\n"))
        let initURI: String? = variant == .mpegts ? nil : "init-0.mp4"
        for track in ["v", "a"] {
            let before = try dump.frames(ofSegment: "seg-\(last).\(ext)", initURI: initURI, stream: track).map(\.pts)
            let after = try dump.frames(ofSegment: "seg-\(last + 1).\(ext)", initURI: initURI, stream: track).map(\.pts)
            let lastBefore = try #require(before.max()), firstAfter = try #require(after.min())
            #expect(firstAfter > lastBefore, "\(track): \(firstAfter) after \(lastBefore)")
            #expect(firstAfter - lastBefore < 0.2, "\(track): no gap beyond a frame or two (\(firstAfter) after \(lastBefore))")
        }
        #expect(try dump.decodeErrors() == "")
        // EXT-X-PROGRAM-DATE-TIME stays on the wall clock (not shifted by the continued timeline).
        let dates = playlist.split(separator: "\n").filter { $0.hasPrefix("#EXT-X-PROGRAM-DATE-TIME:") }.map(String.init)
        #expect(dates == dates.sorted())
        await service.shutdown()
    }
}
