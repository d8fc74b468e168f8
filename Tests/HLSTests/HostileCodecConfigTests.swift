import MediaCore
import NIOCore
import Testing

@testable import HLS

/// Writes H.264/H.265 syntax elements (ITU-T H.264 §9.1 Exp-Golomb), with emulation prevention.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var bitCount = 0

    mutating func bit(_ value: Bool) {
        if bitCount % 8 == 0 { bytes.append(0) }
        if value { bytes[bytes.count - 1] |= 0x80 >> UInt8(bitCount % 8) }
        bitCount += 1
    }

    mutating func bits(_ value: UInt64, _ count: Int) {
        for index in stride(from: count - 1, through: 0, by: -1) { bit((value >> UInt64(index)) & 1 == 1) }
    }

    mutating func ue(_ value: UInt64) {
        let x = value + 1
        let length = 64 - x.leadingZeroBitCount
        bits(0, length - 1)
        bits(x, length)
    }

    mutating func se(_ value: Int64) {
        ue(value > 0 ? UInt64(2 * value - 1) : UInt64(-2 * value))
    }

    /// RBSP trailing bits, then `00 00 0x` sequences escaped with `03` (H.264 §7.4.1).
    func nal(header: [UInt8]) -> [UInt8] {
        var writer = self
        writer.bit(true)
        while writer.bitCount % 8 != 0 { writer.bit(false) }
        var out = header
        var zeros = 0
        for byte in writer.bytes {
            if zeros >= 2 && byte <= 3 {
                out.append(3)
                zeros = 0
            }
            out.append(byte)
            zeros = byte == 0 ? zeros + 1 : 0
        }
        return out
    }
}

/// H.264 SPS (High profile, so a scaling matrix may follow) with the given size in macroblocks.
func h264SPS(widthInMbsMinus1: UInt64 = 39, heightInMapUnitsMinus1: UInt64 = 22, scalingDelta: Int64? = nil) -> [UInt8] {
    var writer = BitWriter()
    writer.bits(100, 8)  // profile_idc: High
    writer.bits(0, 8)
    writer.bits(40, 8)
    writer.ue(0)  // seq_parameter_set_id
    writer.ue(1)  // chroma_format_idc
    writer.ue(0)
    writer.ue(0)
    writer.bit(false)
    writer.bit(scalingDelta != nil)  // seq_scaling_matrix_present_flag
    if let scalingDelta {
        writer.bit(true)  // list 0 present
        writer.se(scalingDelta)
        for _ in 0..<15 { writer.se(0) }
        for _ in 1..<8 { writer.bit(false) }
    }
    writer.ue(0)  // log2_max_frame_num_minus4
    writer.ue(2)  // pic_order_cnt_type
    writer.ue(1)  // max_num_ref_frames
    writer.bit(false)
    writer.ue(widthInMbsMinus1)
    writer.ue(heightInMapUnitsMinus1)
    writer.bit(true)  // frame_mbs_only_flag
    writer.bit(true)
    writer.bit(false)  // frame_cropping_flag
    writer.bit(false)  // vui_parameters_present_flag
    return writer.nal(header: [0x67])
}

/// H.265 SPS with the given luma size (profile_tier_level all zero).
func hevcSPS(width: UInt64, height: UInt64) -> [UInt8] {
    var writer = BitWriter()
    writer.bits(0, 4)  // sps_video_parameter_set_id
    writer.bits(0, 3)  // sps_max_sub_layers_minus1
    writer.bit(true)
    writer.bits(0, 64)
    writer.bits(0, 32)  // profile_tier_level: 96 bits
    writer.ue(0)  // sps_seq_parameter_set_id
    writer.ue(1)  // chroma_format_idc
    writer.ue(width)
    writer.ue(height)
    writer.bit(false)  // conformance_window_flag
    return writer.nal(header: [0x42, 0x01])
}

@Suite("Codec configurations a publisher can forge are refused or ignored, never trapped on")
struct HostileCodecConfigTests {
    @Test func aRealSizedH264SPSStillParses() throws {
        let sps = try #require(H264SPS(nal: h264SPS()))
        #expect(sps.dimensions == VideoDimensions(width: 640, height: 368))
    }

    @Test("an H.264 SPS declaring ~6.9e10 pixels per side gives no size (it used to reach libav's Int32)")
    func absurdH264WidthGivesNoSize() throws {
        #expect(H264SPS(nal: h264SPS(widthInMbsMinus1: (1 << 32) - 2)) == nil)
        #expect(H264SPS(nal: h264SPS(heightInMapUnitsMinus1: 20_000)) == nil)
        // The configuration is still described (CODECS comes from the avcC), without a size.
        let description = try #require(CodecDescription(TrackConfig(codec: .h264, extradata: makeAVCC(
            sps: h264SPS(widthInMbsMinus1: (1 << 32) - 2), pps: [0x68, 0xEE, 0x3C, 0x80]))))
        #expect(description.dimensions == nil)
    }

    @Test("a scaling-list delta near 2^31 makes the SPS invalid instead of overflowing")
    func scalingListDeltaOutOfRange() {
        #expect(H264SPS(nal: h264SPS(scalingDelta: 2_147_483_647)) == nil)
        #expect(H264SPS(nal: h264SPS(scalingDelta: -2_147_483_648)) == nil)
        #expect(H264SPS(nal: h264SPS(scalingDelta: 129)) == nil)
        #expect(H264SPS(nal: h264SPS(scalingDelta: -7)) != nil)
    }

    @Test func anHEVCSPSWithAnAbsurdSizeGivesNoSize() {
        #expect(HEVCSPS(nal: hevcSPS(width: 1920, height: 1080))?.dimensions == VideoDimensions(width: 1920, height: 1080))
        #expect(HEVCSPS(nal: hevcSPS(width: (1 << 32) - 2, height: 1080)) == nil)
        #expect(HEVCSPS(nal: hevcSPS(width: 1920, height: 16385)) == nil)
    }

    @Test("an av1C whose OBU size is an 8-byte leb128 near 2^63 is refused (offset + size used to overflow)")
    func av1OBUSizeOverflow() {
        let record: [UInt8] = [0x81, 0x00, 0x0C, 0x00, 0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00]
        #expect(AV1CodecConfiguration(record)?.sequenceHeaderPayload == nil)
        let unterminated: [UInt8] = [0x81, 0x00, 0x0C, 0x00, 0x0A] + [UInt8](repeating: 0xFF, count: 9)
        #expect(AV1CodecConfiguration(unterminated)?.sequenceHeaderPayload == nil)
    }

    @Test("an AudioSpecificConfig with an explicit 16 MHz rate is refused")
    func aacExplicitRateOutOfRange() {
        // AOT 2, frequency index 15, rate 0xFFFFFF, channels 2.
        var writer = BitWriter()
        writer.bits(2, 5)
        writer.bits(15, 4)
        writer.bits(0xFF_FFFF, 24)
        writer.bits(2, 4)
        #expect(CodecDescription(TrackConfig(codec: .aac, extradata: writer.bytes)) == nil)
        #expect(CodecDescription(TrackConfig(codec: .aac, extradata: [0x11, 0x90]))?.sampleRate == 48000)
    }

    @Test("decimal attribute values are finite and bounded whatever they are given")
    func decimalNeverTraps() {
        #expect(decimal(.nan) == "0.000")
        #expect(decimal(.infinity) == "1000000000000.000")
        #expect(decimal(-1e300) == "-1000000000000.000")
        #expect(decimal(29.97) == "29.970")
    }
}
