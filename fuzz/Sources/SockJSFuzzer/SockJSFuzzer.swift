import FuzzSupport
@testable import Hub
import NIOCore

/// SockJS framing (sockjs-protocol 0.3.3) as LiveHub reads and writes it: client messages (a JSON
/// array of strings, or one string) assembled from WebSocket frames, and the server's `a[…]`
/// message frames and their merging.
///
/// Invariants: the strings of a client message, framed by the server as `a[…]`, decode back to the
/// same strings; merging frames gives the concatenation of their messages; the assembler never
/// returns a message over its limit.
@_cdecl("SockJSFuzzer_main")
public func sockJSFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    var input = FuzzInput(bytes)
    let maxSize = input.pick([64, 4096, 6 * 64 * 1024 + 16 * 1024])
    var assembler = MessageAssembler(maxSize: maxSize)
    var frames: [ByteBuffer] = []
    var expected: [String] = []
    while !input.isEmpty {
        let kind = input.pick([HubInboundFrame.Kind.text, .binary, .continuation])
        let frame = HubInboundFrame(kind: kind, data: ByteBuffer(bytes: input.chunk(maximum: 2000)), fin: input.bool())
        guard case .message(_, let message) = assembler.add(frame) else { continue }
        fuzzCheck(message.readableBytes <= maxSize, "assembled \(message.readableBytes) bytes over \(maxSize)")
        guard let strings = try? SockJSFraming.decodeClientMessage(message.readableBytesView) else { continue }
        // What the server frames must decode to the same strings.
        let framed = SockJSFraming.messageFrame(strings.map { Array($0.utf8) })
        fuzzCheck(decodeServerFrame(framed) == strings, "a[…] framing changed the messages")
        if !strings.isEmpty {
            frames.append(ByteBuffer(bytes: framed))
            expected += strings
        }
    }
    if !frames.isEmpty {
        let merged = SockJSFraming.merge(frames)
        fuzzCheck(decodeServerFrame(Array(merged.readableBytesView)) == expected, "merged a[…] frames lost or changed messages")
    }
}

/// A server `a[…]` frame → its strings (as a SockJS client reads it).
func decodeServerFrame(_ frame: [UInt8]) -> [String]? {
    guard frame.first == UInt8(ascii: "a") else { return nil }
    return try? SockJSFraming.decodeClientMessage(frame.dropFirst())
}
