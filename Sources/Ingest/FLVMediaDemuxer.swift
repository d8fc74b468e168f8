import MediaCore
import NIOCore

/// Why an FLV audio/video body could not be read. Closes the connection.
public enum FLVDemuxError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated(String)

    public var description: String {
        switch self {
        case .truncated(let what): return "FLV tag truncated: \(what)"
        }
    }
}

/// Unwraps RTMP's u32 millisecond clock onto a 64-bit timeline (PROTOCOLS.md §1: wraps after
/// ~49.7 days). Each step is taken as the signed 32-bit difference from the previous value, so
/// a wrap from 2^32-1 to 0 moves forward by 1 ms and small backward steps stay small.
///
/// The result stays within `MediaPacket.timestampRange` (±2^53 ms, ~285,000 years): a publisher
/// stepping by 2^31 ms billions of times cannot carry the timeline to an overflow, and everything
/// downstream may add a composition offset or a duration without checking.
public struct RTMPTimestampUnwrapper: Sendable, Hashable {
    private var last: UInt32?
    private var unwrapped: Int64 = 0

    public init() {}

    public mutating func unwrap(_ timestamp: UInt32) -> Int64 {
        if let last {
            let step = Int64(Int32(bitPattern: timestamp &- last))
            unwrapped = min(max(unwrapped + step, MediaPacket.timestampRange.lowerBound), MediaPacket.timestampRange.upperBound)
        } else {
            unwrapped = Int64(timestamp)
        }
        last = timestamp
        return unwrapped
    }
}

/// FLV AUDIODATA/VIDEODATA bodies (as RTMP audio/video messages carry them) → MediaCore events.
///
/// Handles the legacy tags (FLV spec v10.1 §E.4.2.1 AUDIODATA, §E.4.3.1 VIDEODATA with
/// AVCPacketType and SI24 CompositionTime) and Enhanced RTMP v2 (ExVideoTagHeader /
/// ExAudioTagHeader: FourCC, PacketType, ModEx, Multitrack with track 0 only).
/// Payloads are slices of the message buffer; nothing is copied.
public struct FLVMediaDemuxer: Sendable {
    private var videoClock = RTMPTimestampUnwrapper()
    private var audioClock = RTMPTimestampUnwrapper()
    private var lastConfigs: [TrackKind: TrackConfig] = [:]
    private var noticed: Set<String> = []
    private var pendingNotices: [String] = []

    public init() {}

    /// Things worth one log line (unsupported codecs, ignored extra tracks), each said once.
    public mutating func takeNotices() -> [String] {
        defer { pendingNotices.removeAll() }
        return pendingNotices
    }

    /// Each distinct notice is said once; at most 32 are remembered so that a peer cycling
    /// through FourCCs cannot grow this set (or the log) without bound.
    private mutating func notice(_ text: String) {
        guard noticed.count < 32 else { return }
        if noticed.insert(text).inserted { pendingNotices.append(text) }
    }

    // MARK: - Video

    /// Enhanced RTMP v2 VideoPacketType.
    enum VideoPacketType: UInt8 {
        case sequenceStart = 0, codedFrames = 1, sequenceEnd = 2, codedFramesX = 3, metadata = 4
        case mpeg2TSSequenceStart = 5, multitrack = 6, modEx = 7
    }

    public mutating func video(timestamp: UInt32, payload: ByteBuffer) throws(FLVDemuxError) -> [StreamEvent] {
        var body = payload
        guard let first = body.readInteger(as: UInt8.self) else { return [] }
        if first & 0x80 != 0 {
            return try enhancedVideo(first: first, timestamp: timestamp, body: &body)
        }
        // FLV §E.4.3.1 VIDEODATA: FrameType(4) | CodecID(4).
        let frameType = first >> 4
        let codecId = first & 0x0F
        if frameType == 5 { return [] }  // video info/command frame
        let codec: MediaCodec
        switch codecId {
        case 7: codec = .h264
        case 12: codec = .hevc  // the widespread pre-E-RTMP HEVC-in-FLV extension
        default:
            notice("ignoring legacy video codec id \(codecId)")
            return []
        }
        // AVCVIDEOPACKET: AVCPacketType u8, CompositionTime SI24.
        guard let packetType = body.readInteger(as: UInt8.self), body.readableBytes >= 3 else {
            throw .truncated("AVC packet header")
        }
        let cts = body.readSI24()
        switch packetType {
        case 0:
            return config(TrackConfig(codec: codec, extradata: Array(body.readableBytesView)))
        case 1:
            let dts = videoClock.unwrap(timestamp)
            return [.packet(MediaPacket(codec: codec, dts: dts, pts: dts + Int64(cts), isKeyframe: frameType == 1, payload: body))]
        default:
            return []  // 2 = end of sequence
        }
    }

    private mutating func enhancedVideo(first: UInt8, timestamp: UInt32, body: inout ByteBuffer) throws(FLVDemuxError) -> [StreamEvent] {
        // Enhanced RTMP v2 ExVideoTagHeader: IsExHeader(1) | FrameType(3) | PacketType(4).
        let frameType = (first >> 4) & 0x07
        var packetTypeRaw = first & 0x0F
        // ModEx: [size-1 u8 (u16 if 255)] data, then ModExType(4) | PacketType(4), repeatable.
        while packetTypeRaw == VideoPacketType.modEx.rawValue {
            try skipModEx(&body, packetType: &packetTypeRaw)
        }
        if frameType == 5 && packetTypeRaw != VideoPacketType.metadata.rawValue {
            return []  // VideoCommand (seek start/end): no media
        }
        var multitrackType: UInt8?
        var fourCC: UInt32 = 0
        if packetTypeRaw == VideoPacketType.multitrack.rawValue {
            guard let byte = body.readInteger(as: UInt8.self) else { throw .truncated("multitrack header") }
            multitrackType = byte >> 4
            packetTypeRaw = byte & 0x0F
            if multitrackType != 2 {
                guard let value = body.readInteger(as: UInt32.self) else { throw .truncated("FourCC") }
                fourCC = value
            }
        } else {
            guard let value = body.readInteger(as: UInt32.self) else { throw .truncated("FourCC") }
            fourCC = value
        }
        guard let packetType = VideoPacketType(rawValue: packetTypeRaw) else {
            notice("ignoring Enhanced RTMP video packet type \(packetTypeRaw)")
            return []
        }
        var events: [StreamEvent] = []
        for track in try splitTracks(&body, multitrackType: multitrackType, fourCC: fourCC, kind: "video") {
            events += try enhancedVideoBody(
                frameType: frameType, packetType: packetType, fourCC: track.fourCC, timestamp: timestamp, body: track.body)
        }
        return events
    }

    private mutating func enhancedVideoBody(
        frameType: UInt8, packetType: VideoPacketType, fourCC: UInt32, timestamp: UInt32, body: ByteBuffer
    ) throws(FLVDemuxError) -> [StreamEvent] {
        var body = body
        let codec: MediaCodec
        switch fourCC {
        case FourCC.avc1: codec = .h264
        case FourCC.hvc1: codec = .hevc
        case FourCC.av01: codec = .av1
        default:
            notice("ignoring Enhanced RTMP video FourCC \(FourCC.string(fourCC))")
            return []
        }
        switch packetType {
        case .sequenceStart:
            return config(TrackConfig(codec: codec, extradata: Array(body.readableBytesView)))
        case .codedFrames, .codedFramesX:
            var cts: Int32 = 0
            if packetType == .codedFrames && codec != .av1 {
                guard body.readableBytes >= 3 else { throw .truncated("composition time") }
                cts = body.readSI24()
            }
            let dts = videoClock.unwrap(timestamp)
            return [.packet(MediaPacket(codec: codec, dts: dts, pts: dts + Int64(cts), isKeyframe: frameType == 1, payload: body))]
        case .sequenceEnd, .metadata, .mpeg2TSSequenceStart, .multitrack, .modEx:
            return []
        }
    }

    // MARK: - Audio

    public mutating func audio(timestamp: UInt32, payload: ByteBuffer) throws(FLVDemuxError) -> [StreamEvent] {
        var body = payload
        guard let first = body.readInteger(as: UInt8.self) else { return [] }
        let soundFormat = first >> 4
        switch soundFormat {
        case 10:
            // FLV §E.4.2.2 AACAUDIODATA: AACPacketType 0 = AudioSpecificConfig, 1 = raw frame.
            guard let packetType = body.readInteger(as: UInt8.self) else { throw .truncated("AAC packet type") }
            return aacBody(packetType: packetType, timestamp: timestamp, body: body)
        case 9:
            return try enhancedAudio(first: first, timestamp: timestamp, body: &body)
        default:
            notice("ignoring audio sound format \(soundFormat)")
            return []
        }
    }

    private mutating func aacBody(packetType: UInt8, timestamp: UInt32, body: ByteBuffer) -> [StreamEvent] {
        switch packetType {
        case 0:
            return config(TrackConfig(codec: .aac, extradata: Array(body.readableBytesView)))
        case 1:
            let dts = audioClock.unwrap(timestamp)
            return [.packet(MediaPacket(codec: .aac, dts: dts, pts: dts, isKeyframe: true, payload: body))]
        default:
            return []
        }
    }

    /// Enhanced RTMP v2 ExAudioTagHeader: SoundFormat 9 | AudioPacketType(4), FourCC.
    private mutating func enhancedAudio(first: UInt8, timestamp: UInt32, body: inout ByteBuffer) throws(FLVDemuxError) -> [StreamEvent] {
        var packetType = first & 0x0F
        while packetType == 7 {  // ModEx
            try skipModEx(&body, packetType: &packetType)
        }
        var multitrackType: UInt8?
        var fourCC: UInt32 = 0
        if packetType == 5 {  // Multitrack
            guard let byte = body.readInteger(as: UInt8.self) else { throw .truncated("multitrack header") }
            multitrackType = byte >> 4
            packetType = byte & 0x0F
            if multitrackType != 2 {
                guard let value = body.readInteger(as: UInt32.self) else { throw .truncated("FourCC") }
                fourCC = value
            }
        } else {
            guard let value = body.readInteger(as: UInt32.self) else { throw .truncated("FourCC") }
            fourCC = value
        }
        var events: [StreamEvent] = []
        for track in try splitTracks(&body, multitrackType: multitrackType, fourCC: fourCC, kind: "audio") {
            guard track.fourCC == FourCC.mp4a else {
                notice("ignoring Enhanced RTMP audio FourCC \(FourCC.string(track.fourCC))")
                continue
            }
            // AudioPacketType 0 SequenceStart, 1 CodedFrames; others carry no AAC frames.
            if packetType <= 1 {
                events += aacBody(packetType: packetType, timestamp: timestamp, body: track.body)
            }
        }
        return events
    }

    // MARK: - Shared pieces

    private func skipModEx(_ body: inout ByteBuffer, packetType: inout UInt8) throws(FLVDemuxError) {
        guard let sizeByte = body.readInteger(as: UInt8.self) else { throw .truncated("ModEx size") }
        var size = Int(sizeByte) + 1
        if size == 256 {
            guard let wide = body.readInteger(as: UInt16.self) else { throw .truncated("ModEx size") }
            size = Int(wide) + 1
        }
        guard body.readableBytes > size else { throw .truncated("ModEx data") }
        body.moveReaderIndex(forwardBy: size)
        let byte = body.readInteger(as: UInt8.self)!
        packetType = byte & 0x0F
    }

    struct TrackBody {
        var fourCC: UInt32
        var body: ByteBuffer
    }

    /// Enhanced RTMP v2 multitrack: OneTrack (0), ManyTracks (1), ManyTracksManyCodecs (2).
    /// Only track 0 is returned; other tracks are skipped with one notice.
    private mutating func splitTracks(_ body: inout ByteBuffer, multitrackType: UInt8?, fourCC: UInt32, kind: String) throws(FLVDemuxError) -> [TrackBody] {
        guard let multitrackType else { return [TrackBody(fourCC: fourCC, body: body)] }
        var tracks: [TrackBody] = []
        while body.readableBytes > 0 {
            var trackFourCC = fourCC
            if multitrackType == 2 {
                guard let value = body.readInteger(as: UInt32.self) else { throw .truncated("track FourCC") }
                trackFourCC = value
            }
            guard let trackId = body.readInteger(as: UInt8.self) else { throw .truncated("track id") }
            let trackBody: ByteBuffer
            if multitrackType == 0 {
                trackBody = body.readSlice(length: body.readableBytes)!
            } else {
                guard body.readableBytes >= 3 else { throw .truncated("track size") }
                let size = Int(body.readUInt24())
                guard let slice = body.readSlice(length: size) else { throw .truncated("track body") }
                trackBody = slice
            }
            if trackId == 0 {
                tracks.append(TrackBody(fourCC: trackFourCC, body: trackBody))
            } else {
                notice("ignoring \(kind) track \(trackId) (only track 0 is used)")
            }
        }
        return tracks
    }

    private mutating func config(_ config: TrackConfig) -> [StreamEvent] {
        guard lastConfigs[config.kind] != config else { return [] }
        lastConfigs[config.kind] = config
        return [.config(config)]
    }
}

/// FourCC codes of Enhanced RTMP v2 (big-endian u32 of the ASCII letters).
public enum FourCC {
    public static let avc1: UInt32 = 0x6176_6331
    public static let hvc1: UInt32 = 0x6876_6331
    public static let av01: UInt32 = 0x6176_3031
    public static let vp09: UInt32 = 0x7670_3039
    public static let mp4a: UInt32 = 0x6D70_3461
    public static let opus: UInt32 = 0x4F70_7573

    public static func string(_ value: UInt32) -> String {
        let bytes = [24, 16, 8, 0].map { UInt8((value >> UInt32($0)) & 0xFF) }
        if bytes.allSatisfy({ (0x20...0x7E).contains($0) }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        return "0x" + String(value, radix: 16)
    }
}

extension ByteBuffer {
    mutating func readSI24() -> Int32 {
        let raw = readUInt24()
        return Int32(bitPattern: raw << 8) >> 8
    }

    mutating func readUInt24() -> UInt32 {
        let value = getUInt24(at: readerIndex)
        moveReaderIndex(forwardBy: 3)
        return value
    }
}

extension StreamMetadata {
    /// `@setDataFrame`/`onMetaData` (FLV spec §E.5 onMetaData) → the fields LiveHub uses.
    /// Numbers may arrive as strings from odd encoders; those are ignored. Values outside
    /// `StreamMetadata.Plausible` (a frame rate of 0, a width of 1e300, NaN) are dropped and named in
    /// `ignored` (`field=value`), so the caller can say why in one log line.
    static func parse(onMetaData object: AMF0Object) -> (metadata: StreamMetadata, ignored: [String]) {
        var ignored: [String] = []
        func number(_ names: [String], in range: ClosedRange<Double>) -> Double? {
            for name in names {
                guard let value = object[name]?.numberValue else { continue }
                if value.isFinite, range.contains(value) { return value }
                ignored.append("\(name)=\(value)")
                return nil
            }
            return nil
        }
        func int(_ name: String, in range: ClosedRange<Int>) -> Int? {
            guard let value = number([name], in: Double(range.lowerBound)...Double(range.upperBound)) else { return nil }
            return Int(value.rounded())
        }
        var channels = int("audiochannels", in: Plausible.channels)
        if channels == nil, let stereo = object["stereo"]?.boolValue { channels = stereo ? 2 : 1 }
        let metadata = StreamMetadata(
            width: int("width", in: Plausible.dimension), height: int("height", in: Plausible.dimension),
            frameRate: number(["framerate", "fps"], in: Plausible.frameRate),
            videoBitrateKbps: number(["videodatarate"], in: Plausible.bitrateKbps),
            audioBitrateKbps: number(["audiodatarate"], in: Plausible.bitrateKbps),
            audioSampleRate: int("audiosamplerate", in: Plausible.sampleRate), audioChannels: channels,
            encoder: object["encoder"]?.stringValue.map { String($0.prefix(256)) })
        return (metadata, ignored)
    }

    init(onMetaData object: AMF0Object) {
        self = Self.parse(onMetaData: object).metadata
    }
}
