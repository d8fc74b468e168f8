import Ingest
import NIOCore

/// libFuzzer target for everything in Ingest that reads bytes from the network.
/// The first input byte picks the parser; the rest is the input:
///   0: a whole server connection (a valid handshake is prepended so the fuzzer reaches the
///      chunk stream, commands, publish and FLV demuxing), fed in pieces of varying size
///   1: AMF0 decoder
///   2: FLV video body, 3: FLV audio body
///   4: chunk decoder alone, applying Set Chunk Size / Abort as the connection does
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard let mode = bytes.first else { return 0 }
    let input = ByteBuffer(bytes: bytes.dropFirst())
    switch mode % 5 {
    case 0: fuzzConnection(input)
    case 1: _ = try? AMF0Decoder().decodeAll(input)
    case 2:
        var demuxer = FLVMediaDemuxer()
        _ = try? demuxer.video(timestamp: 0, payload: input)
    case 3:
        var demuxer = FLVMediaDemuxer()
        _ = try? demuxer.audio(timestamp: 0, payload: input)
    default: fuzzChunks(input)
    }
    return 0
}

private func fuzzConnection(_ input: ByteBuffer) {
    var connection = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 1))
    var handshake = ByteBuffer(bytes: [3])
    handshake.writeRepeatingByte(0, count: 2 * 1536)
    connection.receive(handshake)
    var input = input
    var piece = 1
    do {
        _ = try connection.process()
        while input.readableBytes > 0 {
            let slice = input.readSlice(length: min(piece, input.readableBytes))!
            piece = piece * 3 % 1000 + 1
            connection.receive(slice)
            var again = true
            while again {
                again = false
                for action in try connection.process() {
                    if case .authorize = action {
                        _ = connection.authorizationAccepted()
                        again = true
                    }
                }
            }
        }
    } catch {
        // A protocol error closes the connection: the expected outcome for most inputs.
    }
}

private func fuzzChunks(_ input: ByteBuffer) {
    var decoder = RTMPChunkDecoder(maxMessageSize: 1 << 20)
    var input = input
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

// SwiftPM links executables with `--defsym main=<Module>_main`, which would shadow libFuzzer's
// own `main`; so the module provides that entry point and hands over to libFuzzer's driver
// (`LLVMFuzzerRunDriver`, libFuzzer ≥ LLVM 13).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer, Int) -> CInt
) -> CInt

@_cdecl("IngestFuzzer_main")
public func ingestFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) }
}
