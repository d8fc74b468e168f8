import MediaCore
import NIOCore
import Testing

@testable import HLS

/// Inputs the fuzz targets (fuzz/) found crashing the HLS side; each must now be harmless.
@Suite struct HLSFuzzRegressionTests {
    @Test("an avcC without SPS and PPS: mov refuses the header, and the muxer's teardown no longer calls av_write_trailer (a null function pointer in libav)")
    func avcCWithoutParameterSetsDoesNotCrash() async {
        let service = HLSService(configuration: HLSConfiguration(variant: .fmp4))
        let stream = LiveStream(id: "no-sps")
        service.attach(stream: stream)
        stream.beginPublish()
        stream.publish(.config(TrackConfig(codec: .h264, extradata: [0x01, 0x4D, 0x40, 0x00, 0x00, 0x00, 0x00])))
        for frame in 0..<60 {
            let dts = Int64(frame) * 33
            stream.publish(.packet(MediaPacket(codec: .h264, dts: dts, pts: dts, isKeyframe: frame % 30 == 0, payload: ByteBuffer(bytes: [0, 0, 0, 1, 0x65]))))
        }
        stream.end()
        #expect(service.respondNow(roomId: "no-sps", file: "seg-0.m4s")?.status == 404)
    }

    @Test("a part index of -1 is not found (it used to index the parts array with it)")
    func negativePartIndexIsNotFound() {
        let store = SegmentStore(configuration: HLSConfiguration(variant: .fmp4LowLatency, segmentsInMemoryFiles: false))
        store.addPart(ByteBuffer(bytes: [1]), duration: 0.5, independent: true, programDateTimeMs: 0)
        #expect(store.partBody(msn: 0, index: -1) == nil)
        store.closeSegment(duration: 0.5, independent: true, bytes: nil, programDateTimeMs: 0, targetDuration: 2)
        #expect(store.partBody(msn: 0, index: -1) == nil)
        #expect(store.partBody(msn: 0, index: 0) != nil)
    }
}
