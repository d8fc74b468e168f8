import CLibAV
import CoreMetrics
import FuzzSupport
@testable import HLS
import Logging
import MediaCore
import NIOCore

/// The HLS packager with libav in the loop: a script of stream events (publish start/stop, metadata
/// with any numbers, codec configurations — valid ones from the fixtures or fuzzed bytes — and
/// packets with fuzzed timestamps, flags and payloads) is fed to `HLSPackager` as the stream's sink
/// would, and between events the playlists are rendered, parts and segments looked up, and now and
/// then the thumbnailer decodes the latest keyframe (libavcodec + libswscale + the JPEG encoder).
///
/// Invariants besides "no trap, no sanitizer report": every rendered playlist starts with
/// `#EXTM3U`; `EXT-X-TARGETDURATION` never changes once set.
@_cdecl("HLSPackagerFuzzer_main")
public func hlsPackagerFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
    // libav says what it thinks of every broken frame; millions of runs would fill the disk.
    av_log_set_level(AV_LOG_QUIET)
    return runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

/// Valid configuration records taken from the committed fixtures (h264-aac-2s-gop.flv,
/// ertmp-hevc-aac.rtmp without its SEI array, ertmp-av1-aac.rtmp).
enum ValidConfig {
    static let avcC = hex("014d401effe10018674d401eeca05017fcb80880000003008000001e078b16cb01000468efbc80")
    static let audioSpecificConfig = hex("119056e500")
    static let hvcC = hex(
        "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003003c959009a10001002b42010101600000030090000003000003003ca00a080c1f3e595912930bc05a020000030002000003001e10a2000100064401c073c189"
    )
    static let av1C = hex("81000c000a0b000000043cfecc02f80040")

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }
}

let noMetrics = HLSMetrics(factory: NOOPMetricsHandler.instance)
let quietLogger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

func fuzzOne(_ bytes: [UInt8]) {
    var input = FuzzInput(bytes)
    let variant = input.pick(HLSVariant.allCases)
    let configuration = HLSConfiguration(
        variant: variant, targetSegmentDuration: input.pick([2, 1, 0.5]), partTargetDuration: input.pick([0.5, 0.2]),
        windowSegments: 3, retainAfterEnd: .zero, trackDiscoveryTimeoutMilliseconds: 1000, segmentsInMemoryFiles: input.bool())
    let store = SegmentStore(configuration: configuration)
    var wallClock: Int64 = 1_765_000_000_000
    let clockBox = WallClock(wallClock)
    let packager = HLSPackager(configuration: configuration, store: store, metrics: noMetrics, wallClock: { clockBox.now }, logger: quietLogger)
    var targetDuration: Int?
    var dts: [TrackKind: Int64] = [.video: 0, .audio: 0]
    var latestKeyframe: (TrackConfig, ByteBuffer)?
    var videoConfig: TrackConfig?
    var steps = 0
    while !input.isEmpty && steps < 400 {
        steps += 1
        switch input.byte() % 12 {
        case 0:
            packager.handle(.publishStarted(session: input.int(in: 1...3)))
        case 1:
            packager.handle(.metadata(StreamMetadata(
                width: input.bool() ? input.int(in: Int.min...Int.max) : nil,
                height: input.bool() ? input.int(in: Int.min...Int.max) : nil,
                frameRate: input.bool() ? input.anyDouble() : nil,
                videoBitrateKbps: input.bool() ? input.anyDouble() : nil,
                audioBitrateKbps: input.bool() ? input.anyDouble() : nil,
                audioSampleRate: input.bool() ? input.int(in: Int.min...Int.max) : nil,
                audioChannels: input.bool() ? input.int(in: Int.min...Int.max) : nil)))
        case 2:
            let config: TrackConfig
            switch input.byte() % 6 {
            case 0: config = TrackConfig(codec: .h264, extradata: ValidConfig.avcC)
            case 1: config = TrackConfig(codec: .aac, extradata: ValidConfig.audioSpecificConfig)
            case 2: config = TrackConfig(codec: .hevc, extradata: ValidConfig.hvcC)
            case 3: config = TrackConfig(codec: .av1, extradata: ValidConfig.av1C)
            default: config = TrackConfig(codec: input.pick([.h264, .hevc, .av1, .aac]), extradata: input.chunk(maximum: 512))
            }
            if config.kind == .video { videoConfig = config }
            packager.handle(.config(config))
        case 3, 4, 5, 6, 7:
            let kind: TrackKind = input.bool() ? .video : .audio
            // Mostly small forward steps as a real encoder makes; sometimes anything at all.
            let step: Int64 = input.byte() < 240 ? Int64(input.int(in: -50...2100)) : Int64(input.int(in: -(1 << 40)...(1 << 40)))
            let next = min(max(dts[kind, default: 0] + step, MediaPacket.timestampRange.lowerBound), MediaPacket.timestampRange.upperBound)
            dts[kind] = next
            let cts = Int64(input.int(in: -(1 << 23)...((1 << 23) - 1)))
            let isKeyframe = kind == .audio || input.byte() < 40
            let payload = ByteBuffer(bytes: input.chunk(maximum: kind == .video ? 65535 : 4096))
            let codec: MediaCodec = kind == .audio ? .aac : (videoConfig?.codec ?? .h264)
            packager.handle(.packet(MediaPacket(codec: codec, dts: next, pts: next + cts, isKeyframe: isKeyframe, payload: payload)))
            if kind == .video, isKeyframe, let videoConfig { latestKeyframe = (videoConfig, payload) }
        case 8:
            packager.handle(.publishStopped)
        case 9:
            wallClock += Int64(input.int(in: 0...10_000))
            clockBox.now = wallClock
            render(store, targetDuration: &targetDuration)
        case 10:
            let msn = input.int(in: -1...40)
            let part = input.int(in: -1...10)
            _ = store.partBody(msn: msn, index: part)?.bytes
            _ = store.segmentBody(msn: msn)?.bytes
            _ = store.isSatisfied(.part(msn, part))
            _ = store.isSatisfied(.segment(msn))
            _ = store.initSection(input.int(in: -1...4))
        default:
            // libav decodes what the publisher sent as a keyframe (the thumbnail of a room).
            if input.byte() < 32, let (config, keyframe) = latestKeyframe {
                _ = Thumbnailer.makeJPEG(config: config, keyframe: keyframe, width: 64)
            }
        }
    }
    packager.finish()
    render(store, targetDuration: &targetDuration)
}

final class WallClock: @unchecked Sendable {
    var now: Int64
    init(_ now: Int64) { self.now = now }
}

func render(_ store: SegmentStore, targetDuration: inout Int?) {
    if let media = store.mediaPlaylist() {
        let text = String(buffer: media)
        fuzzCheck(text.hasPrefix("#EXTM3U\n"), "media playlist without #EXTM3U")
        if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("#EXT-X-TARGETDURATION:") }) {
            let value = Int(line.dropFirst("#EXT-X-TARGETDURATION:".count))
            if let targetDuration { fuzzCheck(value == targetDuration, "EXT-X-TARGETDURATION changed") }
            targetDuration = value
        }
    }
    if let multivariant = store.multivariantPlaylist() {
        fuzzCheck(String(buffer: multivariant).hasPrefix("#EXTM3U\n"), "multivariant playlist without #EXTM3U")
    }
}
