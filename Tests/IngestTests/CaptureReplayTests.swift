import Foundation
import Ingest
import MediaCore
import NIOCore
import Testing

@Suite("Replaying recorded and hand-built RTMP captures")
struct CaptureReplayTests {
    struct Capture: CustomTestStringConvertible, Sendable {
        var file: String
        var expected: String
        var key: String
        var testDescription: String { file }

        var url: URL {
            Fixtures.mediaFixtures.appendingPathComponent("captures/\(file)")
        }
    }

    static let captures: [Capture] = [
        Capture(file: "obs29-h264-aac.rtmp", expected: "obs29-h264-aac", key: "obs-capture-key"),
        Capture(file: "ffmpeg-h264-aac.rtmp", expected: "ffmpeg-h264-aac", key: "capture-key"),
        Capture(file: "ertmp-hevc-aac.rtmp", expected: "ertmp-hevc-aac", key: "handbuilt-key"),
        Capture(file: "ertmp-av1-aac.rtmp", expected: "ertmp-av1-aac", key: "handbuilt-key"),
        Capture(file: "timestamp-wrap.rtmp", expected: "timestamp-wrap", key: "handbuilt-key"),
    ]

    @Test("a capture replayed through the ingest gives exactly the packets ffprobe saw", arguments: captures)
    func replayMatchesExpectedPackets(capture: Capture) throws {
        let bytes = try Fixtures.bytes(capture.url)
        let expected = try Fixtures.expected(capture.expected)
        let replay = try CaptureReplay.replay(bytes, pieceSize: 1400)
        #expect(replay.authorizations.map(\.app) == ["live"])
        #expect(replay.authorizations.map(\.streamKey) == [capture.key])
        let observed = ObservedTracks(replay.events)
        #expect(observed.video == expected.video)
        #expect(observed.audio == expected.audio)
        #expect(observed.configCount[.video] == (expected.video == nil ? nil : 1))
        #expect(observed.configCount[.audio] == (expected.audio == nil ? nil : 1))
        // Only a cut-off final chunk may be left over.
        #expect(replay.connection.bufferedBytes < 4096 + 18)
    }

    @Test("consumed bytes are dropped: replayed in 1,400-byte reads the inbound buffer stays small")
    func inboundBufferStaysSmall() throws {
        let bytes = try Fixtures.bytes(Fixtures.mediaFixtures.appendingPathComponent("captures/ffmpeg-h264-aac.rtmp"))
        let replay = try CaptureReplay.replay(bytes, pieceSize: 1400)
        // The capture is 270 KB; the largest message (a keyframe) is well under 64 KiB.
        #expect(replay.largestBufferCapacity <= 128 * 1024, "buffer grew to \(replay.largestBufferCapacity) bytes")
    }

    @Test("the OBS capture decodes the same drip-fed byte by byte as in one piece")
    func obsCaptureDripFed() throws {
        let bytes = try Fixtures.bytes(Fixtures.mediaFixtures.appendingPathComponent("captures/obs29-h264-aac.rtmp"))
        let whole = try CaptureReplay.replay(bytes, pieceSize: bytes.count)
        let dripped = try CaptureReplay.replay(Array(bytes.prefix(60_000)), pieceSize: 1)
        let wholePrefix = try CaptureReplay.replay(Array(bytes.prefix(60_000)), pieceSize: 60_000)
        #expect(ObservedTracks(dripped.events).video == ObservedTracks(wholePrefix.events).video)
        #expect(ObservedTracks(dripped.events).audio == ObservedTracks(wholePrefix.events).audio)
        let expected = try Fixtures.expected("obs29-h264-aac")
        #expect(ObservedTracks(whole.events).video == expected.video)
    }

    @Test("OBS's metadata arrives as StreamMetadata before the first packet")
    func obsMetadata() throws {
        let bytes = try Fixtures.bytes(Fixtures.mediaFixtures.appendingPathComponent("captures/obs29-h264-aac.rtmp"))
        let replay = try CaptureReplay.replay(bytes, pieceSize: 8192)
        guard case .metadata(let metadata)? = replay.events.first else {
            Issue.record("first event is not metadata")
            return
        }
        #expect(metadata.width == 640)
        #expect(metadata.height == 360)
        #expect(metadata.audioSampleRate == 48000)
        #expect(metadata.encoder?.hasPrefix("obs") == true)
    }

    @Test("the server's answers to the ffmpeg capture decode as the documented sequence")
    func serverAnswersToFFmpegCapture() throws {
        let bytes = try Fixtures.bytes(Fixtures.mediaFixtures.appendingPathComponent("captures/ffmpeg-h264-aac.rtmp"))
        let replay = try CaptureReplay.replay(bytes, pieceSize: 4096)
        let messages = try decodeServerMessages(replay.written, skipHandshake: true)
        let names: [String] = messages.map { _, message in
            switch message {
            case .windowAcknowledgementSize: return "WinAckSize"
            case .setPeerBandwidth: return "SetPeerBandwidth"
            case .userControl(.streamBegin(let id)): return "StreamBegin(\(id))"
            case .setChunkSize: return "SetChunkSize"
            case .acknowledgement: return "Ack"
            case .command(let command):
                let code = command.arguments.last?.objectValue?["code"]?.stringValue.map { ":" + $0 } ?? ""
                return command.name + code
            default: return "other"
            }
        }
        #expect(Array(names.prefix(10)) == [
            "WinAckSize", "SetPeerBandwidth", "StreamBegin(0)", "SetChunkSize", "_result:NetConnection.Connect.Success",
            "_result", "onFCPublish:NetStream.Publish.Start", "_result", "StreamBegin(1)", "onStatus:NetStream.Publish.Start",
        ])
        #expect(replay.unpublished)
    }
}
