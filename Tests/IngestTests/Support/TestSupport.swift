import Foundation
import Ingest
import MediaCore
import NIOCore

/// Paths of the repository's fixtures, found from this file (Tests/IngestTests/Support/).
enum Fixtures {
    static let repository = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let mediaFixtures = repository.appendingPathComponent("media-fixtures")

    static func bytes(_ url: URL) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url))
    }

    static func expected(_ name: String) throws -> ExpectedSummary {
        let url = mediaFixtures.appendingPathComponent("expected/\(name).json")
        return try JSONDecoder().decode(ExpectedSummary.self, from: Data(contentsOf: url))
    }
}

/// One `expected/*.json` (written by media-fixtures/tools/summarize.py from ffprobe).
struct ExpectedSummary: Decodable {
    struct Track: Decodable, Equatable, CustomStringConvertible {
        var codec: String
        var count: Int
        var keyframes: Int
        var configSHA256: String
        var firstDts: Int64
        var lastDts: Int64
        var firstPts: Int64
        var lastPts: Int64

        var description: String {
            "\(codec) count=\(count) key=\(keyframes) dts=\(firstDts)…\(lastDts) pts=\(firstPts)…\(lastPts) config=\(configSHA256.prefix(12))"
        }
    }

    var video: Track?
    var audio: Track?
}

/// What a list of stream events amounts to, in the shape of `ExpectedSummary.Track`.
struct ObservedTracks {
    var video: ExpectedSummary.Track?
    var audio: ExpectedSummary.Track?
    var configCount: [TrackKind: Int] = [:]
    var metadata: [StreamMetadata] = []

    init(_ events: [StreamEvent]) {
        var packets: [TrackKind: [MediaPacket]] = [:]
        var configs: [TrackKind: TrackConfig] = [:]
        for event in events {
            switch event {
            case .packet(let packet): packets[packet.kind, default: []].append(packet)
            case .config(let config):
                if configs[config.kind] == nil { configs[config.kind] = config }
                configCount[config.kind, default: 0] += 1
            case .metadata(let metadata): self.metadata.append(metadata)
            default: break
            }
        }
        func track(_ kind: TrackKind) -> ExpectedSummary.Track? {
            guard let list = packets[kind], let first = list.first, let last = list.last else { return nil }
            return ExpectedSummary.Track(
                codec: first.codec.rawValue, count: list.count, keyframes: list.filter(\.isKeyframe).count,
                configSHA256: SHA256.hex(configs[kind]?.extradata ?? []),
                firstDts: first.dts, lastDts: last.dts, firstPts: first.pts, lastPts: last.pts)
        }
        video = track(.video)
        audio = track(.audio)
    }
}

/// Feeds capture bytes through `RTMPIngestConnection` the way the NIO handler does, accepting
/// every publish.
struct CaptureReplay {
    var connection = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 7))
    var events: [StreamEvent] = []
    var authorizations: [(app: String, streamKey: String)] = []
    var written: [ByteBuffer] = []
    var notices: [String] = []
    var unpublished = false
    /// The largest inbound buffer the connection held after a read (bytes of storage).
    var largestBufferCapacity = 0

    mutating func feed(_ bytes: ArraySlice<UInt8>) throws {
        connection.receive(ByteBuffer(bytes: bytes))
        largestBufferCapacity = max(largestBufferCapacity, connection.bufferCapacity)
        try drain()
    }

    mutating func drain() throws {
        var again = true
        while again {
            again = false
            for action in try connection.process() {
                again = try handle(action) || again
            }
        }
    }

    /// Returns true when processing must be resumed (an authorization was answered).
    private mutating func handle(_ action: RTMPIngestConnection.Action) throws -> Bool {
        switch action {
        case .write(let bytes): written.append(bytes)
        case .handshakeCompleted: break
        case .authorize(let app, let key):
            authorizations.append((app, key))
            for next in connection.authorizationAccepted() { _ = try handle(next) }
            return true
        case .refuse: break
        case .emit(let event): events.append(event)
        case .unpublish: unpublished = true
        case .notice(let text): notices.append(text)
        }
        return false
    }

    static func replay(_ bytes: [UInt8], pieceSize: Int) throws -> CaptureReplay {
        var replay = CaptureReplay()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + pieceSize)
            try replay.feed(bytes[offset..<end])
            offset = end
        }
        return replay
    }
}

/// SHA-256 (FIPS 180-4) for config hashes; the test target has no crypto dependency.
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hex(_ message: [UInt8]) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        let bits = UInt64(message.count) * 8
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8((bits >> UInt64(shift)) & 0xFF)) }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        for block in stride(from: 0, to: data.count, by: 64) {
            var w = [UInt32](repeating: 0, count: 64)
            for i in 0..<16 {
                w[i] = data[block + 4 * i..<block + 4 * i + 4].reduce(0) { $0 << 8 | UInt32($1) }
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        return h.map { String(format: "%08x", $0) }.joined()
    }
}

/// Builds client→server RTMP bytes for tests (the same codec the server uses, client side).
struct ClientBytes {
    var encoder = RTMPChunkEncoder()
    var bytes = ByteBuffer()

    static func handshake() -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(3))
        buffer.writeRepeatingByte(0, count: 1536)  // C1
        buffer.writeRepeatingByte(0, count: 1536)  // C2
        return buffer
    }

    mutating func send(_ message: RTMPMessage, csid: UInt32 = 3, msid: UInt32 = 0, timestamp: UInt32 = 0) {
        let (typeId, body) = message.encodedBody()
        encoder.encode(
            RTMPRawMessage(chunkStreamId: csid, timestamp: timestamp, typeId: typeId, messageStreamId: msid, payload: body),
            into: &bytes)
        if case .setChunkSize(let size) = message { encoder.setChunkSize(Int(size)) }
    }

    mutating func command(_ name: String, _ transactionId: Double, _ arguments: [AMF0Value], csid: UInt32 = 3, msid: UInt32 = 0) {
        send(.command(RTMPCommand(name: name, transactionId: transactionId, arguments: arguments)), csid: csid, msid: msid)
    }

    /// connect + releaseStream + FCPublish + createStream + publish(key).
    mutating func publishSequence(app: String = "live", key: String) {
        command("connect", 1, [.object(["app": .string(app), "type": .string("nonprivate"), "tcUrl": .string("rtmp://127.0.0.1/\(app)")])])
        command("releaseStream", 2, [.null, .string(key)])
        command("FCPublish", 3, [.null, .string(key)])
        command("createStream", 4, [.null])
        command("publish", 5, [.null, .string(key), .string("live")], csid: 4, msid: 1)
    }
}

/// Decodes what the server wrote (server→client chunk stream after S0+S1+S2).
func decodeServerMessages(_ buffers: [ByteBuffer], skipHandshake: Bool) throws -> [(RTMPRawMessage, RTMPMessage)] {
    var all = ByteBuffer()
    for var buffer in buffers { all.writeBuffer(&buffer) }
    if skipHandshake { all.moveReaderIndex(forwardBy: 1 + 2 * 1536) }
    var decoder = RTMPChunkDecoder()
    var result: [(RTMPRawMessage, RTMPMessage)] = []
    while let raw = try decoder.nextMessage(from: &all) {
        let message = try RTMPMessage(decoding: raw)
        if case .setChunkSize(let size) = message { try decoder.setChunkSize(size) }
        result.append((raw, message))
    }
    return result
}
