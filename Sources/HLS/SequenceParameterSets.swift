import MediaCore

/// Picture dimensions read from a codec's sequence header.
public struct VideoDimensions: Sendable, Hashable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Dimensions a sequence header may declare: each side within `StreamMetadata.Plausible.dimension`
    /// (1...16384). A header declaring more (an SPS can encode ~2^36 pixels per side) is treated as
    /// not giving a size, so nothing converts it into libav's 32-bit fields.
    init?(plausibleWidth width: Int, height: Int) {
        guard StreamMetadata.Plausible.dimension.contains(width), StreamMetadata.Plausible.dimension.contains(height) else {
            return nil
        }
        self.init(width: width, height: height)
    }

    public var description: String { "\(width)x\(height)" }
}

/// ITU-T H.264 §7.3.2.1.1 `seq_parameter_set_data()`: only what HLS needs (cropped size, profile, level).
public struct H264SPS: Sendable, Hashable {
    public var profileIDC: UInt8
    public var constraintFlags: UInt8
    public var levelIDC: UInt8
    public var dimensions: VideoDimensions

    /// Parses one SPS NAL unit (including its one-byte NAL header).
    public init?(nal: [UInt8]) {
        guard nal.count >= 4, nal[0] & 0x1F == 7 else { return nil }
        var reader = BitReader(BitReader.rbsp(fromNAL: nal.dropFirst()))
        do {
            profileIDC = UInt8(try reader.bits(8))
            constraintFlags = UInt8(try reader.bits(8))
            levelIDC = UInt8(try reader.bits(8))
            _ = try reader.ue()  // seq_parameter_set_id
            var chromaFormatIDC: UInt32 = 1
            var separateColourPlane = false
            if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(profileIDC) {
                chromaFormatIDC = try reader.ue()
                if chromaFormatIDC == 3 { separateColourPlane = try reader.flag() }
                _ = try reader.ue()  // bit_depth_luma_minus8
                _ = try reader.ue()  // bit_depth_chroma_minus8
                _ = try reader.flag()  // qpprime_y_zero_transform_bypass_flag
                if try reader.flag() {  // seq_scaling_matrix_present_flag
                    for index in 0..<(chromaFormatIDC == 3 ? 12 : 8) where try reader.flag() {
                        try Self.skipScalingList(&reader, size: index < 6 ? 16 : 64)
                    }
                }
            }
            _ = try reader.ue()  // log2_max_frame_num_minus4
            let pocType = try reader.ue()
            if pocType == 0 {
                _ = try reader.ue()
            } else if pocType == 1 {
                _ = try reader.flag()
                _ = try reader.se()
                _ = try reader.se()
                let cycle = try reader.ue()
                guard cycle < 256 else { return nil }
                for _ in 0..<cycle { _ = try reader.se() }
            }
            _ = try reader.ue()  // max_num_ref_frames
            _ = try reader.flag()  // gaps_in_frame_num_value_allowed_flag
            let widthInMbs = Int(try reader.ue()) + 1
            let heightInMapUnits = Int(try reader.ue()) + 1
            let frameMbsOnly = try reader.flag()
            if !frameMbsOnly { _ = try reader.flag() }
            _ = try reader.flag()  // direct_8x8_inference_flag
            var crop = (left: 0, right: 0, top: 0, bottom: 0)
            if try reader.flag() {
                crop = (Int(try reader.ue()), Int(try reader.ue()), Int(try reader.ue()), Int(try reader.ue()))
            }
            let chromaArrayType = separateColourPlane ? 0 : chromaFormatIDC
            let subWidthC = chromaArrayType == 3 ? 1 : 2
            let subHeightC = chromaArrayType == 1 ? 2 : 1
            let cropUnitX = chromaArrayType == 0 ? 1 : subWidthC
            let cropUnitY = (chromaArrayType == 0 ? 1 : subHeightC) * (frameMbsOnly ? 1 : 2)
            // ue(v) values are < 2^32, so these products fit in 64 bits; the size must then be plausible.
            let width = widthInMbs * 16 - cropUnitX * (crop.left + crop.right)
            let height = (frameMbsOnly ? 1 : 2) * heightInMapUnits * 16 - cropUnitY * (crop.top + crop.bottom)
            guard let dimensions = VideoDimensions(plausibleWidth: width, height: height) else { return nil }
            self.dimensions = dimensions
        } catch {
            return nil
        }
    }

    /// §7.3.2.1.1.1 scaling_list(): `delta_scale` is in -128...127 (§7.4.2.1.1.1); anything else
    /// (an se(v) can reach ±2^31) makes the SPS invalid rather than overflowing `last + delta`.
    private static func skipScalingList(_ reader: inout BitReader, size: Int) throws {
        var last: Int32 = 8
        var next: Int32 = 8
        for _ in 0..<size where next != 0 {
            let delta = try reader.se()
            guard (-128...127).contains(delta) else { throw BitReader.OutOfRange() }
            next = (last + delta + 256) % 256
            last = next == 0 ? last : next
        }
    }
}

/// ITU-T H.265 §7.3.2.2 `seq_parameter_set_rbsp()`: the conformance-window-cropped picture size.
public struct HEVCSPS: Sendable, Hashable {
    public var dimensions: VideoDimensions

    /// Parses one SPS NAL unit (including its two-byte NAL header).
    public init?(nal: [UInt8]) {
        guard nal.count >= 4, (nal[0] >> 1) & 0x3F == 33 else { return nil }
        var reader = BitReader(BitReader.rbsp(fromNAL: nal.dropFirst(2)))
        do {
            try reader.skip(4)  // sps_video_parameter_set_id
            let maxSubLayersMinus1 = Int(try reader.bits(3))
            try reader.skip(1)  // sps_temporal_id_nesting_flag
            // profile_tier_level(1, maxSubLayersMinus1), §7.3.3
            try reader.skip(96)
            var profilePresent: [Bool] = []
            var levelPresent: [Bool] = []
            for _ in 0..<maxSubLayersMinus1 {
                profilePresent.append(try reader.flag())
                levelPresent.append(try reader.flag())
            }
            if maxSubLayersMinus1 > 0 { try reader.skip(2 * (8 - maxSubLayersMinus1)) }
            for index in 0..<maxSubLayersMinus1 {
                if profilePresent[index] { try reader.skip(88) }
                if levelPresent[index] { try reader.skip(8) }
            }
            _ = try reader.ue()  // sps_seq_parameter_set_id
            let chromaFormatIDC = try reader.ue()
            if chromaFormatIDC == 3 { _ = try reader.flag() }
            let width = Int(try reader.ue())
            let height = Int(try reader.ue())
            var crop = (left: 0, right: 0, top: 0, bottom: 0)
            if try reader.flag() {
                crop = (Int(try reader.ue()), Int(try reader.ue()), Int(try reader.ue()), Int(try reader.ue()))
            }
            let subWidthC = chromaFormatIDC == 1 || chromaFormatIDC == 2 ? 2 : 1
            let subHeightC = chromaFormatIDC == 1 ? 2 : 1
            let w = width - subWidthC * (crop.left + crop.right)
            let h = height - subHeightC * (crop.top + crop.bottom)
            guard let dimensions = VideoDimensions(plausibleWidth: w, height: h) else { return nil }
            self.dimensions = dimensions
        } catch {
            return nil
        }
    }
}

/// AV1 §5.5 `sequence_header_obu()`: `max_frame_width_minus_1` / `max_frame_height_minus_1`.
public struct AV1SequenceHeader: Sendable, Hashable {
    public var dimensions: VideoDimensions

    /// Parses the payload of a sequence header OBU (without the OBU header).
    public init?(payload: [UInt8]) {
        var reader = BitReader(payload)
        do {
            try reader.skip(3)  // seq_profile
            try reader.skip(1)  // still_picture
            let reduced = try reader.flag()
            if reduced {
                try reader.skip(5)
            } else {
                var decoderModelInfoPresent = false
                var bufferDelayLength = 0
                if try reader.flag() {  // timing_info_present_flag
                    try reader.skip(64)
                    if try reader.flag() {  // equal_picture_interval → uvlc()
                        var zeros = 0
                        while try reader.bit() == 0 { zeros += 1; if zeros >= 32 { break } }
                        if zeros < 32 { try reader.skip(zeros) }
                    }
                    decoderModelInfoPresent = try reader.flag()
                    if decoderModelInfoPresent {
                        bufferDelayLength = Int(try reader.bits(5)) + 1
                        try reader.skip(32 + 5 + 5)
                    }
                }
                let initialDisplayDelayPresent = try reader.flag()
                let operatingPoints = Int(try reader.bits(5)) + 1
                for _ in 0..<operatingPoints {
                    try reader.skip(12)
                    let level = try reader.bits(5)
                    if level > 7 { try reader.skip(1) }
                    if decoderModelInfoPresent, try reader.flag() {
                        try reader.skip(2 * bufferDelayLength + 1)
                    }
                    if initialDisplayDelayPresent, try reader.flag() { try reader.skip(4) }
                }
            }
            let widthBits = Int(try reader.bits(4)) + 1
            let heightBits = Int(try reader.bits(4)) + 1
            let width = Int(try reader.bits(widthBits)) + 1
            let height = Int(try reader.bits(heightBits)) + 1
            guard let dimensions = VideoDimensions(plausibleWidth: width, height: height) else { return nil }
            self.dimensions = dimensions
        } catch {
            return nil
        }
    }
}
