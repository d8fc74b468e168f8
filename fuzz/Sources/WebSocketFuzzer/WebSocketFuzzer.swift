import Dispatch
import FuzzSupport
@testable import Hub
import NIOCore
import NIOEmbedded
import NIOWebSocket

/// WebSocket frame handling as an upgraded hub connection runs it: NIO's frame decoder with the
/// server's frame-size limit and its protocol-error handler, then LiveHub's `HubWebSocketFrameHandler`
/// (masking and RSV checks, Ping → Pong, Close replies, unknown opcodes) and its `InboundProcessor`,
/// whose frames are assembled into messages (`MessageAssembler`) as the endpoints do. Also LiveHub's
/// own outbound framing (`WebSocketFramer.frame`), decoded by NIO's decoder.
///
/// Invariants: no assembled message exceeds the assembler's limit; a frame LiveHub writes decodes to
/// the same opcode and payload.
@_cdecl("WebSocketFuzzer_main")
public func webSocketFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

let maxFrameSize = 4096
let maxMessageSize = 8192

final class Assembled: @unchecked Sendable {
    var assembler = MessageAssembler(maxSize: maxMessageSize)
    let ended = DispatchSemaphore(value: 0)
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    if mode % 4 == 3 {
        fuzzOutboundFraming(Array(bytes.dropFirst()))
        return
    }
    var input = FuzzInput(Array(bytes.dropFirst()))
    let channel = EmbeddedChannel()
    let assembled = Assembled()
    let processor = InboundProcessor(
        maxBytes: 16_384,
        start: {},
        onFrame: { frame in
            if case .message(_, let message) = assembled.assembler.add(frame) {
                fuzzCheck(message.readableBytes <= maxMessageSize, "a message of \(message.readableBytes) bytes")
            }
            return true
        },
        onStopped: {}, end: { assembled.ended.signal() }, setReading: { _ in })
    do {
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
        try channel.pipeline.syncOperations.addHandler(WebSocketProtocolErrorHandler())
        try channel.pipeline.syncOperations.addHandler(HubWebSocketFrameHandler(processor: processor, quiesce: {}))
    } catch {
        fatalError("pipeline: \(error)")
    }
    processor.enqueue(.start)
    while !input.isEmpty, channel.isActive {
        _ = try? channel.writeInbound(ByteBuffer(bytes: input.chunk(maximum: 600)))
        while let _ = try? channel.readOutbound(as: ByteBuffer.self) {}
    }
    _ = try? channel.close().wait()
    // Wait for the processor to finish its queue (its work runs on a task), then run what it
    // handed back to the event loop (reading paused or resumed), so that nothing holds the channel.
    _ = assembled.ended.wait(timeout: .now() + .seconds(5))
    channel.embeddedEventLoop.run()
    _ = try? channel.finish(acceptAlreadyClosed: true)
}

func fuzzOutboundFraming(_ bytes: [UInt8]) {
    var input = FuzzInput(bytes)
    let isText = input.bool()
    let payload = ByteBuffer(bytes: input.take(input.int(in: 0...70_000)))
    let framed = WebSocketFramer.frame(payload, isText: isText, allocator: ByteBufferAllocator())
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
    defer { _ = try? channel.finish() }
    _ = try? channel.writeInbound(framed)
    guard let frame = try? channel.readInbound(as: WebSocketFrame.self) else {
        fuzzCheck(false, "LiveHub's frame does not decode")
        return
    }
    let opcode: WebSocketOpcode = isText ? .text : .binary
    fuzzCheck(frame.opcode == opcode && frame.fin && frame.data == payload, "LiveHub's frame decodes differently")
}
