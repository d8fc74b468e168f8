import FuzzSupport
import Ingest
import MediaCore
import NIOCore

/// RTMP ingest, everything that reads publisher bytes: the handshake, the chunk stream, AMF0, typed
/// messages and the publish session state machine, as `RTMPIngestConnection` runs them.
/// The first byte picks the mode; the rest is the input:
///
/// | mode (byte % 5) | what is fed |
/// |---|---|
/// | 0 | a whole connection after a valid handshake (seeds: the recorded captures), in pieces of varying size; the authorizer's answer and the moment it comes are fuzzed too |
/// | 1 | a whole connection including the handshake bytes themselves |
/// | 2 | `AMF0Decoder.decodeAll`, and the encoder's output of what it decoded decodes to the same values |
/// | 3 | `RTMPChunkDecoder` alone, applying Set Chunk Size / Abort as the connection does |
/// | 4 | `RTMPMessage(decoding:)` of one raw message of a fuzzed type |
///
/// Invariants checked besides "no trap": media timestamps stay in `MediaPacket.timestampRange`,
/// metadata values stay in `StreamMetadata.Plausible`.
@_cdecl("RTMPFuzzer_main")
public func rtmpFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    let body = Array(bytes.dropFirst())
    switch mode % 5 {
    case 0: fuzzConnection(body, prependHandshake: true)
    case 1: fuzzConnection(body, prependHandshake: false)
    case 2: fuzzAMF0(body)
    case 3: fuzzChunks(body)
    default: fuzzMessage(body)
    }
}

/// The bytes a client sends before its first chunk: C0 (version 3) and C1, then C2.
let validHandshake: ByteBuffer = {
    var buffer = ByteBuffer(bytes: [3])
    buffer.writeRepeatingByte(0, count: 2 * 1536)
    return buffer
}()

func fuzzConnection(_ body: [UInt8], prependHandshake: Bool) {
    var input = FuzzInput(body)
    // The first bytes steer the harness; the rest is the publisher's byte stream.
    let rejectPublish = input.byte() % 4 == 0
    let answerLate = input.bool()
    let stream = input.rest()
    var connection = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 1))
    if prependHandshake { connection.receive(validHandshake) }
    var offset = 0
    var piece = 1
    var pendingAuthorization = false
    do {
        try check(connection.process())
        while offset < stream.count || pendingAuthorization {
            if offset < stream.count {
                let end = min(stream.count, offset + piece)
                connection.receive(ByteBuffer(bytes: stream[offset..<end]))
                offset = end
                piece = piece * 3 % 1000 + 1
            }
            // The authorizer answers at once or after the next piece arrived (bytes pile up meanwhile).
            if pendingAuthorization && (!answerLate || offset >= stream.count) {
                pendingAuthorization = false
                if rejectPublish {
                    try check(connection.authorizationRejected(.unknownKey))
                } else {
                    try check(connection.authorizationAccepted())
                }
            }
            let actions = try connection.process()
            try check(actions)
            if actions.contains(where: { if case .authorize = $0 { return true } else { return false } }) {
                pendingAuthorization = true
            }
            if case .finished = connection.session.state, !pendingAuthorization { return }
        }
    } catch {
        // A protocol error closes the connection: the expected outcome for most inputs.
    }
}

struct Refused: Error {}

/// Checks what the connection hands to the server; a refusal stops the run as the server would.
func check(_ actions: [RTMPIngestConnection.Action]) throws {
    for action in actions {
        switch action {
        case .emit(.packet(let packet)):
            fuzzCheck(MediaPacket.timestampRange.contains(packet.dts), "dts \(packet.dts) out of range")
            fuzzCheck(abs(packet.pts - packet.dts) <= 1 << 24, "composition offset \(packet.pts - packet.dts)")
        case .emit(.metadata(let metadata)):
            if let width = metadata.width { fuzzCheck(StreamMetadata.Plausible.dimension.contains(width), "width \(width)") }
            if let height = metadata.height { fuzzCheck(StreamMetadata.Plausible.dimension.contains(height), "height \(height)") }
            if let rate = metadata.frameRate { fuzzCheck(StreamMetadata.Plausible.frameRate.contains(rate), "frame rate \(rate)") }
            if let rate = metadata.audioSampleRate { fuzzCheck(StreamMetadata.Plausible.sampleRate.contains(rate), "sample rate \(rate)") }
            if let channels = metadata.audioChannels { fuzzCheck(StreamMetadata.Plausible.channels.contains(channels), "channels \(channels)") }
        case .refuse, .unpublish:
            throw Refused()
        default:
            break
        }
    }
}

func fuzzAMF0(_ body: [UInt8]) {
    let decoder = AMF0Decoder()
    guard let values = try? decoder.decodeAll(ByteBuffer(bytes: body)) else { return }
    var encoded = ByteBuffer()
    AMF0Encoder.encode(values, into: &encoded)
    // NaN != NaN, so compare the encodings of the values decoded back instead of the values.
    guard let again = try? decoder.decodeAll(encoded) else {
        fuzzCheck(false, "the encoding of decoded AMF0 values does not decode")
        return
    }
    var reencoded = ByteBuffer()
    AMF0Encoder.encode(again, into: &reencoded)
    fuzzCheck(encoded == reencoded, "AMF0 encode/decode is not stable")
}

func fuzzChunks(_ body: [UInt8]) {
    var decoder = RTMPChunkDecoder(maxMessageSize: 1 << 20)
    var input = ByteBuffer(bytes: body)
    while let message = try? decoder.nextMessage(from: &input) {
        switch try? RTMPMessage(decoding: message) {
        case .setChunkSize(let size)?:
            if (try? decoder.setChunkSize(size)) == nil { return }
        case .abort(let csid)?:
            decoder.abort(chunkStreamId: csid)
        default:
            break
        }
    }
}

func fuzzMessage(_ body: [UInt8]) {
    var input = FuzzInput(body)
    let typeId = input.byte()
    let timestamp = input.uint32()
    let raw = RTMPRawMessage(chunkStreamId: 3, timestamp: timestamp, typeId: typeId, messageStreamId: 1, payload: ByteBuffer(bytes: input.rest()))
    guard let message = try? RTMPMessage(decoding: raw) else { return }
    // What the server would send back for it must encode too.
    _ = message.encodedBody()
    var session = RTMPPublishSession()
    _ = try? session.receive(message, messageStreamId: 1)
}
