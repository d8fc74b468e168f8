import CoreMetrics
import Logging
import MediaCore
import NIOCore
import Synchronization
import Testing

@testable import HLS

/// What a publisher's stream can make the packager hold, and how it is refused.
@Suite(.serialized) struct PublisherLimitTests {
    /// Reasons the stream's publisher was refused with (`LiveStream.refusePublisher`).
    final class Refusals: Sendable {
        let reasons = Mutex<[String]>([])
        var all: [String] { reasons.withLock { $0 } }
    }

    func publish(_ stream: LiveStream, refusals: Refusals) {
        stream.beginPublish { reason in refusals.reasons.withLock { $0.append(reason) } }
    }

    @Test("impossible onMetaData numbers (frame rate 0 or 1e300, a width of 1e18) never trap; FRAME-RATE comes from the timestamps")
    func impossibleMetadataIsHarmless() async throws {
        var fixture = try MediaFixture.h264(seconds: 4)
        for frameRate in [0, 1e300, -.infinity, .nan] {
            fixture.metadata = StreamMetadata(
                width: Int.max, height: -5, frameRate: frameRate, videoBitrateKbps: .nan, audioSampleRate: Int.min, audioChannels: Int.max)
            let service = HLSService(configuration: HLSConfiguration(variant: .fmp4LowLatency))
            let stream = LiveStream(id: "meta")
            service.attach(stream: stream)
            fixture.publish(on: stream)
            stream.end()
            let playlist = try await PlaylistDump.waitForEnd(service, room: "meta")
            #expect(playlist.contains("#EXT-X-ENDLIST"))
            let multivariant = String(buffer: (await service.handle(roomId: "meta", file: "index.m3u8")).body)
            #expect(multivariant.contains("RESOLUTION=640x360,FRAME-RATE=30.000"), "\(frameRate): \(multivariant)")
        }
    }

    @Test("a segment over maxSegmentBytes refuses the publisher; what was packaged stays playable")
    func oversizedSegmentRefusesThePublisher() async throws {
        let fixture = try MediaFixture.h264(seconds: 6)
        let service = HLSService(configuration: HLSConfiguration(variant: .fmp4LowLatency, maxSegmentBytes: 30_000))
        let stream = LiveStream(id: "big")
        service.attach(stream: stream)
        let refusals = Refusals()
        publish(stream, refusals: refusals)
        stream.publish(.metadata(fixture.metadata))
        for config in fixture.configs { stream.publish(.config(config)) }
        fixture.publish(on: stream, begin: false)
        #expect(refusals.all.count == 1)
        #expect(refusals.all.first?.contains("LIVEHUB_HLS_MAX_SEGMENT_BYTES") == true)
        stream.end()
        let playlist = try await PlaylistDump.waitForEnd(service, room: "big")
        let dump = try await PlaylistDump.dump(service, room: "big", playlist: playlist)
        #expect(!dump.segmentURIs.isEmpty)
        #expect(try dump.decodeErrors() == "")
        // Nothing after the refusal was packaged: the segments hold less than the fixture.
        #expect(dump.segmentDurations.reduce(0, +) < 6)
    }

    @Test("timestamps that force a segment per frame refuse the publisher after maxSegmentsPerTenSeconds")
    func segmentPerFrameIsCutOff() async throws {
        let fixture = try MediaFixture.h264(seconds: 1, audio: false, video: true, gop: 1)
        let service = HLSService(configuration: HLSConfiguration(variant: .fmp4LowLatency, maxSegmentsPerTenSeconds: 20))
        let stream = LiveStream(id: "fast")
        service.attach(stream: stream)
        let refusals = Refusals()
        publish(stream, refusals: refusals)
        for config in fixture.configs { stream.publish(.config(config)) }
        // Every frame a keyframe 2.1 s after the previous one: each would close a segment.
        for index in 0..<200 {
            var packet = fixture.packets[index % fixture.packets.count]
            packet.dts = Int64(index) * 2100
            packet.pts = packet.dts
            packet.isKeyframe = true
            stream.publish(.packet(packet))
        }
        #expect(refusals.all.count == 1)
        #expect(refusals.all.first?.contains("LIVEHUB_HLS_MAX_SEGMENTS_PER_10S") == true)
        let store = try #require(service.segmentStore(roomId: "fast"))
        #expect(store.lastCompleteMSN <= 25)
        stream.end()
    }

    @Test("a room keeps at most 3 × window + 5 segments however fast they come")
    func retiredSegmentsAreBounded() {
        let configuration = HLSConfiguration(variant: .fmp4, windowSegments: 3, segmentsInMemoryFiles: false)
        let store = SegmentStore(configuration: configuration)
        for _ in 0..<100 {
            store.closeSegment(duration: 2, independent: true, bytes: ByteBuffer(bytes: [1, 2, 3]), programDateTimeMs: 0, targetDuration: 2)
        }
        let held = (0..<100).filter { store.segmentBody(msn: $0) != nil }.count
        #expect(held == 3 + configuration.maxRetiredSegments)
    }

    @Test("media waiting for sequence headers is bounded in bytes, oldest first")
    func discoveryBufferIsBoundedInBytes() {
        let configuration = HLSConfiguration(variant: .fmp4LowLatency, trackDiscoveryBufferBytes: 1 << 20)
        let packager = HLSPackager(
            configuration: configuration, store: SegmentStore(configuration: configuration),
            metrics: HLSMetrics(factory: NOOPMetricsHandler.instance), wallClock: { 0 }, logger: Logger(label: "test"))
        packager.handle(.publishStarted(session: 1))
        // A video sequence header but never a keyframe: the packager waits, holding audio.
        packager.handle(.config(TrackConfig(codec: .h264, extradata: makeAVCC(sps: h264SPS(), pps: [0x68, 0xEE, 0x3C, 0x80]))))
        for index in 0..<200 {
            let payload = ByteBuffer(repeating: 0, count: 64 << 10)
            packager.handle(.packet(MediaPacket(codec: .aac, dts: Int64(index) * 21, pts: Int64(index) * 21, isKeyframe: true, payload: payload)))
            #expect(packager.discoveryBufferBytes <= configuration.trackDiscoveryBufferBytes + (64 << 10))
        }
        #expect(packager.discoveryBufferBytes > 0)
    }
}
