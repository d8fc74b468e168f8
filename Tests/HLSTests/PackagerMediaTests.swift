import Foundation
import MediaCore
import NIOCore
import Testing

@testable import HLS

/// Real media through the real packager, checked with ffmpeg/ffprobe.
@Suite(.serialized) struct PackagerMediaTests {
    func package(
        _ fixture: MediaFixture, variant: HLSVariant, room: String
    ) async throws -> (HLSService, PlaylistDump) {
        let service = HLSService(configuration: HLSConfiguration(variant: variant))
        let stream = LiveStream(id: room)
        service.attach(stream: stream)
        fixture.publish(on: stream)
        stream.end()
        let playlist = try await PlaylistDump.waitForEnd(service, room: room)
        return (service, try await PlaylistDump.dump(service, room: room, playlist: playlist))
    }

    /// Segments (but the last) last 2 s on the 2 s keyframe grid, start with a keyframe, and hold
    /// as many frames as their EXTINF says (within one frame). With LL-HLS the first segment is its
    /// first 0.5 s part (a playable playlist at once), and the second runs on to the next keyframe.
    func checkKeyframeGrid(_ dump: PlaylistDump, initURI: String?, lowLatency: Bool, frameDuration: Double = 1.0 / 30) throws {
        for (index, uri) in dump.segmentURIs.enumerated() {
            let duration = dump.segmentDurations[index]
            let expected = lowLatency && index < 2 ? [0.5, 1.5][index] : 2
            if index < dump.segmentURIs.count - 1 {
                #expect(abs(duration - expected) <= frameDuration, "segment \(uri) lasts \(duration)")
            }
            let frames = try dump.frames(ofSegment: uri, initURI: initURI)
            #expect(frames.first?.key == !(lowLatency && index == 1), "segment \(uri): keyframe first is \(String(describing: frames.first?.key))")
            #expect(abs(Double(frames.count) * frameDuration - duration) <= frameDuration + 0.001, "\(uri): \(frames.count) frames vs \(duration) s")
        }
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
        #expect(dump.segmentURIs == ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s"])
        try checkKeyframeGrid(dump, initURI: "init-0.mp4", lowLatency: true)
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
        try checkKeyframeGrid(dump, initURI: nil, lowLatency: false)
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
        try checkKeyframeGrid(dump, initURI: "init-0.mp4", lowLatency: false)
        await service.shutdown()
    }

    @Test(.enabled(if: MediaFixture.hasEncoder("libx265")))
    func hevcIsPackagedAsHvc1InFMP4() async throws {
        let (service, dump) = try await package(try MediaFixture.hevc(), variant: .fmp4LowLatency, room: "hevc")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentURIs.count == 4)  // 0.5 s, on to the keyframe at ~0.9 s, 2 s, the rest (1 s GOP)
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
        // 0.5 s + 1.5 s + 2 s of H.264, then the HEVC session (only the very first segment is short).
        #expect(dump.segmentURIs == ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s", "seg-4.m4s"])
        let newInit = try Data(contentsOf: dump.directory.appendingPathComponent("init-1.mp4"))
        #expect(newInit.range(of: Data("hvcC".utf8)) != nil)
        let frames = try dump.frames(ofSegment: "seg-3.m4s", initURI: "init-1.mp4")
        #expect(frames.first?.key == true)
        #expect(abs(Double(frames.count) / 30 - dump.segmentDurations[3]) <= 1.0 / 30 + 0.001)
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
        #expect(dump.segmentDurations.count == 4)
        #expect(abs(dump.segmentDurations[0] - 0.5) < 0.03)  // the first part: a playlist at once
        #expect(dump.segmentDurations.dropFirst().dropLast().allSatisfy { $0 > 1.9 && $0 <= 2.0 })
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
        try checkKeyframeGrid(dump, initURI: "init-0.mp4", lowLatency: true)
        let multivariant = String(buffer: (await service.handle(roomId: "video", file: "index.m3u8")).body)
        #expect(multivariant.contains("CODECS=\"avc1.64001e\",RESOLUTION=640x360,FRAME-RATE=30.000\n"))
        await service.shutdown()
    }

    @Test func announcedAudioThatNeverArrivesDelaysTheStartOnlyBrieflyAndVideoIsKept() async throws {
        var fixture = try MediaFixture.h264(seconds: 4, audio: false, video: true)
        fixture.metadata.audioSampleRate = 48000  // onMetaData promises audio, no AAC header ever comes
        let (service, dump) = try await package(fixture, variant: .fmp4LowLatency, room: "noaudio")
        #expect(try dump.decodeErrors() == "")
        #expect(dump.segmentURIs.count == 3)
        try checkKeyframeGrid(dump, initURI: "init-0.mp4", lowLatency: true)
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
        #expect(dump.segmentURIs == ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s", "seg-4.m4s"])
        #expect(playlist.contains("seg-2.m4s\n#EXT-X-DISCONTINUITY\n"))
        #expect(!playlist.contains("init-1.mp4"))  // same codecs: the init section is reused
        #expect(dump.segmentDurations.map { ($0 * 10).rounded() / 10 } == [0.5, 1.5, 1, 2, 2])
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
        // The last segment of the first session (LL-HLS has the short first segment in front).
        let last = variant == .mpegts ? 1 : 2
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
