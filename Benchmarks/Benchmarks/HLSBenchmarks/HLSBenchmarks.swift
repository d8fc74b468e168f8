import Benchmark
import Foundation
import HLS
import Ingest
import Logging
import MediaCore
import Metrics
import NIOCore

// The HLS packager: StreamEvents in → segmenter → libav muxer (fMP4 or MPEG-TS, in memory) →
// SegmentStore. `HLSService` attaches the packager as the LiveStream's sink, so `publish` runs it
// synchronously on the calling thread, exactly as on the RTMP event loop.
//
// Input: the ffmpeg RTMP capture (media-fixtures/captures/ffmpeg-h264-aac.rtmp, 6 s of 640x360 H.264
// 250 kbit/s + AAC 48 kHz, 2 s GOP) demuxed once by the real ingest (RTMPIngestConnection), then
// repeated `loops` times back to back with shifted timestamps into one 30 s publish session.

/// Repository root (this file is Benchmarks/Benchmarks/HLSBenchmarks/HLSBenchmarks.swift).
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

struct Publish {
    var header: [StreamEvent]
    var packets: [MediaPacket]
    var mediaSeconds: Double
}

/// Replays the capture through the ingest and returns what a reader of the LiveStream would get.
func demuxCapture() throws -> (header: [StreamEvent], packets: [MediaPacket]) {
    let url = repository.appendingPathComponent("media-fixtures/captures/ffmpeg-h264-aac.rtmp")
    let bytes = [UInt8](try Data(contentsOf: url))
    var connection = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 7))
    var header: [StreamEvent] = []
    var packets: [MediaPacket] = []
    func handle(_ actions: [RTMPIngestConnection.Action], _ connection: inout RTMPIngestConnection) -> Bool {
        var resume = false
        for action in actions {
            switch action {
            case .authorize:
                _ = handle(connection.authorizationAccepted(), &connection)
                resume = true
            case .emit(.packet(let packet)): packets.append(packet)
            case .emit(let event): header.append(event)
            default: break
            }
        }
        return resume
    }
    for start in stride(from: 0, to: bytes.count, by: 4096) {
        connection.receive(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + 4096)]))
        while handle(try connection.process(), &connection) {}
    }
    return (header, packets)
}

func makePublish(loops: Int) throws -> Publish {
    let (header, once) = try demuxCapture()
    guard let first = once.map(\.dts).min(), let last = once.map(\.dts).max(), once.count > 400 else {
        fatalError("the capture gave \(once.count) packets")
    }
    // Next loop starts one video frame after the last packet: no timestamp ever goes backwards.
    let loopSpan = last - first + 34
    var packets: [MediaPacket] = []
    packets.reserveCapacity(once.count * loops)
    for loop in 0..<loops {
        for var packet in once {
            packet.dts += Int64(loop) * loopSpan
            packet.pts += Int64(loop) * loopSpan
            packets.append(packet)
        }
    }
    return Publish(header: header, packets: packets, mediaSeconds: Double(loopSpan * Int64(loops)) / 1000)
}

let packetsPerSecond = BenchmarkMetric.custom("Packets/s", polarity: .prefersLarger, useScalingFactor: false)
/// Packets per second of this thread's CPU time: not inflated by waiting for a core (the machine is
/// shared).
let packetsPerCPUSecond = BenchmarkMetric.custom("Packets/s of thread CPU", polarity: .prefersLarger, useScalingFactor: false)

/// CPU time consumed by the calling thread.
func threadCPUTime() -> Duration {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return .seconds(spec.tv_sec) + .nanoseconds(spec.tv_nsec)
}

let benchmarks: @Sendable () -> Void = {
    for variant in [HLSVariant.fmp4LowLatency, .mpegts] {
        Benchmark(
            "HLS packager \(variant.rawValue), 30 s H.264+AAC publish",
            configuration: .init(
                metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident, packetsPerSecond, packetsPerCPUSecond],
                timeUnits: .milliseconds,
                units: [packetsPerSecond: .count, packetsPerCPUSecond: .count, .mallocCountTotal: .count],
                warmupIterations: 3,
                maxDuration: .seconds(5),
                maxIterations: 10_000)
        ) { (benchmark: Benchmark, publish: Publish) in
            // Outside the measurement (it restarts at startMeasurement()): a new service, stream and
            // store, and the publish header (no muxing yet). Thumbnails are made on request only.
            let service = HLSService(
                configuration: HLSConfiguration(variant: variant), metricsFactory: NOOPMetricsHandler.instance,
                logger: Logger(label: "livehub.hls.benchmark", factory: { _ in SwiftLogNoOpLogHandler() }), wallClock: { 0 })
            let stream = LiveStream(id: "bench")
            service.attach(stream: stream)
            stream.beginPublish()
            for event in publish.header { stream.publish(event) }
            benchmark.startMeasurement()

            let start = ContinuousClock.now
            let startCPU = threadCPUTime()
            for packet in publish.packets { stream.publish(.packet(packet)) }
            stream.end()
            let cpu = threadCPUTime() - startCPU
            let elapsed = ContinuousClock.now - start
            benchmark.stopMeasurement()

            // 30 s at ~2 s per segment (cut on the 2 s keyframe grid): the last one listed.
            let playlist = service.respondNow(roomId: "bench", file: "media.m3u8").map { String(buffer: $0.body) } ?? ""
            let segments = playlist.split(separator: "\n").last { $0.hasPrefix("seg-") }
                .flatMap { Int($0.dropFirst(4).prefix { $0.isNumber }) }.map { $0 + 1 } ?? 0
            guard segments >= Int(publish.mediaSeconds / 2) - 1 else {
                return benchmark.error("only \(segments) segments for \(publish.mediaSeconds) s of media")
            }
            benchmark.measurement(packetsPerSecond, Int(Double(publish.packets.count) / elapsed.seconds))
            benchmark.measurement(packetsPerCPUSecond, Int(Double(publish.packets.count) / cpu.seconds))
        } setup: {
            try makePublish(loops: 5)
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
