import MediaCore

/// What the packager and the multivariant playlist need to know about one track, derived purely
/// from its FLV/ISO configuration record.
public struct CodecDescription: Sendable, Hashable {
    /// RFC 6381 `CODECS` value for `EXT-X-STREAM-INF` (RFC 8216bis §4.4.6.2).
    public var codecsString: String
    public var dimensions: VideoDimensions?
    public var sampleRate: Int?
    public var channels: Int?

    /// Describes `config`, or nil when its configuration record is malformed.
    public init?(_ config: TrackConfig) {
        let bytes = config.extradata
        switch config.codec {
        case .h264:
            guard let avcC = AVCDecoderConfiguration(bytes) else { return nil }
            codecsString = avcC.codecsString
            dimensions = avcC.sps.first.flatMap { H264SPS(nal: $0)?.dimensions }
        case .hevc:
            guard let hvcC = HEVCDecoderConfiguration(bytes) else { return nil }
            codecsString = hvcC.codecsString
            dimensions = hvcC.sps.flatMap { HEVCSPS(nal: $0)?.dimensions }
        case .av1:
            guard let av1C = AV1CodecConfiguration(bytes) else { return nil }
            codecsString = av1C.codecsString
            dimensions = av1C.sequenceHeaderPayload.flatMap { AV1SequenceHeader(payload: $0)?.dimensions }
        case .aac:
            guard let asc = AudioSpecificConfig(bytes) else { return nil }
            codecsString = "mp4a.40.\(asc.audioObjectType)"
            sampleRate = asc.sampleRate
            channels = asc.channels
        }
    }
}

/// ISO/IEC 14496-15 §5.3.3.1 AVCDecoderConfigurationRecord (`avcC`).
struct AVCDecoderConfiguration {
    var profile: UInt8
    var compatibility: UInt8
    var level: UInt8
    var sps: [[UInt8]]
    var pps: [[UInt8]]

    init?(_ bytes: [UInt8]) {
        guard bytes.count >= 7, bytes[0] == 1 else { return nil }
        profile = bytes[1]
        compatibility = bytes[2]
        level = bytes[3]
        var offset = 6
        func readList(count: Int) -> [[UInt8]]? {
            var list: [[UInt8]] = []
            for _ in 0..<count {
                guard offset + 2 <= bytes.count else { return nil }
                let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
                offset += 2
                guard offset + length <= bytes.count else { return nil }
                list.append(Array(bytes[offset..<offset + length]))
                offset += length
            }
            return list
        }
        offset = 6
        guard let sps = readList(count: Int(bytes[5] & 0x1F)) else { return nil }
        self.sps = sps
        guard offset < bytes.count else { return nil }
        let ppsCount = Int(bytes[offset])
        offset += 1
        guard let pps = readList(count: ppsCount) else { return nil }
        self.pps = pps
    }

    /// `avc1.PPCCLL`: profile_idc, constraint flags and level_idc in hex (RFC 6381 §3.3).
    var codecsString: String { "avc1." + hex2(profile) + hex2(compatibility) + hex2(level) }
}

/// ISO/IEC 14496-15 §8.3.3.1 HEVCDecoderConfigurationRecord (`hvcC`).
struct HEVCDecoderConfiguration {
    var profileSpace: UInt8
    var tierFlag: Bool
    var profileIDC: UInt8
    var compatibilityFlags: UInt32
    var constraintFlags: [UInt8]
    var levelIDC: UInt8
    var nalArrays: [(type: UInt8, units: [[UInt8]])]

    init?(_ bytes: [UInt8]) {
        guard bytes.count >= 23, bytes[0] == 1 else { return nil }
        profileSpace = bytes[1] >> 6
        tierFlag = bytes[1] & 0x20 != 0
        profileIDC = bytes[1] & 0x1F
        compatibilityFlags = UInt32(bytes[2]) << 24 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 8 | UInt32(bytes[5])
        constraintFlags = Array(bytes[6..<12])
        levelIDC = bytes[12]
        var arrays: [(type: UInt8, units: [[UInt8]])] = []
        var offset = 23
        for _ in 0..<Int(bytes[22]) {
            guard offset + 3 <= bytes.count else { return nil }
            let type = bytes[offset] & 0x3F
            let count = Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            offset += 3
            var units: [[UInt8]] = []
            for _ in 0..<count {
                guard offset + 2 <= bytes.count else { return nil }
                let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
                offset += 2
                guard offset + length <= bytes.count else { return nil }
                units.append(Array(bytes[offset..<offset + length]))
                offset += length
            }
            arrays.append((type, units))
        }
        nalArrays = arrays
    }

    var sps: [UInt8]? { nalArrays.first { $0.type == 33 }?.units.first }

    /// ISO/IEC 14496-15 Annex E.3: `hvc1.[A-C]profile.compat(reversed, hex).{L|H}level.constraints`.
    var codecsString: String {
        var string = "hvc1."
        if profileSpace > 0 { string += String(UnicodeScalar(UInt8(64) + profileSpace)) }
        string += "\(profileIDC)."
        var reversed: UInt32 = 0
        for bit in 0..<32 where compatibilityFlags & (1 << UInt32(bit)) != 0 {
            reversed |= 1 << UInt32(31 - bit)
        }
        string += String(reversed, radix: 16, uppercase: true)
        string += ".\(tierFlag ? "H" : "L")\(levelIDC)"
        var constraints = constraintFlags
        while let last = constraints.last, last == 0 { constraints.removeLast() }
        for byte in constraints { string += "." + String(byte, radix: 16, uppercase: true) }
        return string
    }
}

/// AV1 Codec ISOBMFF binding §2.3 AV1CodecConfigurationRecord (`av1C`).
struct AV1CodecConfiguration {
    var profile: UInt8
    var level: UInt8
    var tier: UInt8
    var bitDepth: Int
    var configOBUs: [UInt8]

    init?(_ bytes: [UInt8]) {
        guard bytes.count >= 4, bytes[0] == 0x81 else { return nil }
        profile = bytes[1] >> 5
        level = bytes[1] & 0x1F
        tier = bytes[2] >> 7
        let highBitDepth = bytes[2] & 0x40 != 0
        let twelveBit = bytes[2] & 0x20 != 0
        bitDepth = twelveBit ? 12 : (highBitDepth ? 10 : 8)
        configOBUs = Array(bytes[4...])
    }

    /// AV1 ISOBMFF binding "Codecs Parameter String": `av01.P.LLT.DD`.
    var codecsString: String {
        let level = self.level < 10 ? "0\(self.level)" : "\(self.level)"
        let depth = bitDepth < 10 ? "0\(bitDepth)" : "\(bitDepth)"
        return "av01.\(profile).\(level)\(tier == 1 ? "H" : "M").\(depth)"
    }

    /// The payload of the first sequence header OBU (type 1) among the config OBUs.
    var sequenceHeaderPayload: [UInt8]? {
        var offset = 0
        let bytes = configOBUs
        while offset < bytes.count {
            let header = bytes[offset]
            let type = (header >> 3) & 0x0F
            let hasExtension = header & 0x04 != 0
            let hasSize = header & 0x02 != 0
            offset += hasExtension ? 2 : 1
            guard offset <= bytes.count else { return nil }
            var size = bytes.count - offset
            if hasSize {
                // AV1 §4.10.5 leb128(): at most 8 bytes, and the value must fit in 32 bits.
                var value: UInt64 = 0
                var terminated = false
                for index in 0..<8 {
                    guard offset < bytes.count else { return nil }
                    let byte = bytes[offset]
                    offset += 1
                    value |= UInt64(byte & 0x7F) << (7 * UInt64(index))
                    if byte & 0x80 == 0 {
                        terminated = true
                        break
                    }
                }
                guard terminated, value <= UInt64(UInt32.max) else { return nil }
                size = Int(value)
            }
            guard size <= bytes.count - offset else { return nil }
            if type == 1 { return Array(bytes[offset..<offset + size]) }
            offset += size
        }
        return nil
    }
}

/// ISO/IEC 14496-3 §1.6.2.1 AudioSpecificConfig: object type, sampling rate, channel configuration.
struct AudioSpecificConfig {
    static let sampleRates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]

    var audioObjectType: Int
    var sampleRate: Int
    var channels: Int

    init?(_ bytes: [UInt8]) {
        var reader = BitReader(bytes)
        do {
            var objectType = Int(try reader.bits(5))
            if objectType == 31 { objectType = 32 + Int(try reader.bits(6)) }
            let frequencyIndex = Int(try reader.bits(4))
            if frequencyIndex == 15 {
                sampleRate = Int(try reader.bits(24))
            } else {
                guard frequencyIndex < Self.sampleRates.count else { return nil }
                sampleRate = Self.sampleRates[frequencyIndex]
            }
            let channelConfiguration = Int(try reader.bits(4))
            channels = channelConfiguration == 7 ? 8 : channelConfiguration
            // An explicit 24-bit rate can say 16 MHz: keep to rates a decoder (and libav's 32-bit
            // time base) can take.
            guard objectType > 0, StreamMetadata.Plausible.sampleRate.contains(sampleRate) else { return nil }
            audioObjectType = objectType
        } catch {
            return nil
        }
    }
}

private func hex2(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
}
