import MediaCore
import Testing

@testable import HLS

func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// avcC from an SPS and a PPS, as FLV carries it.
func makeAVCC(sps: [UInt8], pps: [UInt8]) -> [UInt8] {
    [1, sps[1], sps[2], sps[3], 0xFF, 0xE1, UInt8(sps.count >> 8), UInt8(sps.count & 0xFF)] + sps
        + [1, UInt8(pps.count >> 8), UInt8(pps.count & 0xFF)] + pps
}

@Suite struct BitReaderTests {
    @Test func unsignedExpGolombCodesDecodeToTheirValues() throws {
        // 1 → 0, 010 → 1, 011 → 2, 00100 → 3, 00111 → 6
        var reader = BitReader([0b1010_0110, 0b0100_0011, 0b1000_0000])
        #expect(try reader.ue() == 0)
        #expect(try reader.ue() == 1)
        #expect(try reader.ue() == 2)
        #expect(try reader.ue() == 3)
        #expect(try reader.ue() == 6)
    }

    @Test func signedExpGolombAlternatesPositiveAndNegative() throws {
        // 010 → +1, 011 → -1, 00100 → +2
        var reader = BitReader([0b0100_1100, 0b1000_0000])
        #expect(try reader.se() == 1)
        #expect(try reader.se() == -1)
        #expect(try reader.se() == 2)
    }

    @Test func readingPastTheEndThrows() {
        var reader = BitReader([0x00])
        #expect(throws: BitReader.OutOfBits.self) { try reader.ue() }
    }

    @Test func emulationPreventionBytesAreRemoved() {
        #expect(BitReader.rbsp(fromNAL: [0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03]) == [0x00, 0x00, 0x01, 0x00, 0x00])
    }
}

@Suite struct SequenceParameterSetTests {
    @Test func aHighProfile640x360SPSYieldsItsCroppedSize() throws {
        let sps = try #require(H264SPS(nal: hexBytes("6764001eacd940a02ff970110000030001000003003c0f162d96")))
        #expect(sps.dimensions == VideoDimensions(width: 640, height: 360))
        #expect(sps.profileIDC == 100)
        #expect(sps.levelIDC == 30)
    }

    @Test func aBaseline1080pSPSCropsTheEightExtraLines() throws {
        let sps = try #require(H264SPS(nal: hexBytes("6742c028d900780227e5c044000003000400000300f03c60c920")))
        #expect(sps.dimensions == VideoDimensions(width: 1920, height: 1080))
        #expect(sps.profileIDC == 66)
    }

    @Test func aTruncatedSPSIsRejected() {
        #expect(H264SPS(nal: hexBytes("6764001eacd9")) == nil)
        #expect(H264SPS(nal: hexBytes("68ebe3cb22c0")) == nil)  // a PPS, not an SPS
    }

    @Test func anHEVCSPSYieldsItsSize() throws {
        let sps = try #require(
            HEVCSPS(nal: hexBytes("42010101600000030090000003000003005da00280802d165959a4932bc05a020000030002000003003c10")))
        #expect(sps.dimensions == VideoDimensions(width: 1280, height: 720))
    }
}

@Suite struct CodecsStringTests {
    @Test func avcCodecsStringComesFromAvcCBytesOneToThree() throws {
        let avcC = makeAVCC(
            sps: hexBytes("6764001eacd940a02ff970110000030001000003003c0f162d96"), pps: hexBytes("68ebe3cb22c0"))
        let description = try #require(CodecDescription(TrackConfig(codec: .h264, extradata: avcC)))
        #expect(description.codecsString == "avc1.64001e")
        #expect(description.dimensions == VideoDimensions(width: 640, height: 360))
    }

    @Test func aacLCAt48kHzStereoIsMp4a402() throws {
        let description = try #require(CodecDescription(TrackConfig(codec: .aac, extradata: [0x11, 0x90])))
        #expect(description.codecsString == "mp4a.40.2")
        #expect(description.sampleRate == 48000)
        #expect(description.channels == 2)
    }

    @Test func heAACAt44kHzIsMp4a405() throws {
        // AOT 5, frequency index 4 (44.1 kHz), one channel.
        let description = try #require(CodecDescription(TrackConfig(codec: .aac, extradata: [0x2A, 0x08])))
        #expect(description.codecsString == "mp4a.40.5")
        #expect(description.sampleRate == 44100)
        #expect(description.channels == 1)
    }

    @Test func hevcCodecsStringFollowsISO14496Part15AnnexE() throws {
        let vps = hexBytes("40010c01ffff01600000030090000003000003005d959809")
        let sps = hexBytes("42010101600000030090000003000003005da00280802d165959a4932bc05a020000030002000003003c10")
        let pps = hexBytes("4401c172b46240")
        var hvcC: [UInt8] = [1, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0, 0, 0, 0, 0, 93, 0xF0, 0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F, 3]
        for (type, nal) in [(UInt8(32), vps), (33, sps), (34, pps)] {
            hvcC += [0x80 | type, 0, 1, UInt8(nal.count >> 8), UInt8(nal.count & 0xFF)] + nal
        }
        let description = try #require(CodecDescription(TrackConfig(codec: .hevc, extradata: hvcC)))
        #expect(description.codecsString == "hvc1.1.6.L93.90")
        #expect(description.dimensions == VideoDimensions(width: 1280, height: 720))
    }

    @Test func av1CodecsStringHasProfileLevelTierAndDepth() throws {
        // av1C: marker/version 0x81, profile 0 level 8, main tier 8-bit 4:2:0.
        let description = try #require(CodecDescription(TrackConfig(codec: .av1, extradata: [0x81, 0x08, 0x0C, 0x00])))
        #expect(description.codecsString == "av01.0.08M.08")
        let tenBit = try #require(CodecDescription(TrackConfig(codec: .av1, extradata: [0x81, 0x2D, 0xCC, 0x00])))
        #expect(tenBit.codecsString == "av01.1.13H.10")
    }

    @Test func malformedConfigurationRecordsAreRejected() {
        #expect(CodecDescription(TrackConfig(codec: .h264, extradata: [1, 2, 3])) == nil)
        #expect(CodecDescription(TrackConfig(codec: .hevc, extradata: [1])) == nil)
        #expect(CodecDescription(TrackConfig(codec: .av1, extradata: [0x01, 0, 0, 0])) == nil)
        #expect(CodecDescription(TrackConfig(codec: .aac, extradata: [])) == nil)
    }
}
