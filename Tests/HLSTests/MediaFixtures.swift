import CLibAV
import Foundation
import MediaCore
import NIOCore
import Synchronization
import Testing

@testable import HLS

/// Runs a command-line tool; returns (exit status, stdout, stderr).
@discardableResult
func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// Media made with ffmpeg at test time, demuxed with libavformat into what the RTMP ingest would
/// deliver: configuration records as extradata and AVCC / raw AAC payloads with millisecond times.
struct MediaFixture: Sendable {
    var metadata: StreamMetadata
    var configs: [TrackConfig]
    var packets: [MediaPacket]

    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("livehub-hls-fixtures-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// The repository's committed `media-fixtures/` (found from this file, Tests/HLSTests/).
    static let committedDirectory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("media-fixtures")

    /// A committed FLV fixture (media-fixtures/README.md), e.g. `h264-aac-1s-gop.flv`: the same
    /// bytes the end-to-end tests publish.
    static func committed(_ name: String) throws -> MediaFixture {
        try demux(path: committedDirectory.appendingPathComponent(name).path)
    }

    static func hasEncoder(_ name: String) -> Bool {
        (try? run("ffmpeg", ["-hide_banner", "-encoders"]).stdout.contains(" \(name) ")) ?? false
    }

    /// 640x360 30 fps H.264 with 2 s GOPs (+ 48 kHz AAC), as FLV.
    static func h264(seconds: Int = 6, audio: Bool = true, video: Bool = true, gop: Int = 60) throws -> MediaFixture {
        var arguments = ["-y", "-v", "error"]
        if video { arguments += ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"] }
        if audio { arguments += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] }
        arguments += ["-t", "\(seconds)"]
        if video {
            arguments += [
                "-c:v", "libx264", "-preset", "veryfast", "-g", "\(gop)", "-keyint_min", "\(gop)", "-sc_threshold", "0",
                "-pix_fmt", "yuv420p",
            ]
        }
        if audio { arguments += ["-c:a", "aac", "-b:a", "96k", "-ac", "2"] }
        let name = "h264-\(seconds)-\(audio)-\(video)-\(gop).flv"
        return try make(name: name, arguments: arguments)
    }

    /// 320x240 30 fps HEVC (hvc1) with 1 s GOPs + AAC, as MP4 (FLV cannot carry HEVC in ffmpeg 5.1).
    static func hevc(seconds: Int = 4) throws -> MediaFixture {
        try make(
            name: "hevc-\(seconds).mp4",
            arguments: [
                "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i",
                "sine=sample_rate=48000", "-t", "\(seconds)", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                "keyint=30:min-keyint=30:scenecut=0:log-level=error", "-tag:v", "hvc1", "-pix_fmt", "yuv420p", "-c:a", "aac",
            ])
    }

    /// 320x240 30 fps AV1 (SVT-AV1) with 1 s GOPs + AAC, as MP4 (av1C + OBUs, as Enhanced RTMP carries them).
    static func av1(seconds: Int = 3) throws -> MediaFixture {
        try make(
            name: "av1-\(seconds).mp4",
            arguments: [
                "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i",
                "sine=sample_rate=48000", "-t", "\(seconds)", "-c:v", "libsvtav1", "-preset", "12", "-g", "30",
                "-svtav1-params", "irefresh-type=2", "-pix_fmt", "yuv420p", "-c:a", "aac",
            ])
    }

    private static let creation = Mutex(())

    private static func make(name: String, arguments: [String]) throws -> MediaFixture {
        let path = directory.appendingPathComponent(name).path
        // Suites run in parallel: one creates the file (atomically), the others wait for it.
        try creation.withLock { _ in
            if !FileManager.default.fileExists(atPath: path) {
                let temporary = directory.appendingPathComponent("partial-" + name).path
                let result = try run("ffmpeg", arguments + [temporary])
                try #require(result.status == 0, "ffmpeg failed: \(result.stderr)")
                try FileManager.default.moveItem(atPath: temporary, toPath: path)
            }
        }
        return try demux(path: path)
    }

    static func demux(path: String) throws -> MediaFixture {
        var context: UnsafeMutablePointer<AVFormatContext>?
        try #require(avformat_open_input(&context, path, nil, nil) >= 0)
        defer { avformat_close_input(&context) }
        try #require(avformat_find_stream_info(context, nil) >= 0)
        let formatContext = context!
        var codecs: [Int: MediaCodec] = [:]
        var configs: [TrackConfig] = []
        var metadata = StreamMetadata()
        for index in 0..<Int(formatContext.pointee.nb_streams) {
            let parameters = formatContext.pointee.streams[index]!.pointee.codecpar!.pointee
            let codec: MediaCodec
            switch parameters.codec_id {
            case AV_CODEC_ID_H264: codec = .h264
            case AV_CODEC_ID_HEVC: codec = .hevc
            case AV_CODEC_ID_AV1: codec = .av1
            case AV_CODEC_ID_AAC: codec = .aac
            default: continue
            }
            codecs[index] = codec
            let extradata = Array(UnsafeBufferPointer(start: parameters.extradata, count: Int(parameters.extradata_size)))
            configs.append(TrackConfig(codec: codec, extradata: extradata))
            if codec.kind == .video {
                metadata.width = Int(parameters.width)
                metadata.height = Int(parameters.height)
                metadata.frameRate = 30
            } else {
                metadata.audioSampleRate = Int(parameters.sample_rate)
                metadata.audioChannels = 2
            }
        }
        var packets: [MediaPacket] = []
        let packet = av_packet_alloc()!
        var packetPointer: UnsafeMutablePointer<AVPacket>? = packet
        defer { av_packet_free(&packetPointer) }
        let milliseconds = AVRational(num: 1, den: 1000)
        while av_read_frame(formatContext, packet) >= 0 {
            defer { av_packet_unref(packet) }
            let index = Int(packet.pointee.stream_index)
            guard let codec = codecs[index] else { continue }
            let timeBase = formatContext.pointee.streams[index]!.pointee.time_base
            let dts = av_rescale_q(packet.pointee.dts, timeBase, milliseconds)
            let pts = av_rescale_q(packet.pointee.pts, timeBase, milliseconds)
            var payload = ByteBufferAllocator().buffer(capacity: Int(packet.pointee.size))
            payload.writeBytes(UnsafeRawBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size)))
            packets.append(
                MediaPacket(
                    codec: codec, dts: dts, pts: pts, isKeyframe: codec.kind == .audio || packet.pointee.flags & AV_PKT_FLAG_KEY != 0,
                    payload: payload))
        }
        // FLV/MP4 interleave by dts; keep that order stable as the ingest would deliver it.
        packets.sort { $0.dts < $1.dts }
        return MediaFixture(metadata: metadata, configs: configs, packets: packets)
    }

    /// Publishes the fixture on `stream` as a new publish session, optionally shifting timestamps.
    func publish(on stream: LiveStream, packets range: Range<Int>? = nil, offsetMs: Int64 = 0, begin: Bool = true) {
        if begin {
            stream.beginPublish()
            stream.publish(.metadata(metadata))
            for config in configs { stream.publish(.config(config)) }
        }
        for packet in packets[range ?? packets.indices] {
            var shifted = packet
            shifted.dts += offsetMs
            shifted.pts += offsetMs
            stream.publish(.packet(shifted))
        }
    }

    /// Index of the first packet with dts ≥ `ms`.
    func index(atMs ms: Int64) -> Int { packets.firstIndex { $0.dts >= ms } ?? packets.count }
}

/// Reads an HLS room out of an `HLSService` into a directory, for ffmpeg/ffprobe.
struct PlaylistDump {
    var directory: URL
    var mediaPlaylist: String
    var segmentURIs: [String]
    var segmentDurations: [Double]
    var partDurations: [[Double]]

    static func waitForEnd(_ service: HLSService, room: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let response = await service.handle(roomId: room, file: "media.m3u8", query: [:])
            if response.status == 200 {
                let text = String(buffer: response.body)
                if text.contains("#EXT-X-ENDLIST") { return text }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("the playlist never ended")
        throw CancellationError()
    }

    static func dump(_ service: HLSService, room: String, playlist: String) async throws -> PlaylistDump {
        let directory = MediaFixture.directory.appendingPathComponent("out-\(room)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try playlist.write(to: directory.appendingPathComponent("media.m3u8"), atomically: true, encoding: .utf8)
        var segmentURIs: [String] = []
        var segmentDurations: [Double] = []
        var partDurations: [[Double]] = [[]]
        var files: Set<String> = []
        for line in playlist.split(separator: "\n") {
            if line.hasPrefix("#EXTINF:") {
                segmentDurations.append(Double(line.dropFirst(8).dropLast())!)
            } else if line.hasPrefix("#EXT-X-PART:") {
                let duration = line.split(separator: ",")[0].split(separator: "=")[1]
                partDurations[partDurations.count - 1].append(Double(duration)!)
                files.insert(String(line.split(separator: "\"")[1]))
            } else if line.hasPrefix("#EXT-X-MAP:") {
                files.insert(String(line.split(separator: "\"")[1]))
            } else if !line.hasPrefix("#") {
                segmentURIs.append(String(line))
                files.insert(String(line))
                partDurations.append([])
            }
        }
        partDurations.removeLast()
        for file in files {
            let response = await service.handle(roomId: room, file: file, query: [:])
            try #require(response.status == 200, "\(file) → \(response.status)")
            try Data(response.body.readableBytesView).write(to: directory.appendingPathComponent(file))
        }
        return PlaylistDump(
            directory: directory, mediaPlaylist: playlist, segmentURIs: segmentURIs, segmentDurations: segmentDurations,
            partDurations: partDurations)
    }

    /// `ffmpeg -v error -i media.m3u8 -f null -`: decoding errors, if any.
    func decodeErrors() throws -> String {
        let result = try run("ffmpeg", ["-v", "error", "-i", directory.appendingPathComponent("media.m3u8").path, "-f", "null", "-"])
        return result.status == 0 ? result.stderr : "exit \(result.status): \(result.stderr)"
    }

    /// Frames (pts, keyframe) of `stream` ("v" or "a") in one segment (prefixed with its init section).
    func frames(ofSegment uri: String, initURI: String?, stream: String = "v") throws -> [(pts: Double, key: Bool)] {
        var data = Data()
        if let initURI { data.append(try Data(contentsOf: directory.appendingPathComponent(initURI))) }
        data.append(try Data(contentsOf: directory.appendingPathComponent(uri)))
        let file = directory.appendingPathComponent("probe-\(uri)")
        try data.write(to: file)
        let result = try run(
            "ffprobe",
            ["-v", "error", "-select_streams", "\(stream):0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", file.path])
        return result.stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ",")
            guard fields.count >= 2, let pts = Double(fields[0]) else { return nil }
            return (pts, fields[1].contains("K"))
        }
    }
}
