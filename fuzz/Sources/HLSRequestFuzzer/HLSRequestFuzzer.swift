import FuzzSupport
@testable import HLS
import Logging
import MediaCore
import NIOCore
@testable import Server

/// HLS request parsing, as a player's request reaches it: the HTTP fast path's target parser
/// (`/hls/{roomId}/{file}?{query}`), the file-name grammar (`HLSFileName`), the LL-HLS delivery
/// directives (`_HLS_msn`, `_HLS_part`, RFC 8216bis §6.2.5.1), and `HLSService.respondNow` against a
/// room with a few real segments and parts, so lookups by any msn and part index are exercised.
///
/// Invariants: a parsed file name prints back to the same name; every response has a status of
/// 200, 400, 404 or 503 and no error response carries media bytes.
@_cdecl("HLSRequestFuzzer_main")
public func hlsRequestFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
    _ = Room.service
    return runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

/// One live room with ~6 s of synthetic H.264 + AAC (keyframe every second).
enum Room {
    static let id = "room-1"
    static let service: HLSService = {
        let service = HLSService(logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        let stream = LiveStream(id: id)
        service.attach(stream: stream)
        stream.beginPublish()
        stream.publish(.config(TrackConfig(codec: .h264, extradata: hex("014d401effe10018674d401eeca05017fcb80880000003008000001e078b16cb01000468efbc80"))))
        stream.publish(.config(TrackConfig(codec: .aac, extradata: hex("119056e500"))))
        for frame in 0..<180 {
            let dts = Int64(frame) * 33
            stream.publish(.packet(MediaPacket(codec: .h264, dts: dts, pts: dts, isKeyframe: frame % 30 == 0, payload: ByteBuffer(bytes: [0, 0, 0, 1, 0x65]))))
            if frame % 2 == 0 {
                stream.publish(.packet(MediaPacket(codec: .aac, dts: dts, pts: dts, isKeyframe: true, payload: ByteBuffer(bytes: [0x21, 0x10]))))
            }
        }
        return service
    }()

    static func hex(_ text: String) -> [UInt8] {
        stride(from: 0, to: text.count, by: 2).map { offset in
            let start = text.index(text.startIndex, offsetBy: offset)
            return UInt8(text[start..<text.index(start, offsetBy: 2)], radix: 16)!
        }
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
    switch mode % 3 {
    case 0:
        // A request target as the HTTP fast path sees it, then the service.
        guard let (roomId, file, query) = HLSRequestAnswerer.parse(text.hasPrefix("/hls/") ? text : "/hls/\(Room.id)/" + text) else { return }
        respond(roomId: roomId, file: file, query: query)
    case 1:
        // A bare file name: the grammar, and its printed form.
        if let name = HLSFileName(text) {
            fuzzCheck(name.description == text, "file name \(text) does not print back")
        }
        respond(roomId: Room.id, file: text, query: [:])
    default:
        // Delivery directives given as `key=value` lines.
        var query: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let pair = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            query[String(pair[0])] = pair.count > 1 ? String(pair[1]) : ""
        }
        _ = HLSService.deliveryDirectives(query)
        respond(roomId: Room.id, file: "media.m3u8", query: query)
    }
}

func respond(roomId: String, file: String, query: [String: String]) {
    guard let response = Room.service.respondNow(roomId: roomId, file: file, query: query) else { return }
    fuzzCheck([200, 400, 404, 503].contains(response.status), "status \(response.status)")
    if response.status != 200 {
        fuzzCheck(response.header("Content-Type")?.hasPrefix("text/plain") == true, "an error with a media content type")
    }
}
