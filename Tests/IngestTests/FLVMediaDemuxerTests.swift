import Ingest
import MediaCore
import NIOCore
import Testing

@Suite("FLV tags to media packets")
struct FLVMediaDemuxerTests {
    private func packets(_ events: [StreamEvent]) -> [MediaPacket] {
        events.compactMap { if case .packet(let packet) = $0 { return packet } else { return nil } }
    }

    private func configs(_ events: [StreamEvent]) -> [TrackConfig] {
        events.compactMap { if case .config(let config) = $0 { return config } else { return nil } }
    }

    @Test("legacy AVC: sequence header is a config, NALUs carry pts = dts + SI24 composition time")
    func legacyAVC() throws {
        var demuxer = FLVMediaDemuxer()
        let avcC: [UInt8] = [0x01, 0x4D, 0x40, 0x1E, 0xFF, 0xE1, 0x00, 0x02, 0x67, 0x4D, 0x01, 0x00, 0x02, 0x68, 0xEF]
        #expect(configs(try demuxer.video(timestamp: 0, payload: ByteBuffer(bytes: [0x17, 0x00, 0, 0, 0] + avcC))) == [TrackConfig(codec: .h264, extradata: avcC)])
        let key = packets(try demuxer.video(timestamp: 100, payload: ByteBuffer(bytes: [0x17, 0x01, 0x00, 0x00, 0x43, 0, 0, 0, 1, 0x65])))
        #expect(key.map(\.dts) == [100])
        #expect(key.map(\.pts) == [167])
        #expect(key.map(\.isKeyframe) == [true])
        #expect(key.first?.payload == ByteBuffer(bytes: [0, 0, 0, 1, 0x65]))
        // Negative composition time (SI24 0xFFFFDF = -33).
        let inter = packets(try demuxer.video(timestamp: 133, payload: ByteBuffer(bytes: [0x27, 0x01, 0xFF, 0xFF, 0xDF, 0, 0, 0, 1, 0x41])))
        #expect(inter.map(\.pts) == [100])
        #expect(inter.map(\.isKeyframe) == [false])
        // End of sequence produces nothing.
        #expect(try demuxer.video(timestamp: 200, payload: ByteBuffer(bytes: [0x17, 0x02, 0, 0, 0])).isEmpty)
    }

    @Test("AAC: packet type 0 is the AudioSpecificConfig, 1 a raw frame that is a keyframe")
    func aac() throws {
        var demuxer = FLVMediaDemuxer()
        #expect(configs(try demuxer.audio(timestamp: 0, payload: ByteBuffer(bytes: [0xAF, 0x00, 0x11, 0x90]))) == [TrackConfig(codec: .aac, extradata: [0x11, 0x90])])
        let frame = packets(try demuxer.audio(timestamp: 21, payload: ByteBuffer(bytes: [0xAF, 0x01, 0xDE, 0xAD])))
        #expect(frame.map(\.dts) == [21])
        #expect(frame.first?.isKeyframe == true)
        #expect(frame.first?.payload == ByteBuffer(bytes: [0xDE, 0xAD]))
    }

    @Test("a config is sent again only when it changes")
    func configResentOnChange() throws {
        var demuxer = FLVMediaDemuxer()
        #expect(configs(try demuxer.audio(timestamp: 0, payload: ByteBuffer(bytes: [0xAF, 0x00, 0x11, 0x90]))).count == 1)
        #expect(configs(try demuxer.audio(timestamp: 0, payload: ByteBuffer(bytes: [0xAF, 0x00, 0x11, 0x90]))).isEmpty)
        #expect(configs(try demuxer.audio(timestamp: 0, payload: ByteBuffer(bytes: [0xAF, 0x00, 0x12, 0x10]))).count == 1)
    }

    @Test("Enhanced RTMP hvc1: SequenceStart, CodedFrames with composition time, CodedFramesX without")
    func enhancedHEVC() throws {
        var demuxer = FLVMediaDemuxer()
        let hvcC: [UInt8] = [0x01, 0x01, 0x60, 0, 0, 0]
        #expect(configs(try demuxer.video(timestamp: 0, payload: ByteBuffer(bytes: [0x90, 0x68, 0x76, 0x63, 0x31] + hvcC))) == [TrackConfig(codec: .hevc, extradata: hvcC)])
        let coded = packets(try demuxer.video(timestamp: 40, payload: ByteBuffer(bytes: [0x91, 0x68, 0x76, 0x63, 0x31, 0, 0, 80, 9, 9])))
        #expect(coded.map(\.pts) == [120])
        #expect(coded.first?.codec == .hevc)
        #expect(coded.first?.isKeyframe == true)
        #expect(coded.first?.payload == ByteBuffer(bytes: [9, 9]))
        let codedX = packets(try demuxer.video(timestamp: 80, payload: ByteBuffer(bytes: [0xA3, 0x68, 0x76, 0x63, 0x31, 7])))
        #expect(codedX.map(\.pts) == [80])
        #expect(codedX.first?.isKeyframe == false)
        #expect(try demuxer.video(timestamp: 90, payload: ByteBuffer(bytes: [0xA2, 0x68, 0x76, 0x63, 0x31])).isEmpty)
    }

    @Test("Enhanced RTMP multitrack: only track 0 is used and the others are noticed once")
    func multitrackUsesTrackZero() throws {
        var demuxer = FLVMediaDemuxer()
        // ManyTracks (1) of CodedFrames (1), FourCC av01; track 0 = [1,2], track 1 = [3].
        let body: [UInt8] = [0x96, 0x11, 0x61, 0x76, 0x30, 0x31, 0x00, 0, 0, 2, 1, 2, 0x01, 0, 0, 1, 3]
        let out = packets(try demuxer.video(timestamp: 5, payload: ByteBuffer(bytes: body)))
        #expect(out.map(\.payload) == [ByteBuffer(bytes: [1, 2])])
        #expect(out.first?.codec == .av1)
        #expect(demuxer.takeNotices().count == 1)
        _ = try demuxer.video(timestamp: 6, payload: ByteBuffer(bytes: body))
        #expect(demuxer.takeNotices().isEmpty)
    }

    @Test("Enhanced RTMP audio with the mp4a FourCC is AAC")
    func enhancedAudio() throws {
        var demuxer = FLVMediaDemuxer()
        #expect(configs(try demuxer.audio(timestamp: 0, payload: ByteBuffer(bytes: [0x90, 0x6D, 0x70, 0x34, 0x61, 0x11, 0x90]))).first?.codec == .aac)
        #expect(packets(try demuxer.audio(timestamp: 21, payload: ByteBuffer(bytes: [0x91, 0x6D, 0x70, 0x34, 0x61, 0xAB]))).count == 1)
    }

    @Test("timestamps are unwrapped across 2^32 per track")
    func timestampsUnwrapAcross32Bits() throws {
        var demuxer = FLVMediaDemuxer()
        var dts: [Int64] = []
        for timestamp: UInt32 in [UInt32.max - 40, UInt32.max - 7, 25, 58] {
            dts += packets(try demuxer.audio(timestamp: timestamp, payload: ByteBuffer(bytes: [0xAF, 0x01, 0]))).map(\.dts)
        }
        #expect(dts == [4_294_967_255, 4_294_967_288, 4_294_967_321, 4_294_967_354])
        var unwrapper = RTMPTimestampUnwrapper()
        #expect([UInt32(1000), 990, 2000].map { unwrapper.unwrap($0) } == [1000, 990, 2000])
    }

    @Test("truncated headers are errors and empty bodies are ignored")
    func truncatedHeaders() throws {
        var demuxer = FLVMediaDemuxer()
        #expect(try demuxer.video(timestamp: 0, payload: ByteBuffer()).isEmpty)
        #expect(throws: FLVDemuxError.truncated("AVC packet header")) { try demuxer.video(timestamp: 0, payload: ByteBuffer(bytes: [0x17, 0x01])) }
        #expect(throws: FLVDemuxError.truncated("FourCC")) { try demuxer.video(timestamp: 0, payload: ByteBuffer(bytes: [0x91, 0x68])) }
    }
}
