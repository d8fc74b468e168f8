import NIOCore

/// The kind of an elementary stream inside a live stream.
public enum TrackKind: String, Sendable, Hashable, CustomStringConvertible {
    case video
    case audio

    public var description: String { rawValue }
}

/// Codecs LiveHub carries end to end (RTMP legacy + Enhanced RTMP v2 → HLS).
public enum MediaCodec: String, Sendable, Hashable, CustomStringConvertible {
    case h264
    case hevc
    case av1
    case aac

    public var kind: TrackKind {
        switch self {
        case .h264, .hevc, .av1: return .video
        case .aac: return .audio
        }
    }

    public var description: String { rawValue }
}

/// A codec configuration ("sequence header"): what a decoder needs before the first frame.
///
/// `extradata` is the ISO BMFF configuration record exactly as it arrives in FLV:
/// `AVCDecoderConfigurationRecord` (avcC) for H.264, `HEVCDecoderConfigurationRecord` (hvcC),
/// `AV1CodecConfigurationRecord` (av1C), or the `AudioSpecificConfig` for AAC.
public struct TrackConfig: Sendable, Hashable {
    public var codec: MediaCodec
    public var extradata: [UInt8]

    public var kind: TrackKind { codec.kind }

    public init(codec: MediaCodec, extradata: [UInt8]) {
        self.codec = codec
        self.extradata = extradata
    }
}

/// One coded access unit (a video frame or an audio frame), codec-neutral.
///
/// Timestamps are milliseconds on a 64-bit timeline that the producer has already unwrapped
/// (RTMP's u32 millisecond clock wraps after ~49.7 days; see PROTOCOLS.md §1).
/// Video payloads are length-prefixed NAL units (AVCC/HVCC framing, 4-byte lengths) or AV1 OBUs,
/// exactly as FLV carries them; AAC payloads are raw frames without ADTS.
public struct MediaPacket: Sendable {
    /// Producers keep `dts` within this range (±2^53 ms), so that adding a composition offset,
    /// a duration or a rebasing offset of the same order can never overflow `Int64`.
    public static let timestampRange: ClosedRange<Int64> = -(1 << 53)...(1 << 53)

    public var codec: MediaCodec
    /// Decode timestamp in milliseconds.
    public var dts: Int64
    /// Presentation timestamp in milliseconds (`dts + composition offset`).
    public var pts: Int64
    /// True for a random-access point (an IDR / key frame); always true for audio.
    public var isKeyframe: Bool
    public var payload: ByteBuffer

    public var kind: TrackKind { codec.kind }

    public init(codec: MediaCodec, dts: Int64, pts: Int64, isKeyframe: Bool, payload: ByteBuffer) {
        self.codec = codec
        self.dts = dts
        self.pts = pts
        self.isKeyframe = isKeyframe
        self.payload = payload
    }
}

/// What the publisher announced in `@setDataFrame`/`onMetaData` (all optional: encoders differ).
///
/// Metadata is advisory: LiveHub derives picture size from the sequence header and frame rate
/// from the timestamps, and uses these values only where the stream itself does not say. A value
/// outside its `Plausible` range is treated as absent where the metadata enters (the ingest says
/// so in one log line), so nothing downstream ever divides by a frame rate of 0 or converts a
/// width of 1e300 to an integer.
public struct StreamMetadata: Sendable, Hashable {
    /// The ranges a value must lie in to be kept.
    public enum Plausible {
        /// Pixels per side: 16384 covers every H.264/HEVC/AV1 level in use (8K is 7680).
        public static let dimension = 1...16384
        /// Frames per second.
        public static let frameRate: ClosedRange<Double> = 1...1000
        /// kbit/s (10 Gbit/s).
        public static let bitrateKbps: ClosedRange<Double> = 0...10_000_000
        /// Hz (AAC allows up to 96 kHz; 768 kHz is the largest rate any codec defines).
        public static let sampleRate = 1...768_000
        public static let channels = 1...64
    }

    public var width: Int?
    public var height: Int?
    public var frameRate: Double?
    public var videoBitrateKbps: Double?
    public var audioBitrateKbps: Double?
    public var audioSampleRate: Int?
    public var audioChannels: Int?
    public var encoder: String?

    public init(
        width: Int? = nil, height: Int? = nil, frameRate: Double? = nil,
        videoBitrateKbps: Double? = nil, audioBitrateKbps: Double? = nil,
        audioSampleRate: Int? = nil, audioChannels: Int? = nil, encoder: String? = nil
    ) {
        self.width = width
        self.height = height
        self.frameRate = frameRate
        self.videoBitrateKbps = videoBitrateKbps
        self.audioBitrateKbps = audioBitrateKbps
        self.audioSampleRate = audioSampleRate
        self.audioChannels = audioChannels
        self.encoder = encoder
    }
}

/// Everything that flows from a publisher to the readers of a live stream, in order.
public enum StreamEvent: Sendable {
    /// A publisher (re)started on this stream. `session` counts publishes of the same stream from 1;
    /// a value above 1 means a reconnect or takeover, so readers insert a discontinuity.
    case publishStarted(session: Int)
    case metadata(StreamMetadata)
    /// A sequence header; sent again whenever it changes (and after every `publishStarted`).
    case config(TrackConfig)
    case packet(MediaPacket)
    /// The publisher went away (socket closed, idle, or taken over). The stream may resume.
    case publishStopped
    /// The stream is over for good (the room ended). No event follows.
    case ended
}
