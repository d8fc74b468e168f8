import FuzzSupport
import HLS
@testable import Ingest
import MediaCore
import NIOCore

/// FLV tag demuxing and every codec-configuration parser a publisher's bytes reach.
///
/// | mode (byte % 4) | what is fed |
/// |---|---|
/// | 0 | a sequence of FLV audio/video tag bodies (`FLVMediaDemuxer`, legacy and Enhanced RTMP), each configuration it emits described by `CodecDescription` (avcC + H.264 SPS, hvcC + HEVC SPS, av1C + AV1 sequence header, AudioSpecificConfig) |
/// | 1 | `CodecDescription` of a configuration record of a fuzzed codec |
/// | 2 | the SPS / sequence-header parsers on their own (`H264SPS`, `HEVCSPS`, `AV1SequenceHeader`) |
/// | 3 | `onMetaData` → `StreamMetadata` (AMF0-decoded first) |
///
/// Invariants: packet timestamps stay in `MediaPacket.timestampRange`; a described picture size is
/// within `StreamMetadata.Plausible.dimension`; metadata values within their plausible ranges.
@_cdecl("FLVCodecFuzzer_main")
public func flvCodecFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    var input = FuzzInput(Array(bytes.dropFirst()))
    switch mode % 4 {
    case 0: fuzzTags(&input)
    case 1:
        let codec = input.pick([MediaCodec.h264, .hevc, .av1, .aac])
        describe(TrackConfig(codec: codec, extradata: input.rest()))
    case 2:
        let which = input.byte() % 3
        let payload = input.rest()
        switch which {
        case 0: checkDimensions(H264SPS(nal: payload)?.dimensions)
        case 1: checkDimensions(HEVCSPS(nal: payload)?.dimensions)
        default: checkDimensions(AV1SequenceHeader(payload: payload)?.dimensions)
        }
    default:
        fuzzMetadata(input.rest())
    }
}

/// Tags as `[kind][timestamp u32][length u16][body]`, repeated.
func fuzzTags(_ input: inout FuzzInput) {
    var demuxer = FLVMediaDemuxer()
    while !input.isEmpty {
        let isVideo = input.bool()
        let timestamp = input.uint32()
        let body = ByteBuffer(bytes: input.chunk(maximum: 65535))
        let events: [StreamEvent]
        do {
            events = isVideo ? try demuxer.video(timestamp: timestamp, payload: body) : try demuxer.audio(timestamp: timestamp, payload: body)
        } catch {
            continue  // a malformed tag closes the connection in the server; go on with the next
        }
        for event in events {
            switch event {
            case .config(let config): describe(config)
            case .packet(let packet):
                fuzzCheck(MediaPacket.timestampRange.contains(packet.dts), "dts \(packet.dts)")
            default: break
            }
        }
        _ = demuxer.takeNotices()
    }
}

func describe(_ config: TrackConfig) {
    guard let description = CodecDescription(config) else { return }
    checkDimensions(description.dimensions)
    fuzzCheck(!description.codecsString.isEmpty, "empty CODECS")
    if let rate = description.sampleRate { fuzzCheck(rate > 0 && rate < 1 << 24, "sample rate \(rate)") }
}

func checkDimensions(_ dimensions: VideoDimensions?) {
    guard let dimensions else { return }
    fuzzCheck(StreamMetadata.Plausible.dimension.contains(dimensions.width), "width \(dimensions.width)")
    fuzzCheck(StreamMetadata.Plausible.dimension.contains(dimensions.height), "height \(dimensions.height)")
}

func fuzzMetadata(_ bytes: [UInt8]) {
    guard let values = try? AMF0Decoder().decodeAll(ByteBuffer(bytes: bytes)) else { return }
    for value in values {
        guard let object = value.objectValue else { continue }
        let metadata = StreamMetadata.parse(onMetaData: object).metadata
        if let width = metadata.width { fuzzCheck(StreamMetadata.Plausible.dimension.contains(width), "width \(width)") }
        if let rate = metadata.frameRate { fuzzCheck(StreamMetadata.Plausible.frameRate.contains(rate), "frame rate \(rate)") }
        if let rate = metadata.videoBitrateKbps { fuzzCheck(StreamMetadata.Plausible.bitrateKbps.contains(rate), "bitrate \(rate)") }
    }
}
