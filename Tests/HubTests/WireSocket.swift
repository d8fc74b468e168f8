import Hub
import NIOCore
import NIOPosix
import NIOWebSocket
import Synchronization

/// One hub connection over a real loopback TCP socket, through the server's own transport: the
/// server side's pipeline is what a WebSocket upgrade leaves (NIO's frame decoder and encoder),
/// then the endpoint's `attach` (`ChannelConnection`, `ChannelDrain`, `ConnectionTicker`), exactly
/// as in production. The client side masks what it sends (RFC 6455 §5.3) and records every frame
/// it receives.
final class WireSocket: Sendable {
    private let server: any Channel
    private let client: any Channel
    private let recorder: Recorder

    /// Listens on a free loopback port, connects, and runs `attach` for the accepted channel (on its
    /// event loop, as the Server's upgrade does). `clientReads: false` makes a client that never
    /// reads (a stuck consumer).
    static func open(clientReads: Bool = true, attach: @escaping @Sendable (any Channel) -> Void) async throws -> WireSocket {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)), WebSocketFrameEncoder(),
                        AttachWhenActive(attach: attach),
                    ])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let recorder = Recorder()
        let client = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: clientReads)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 24)), WebSocketFrameEncoder(), recorder,
                    ])
                }
            }
            .connect(to: server.localAddress!).get()
        return WireSocket(server: server, client: client, recorder: recorder)
    }

    private init(server: any Channel, client: any Channel, recorder: Recorder) {
        self.server = server
        self.client = client
        self.recorder = recorder
    }

    /// Sends one frame as a browser would (masked).
    func send(_ frame: HubInboundFrame) {
        let opcode: WebSocketOpcode
        switch frame.kind {
        case .text: opcode = .text
        case .binary: opcode = .binary
        case .continuation: opcode = .continuation
        }
        let mask = WebSocketMaskingKey.random()
        self.client.writeAndFlush(WebSocketFrame(fin: frame.fin, opcode: opcode, maskKey: mask, data: frame.data), promise: nil)
    }

    /// The client goes away (closes its socket without a Close frame).
    func leave() {
        self.client.close(promise: nil)
    }

    /// Waits until the server closed the connection (or the client left), then stops listening.
    func closed() async {
        try? await self.client.closeFuture.get()
        try? await self.server.close()
    }

    /// The text of every data frame received so far, in order.
    var frames: [String] { self.recorder.state.withLock { $0.frames } }
    /// The status code of the Close frame the server sent, if it sent one.
    var closedWith: UInt16? { self.recorder.state.withLock { $0.closeCode } }

    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = WebSocketFrame

        struct State {
            var frames: [String] = []
            var closeCode: UInt16?
        }

        let state = Mutex(State())

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = self.unwrapInboundIn(data)
            switch frame.opcode {
            case .text, .binary, .continuation:
                self.state.withLock { $0.frames.append(String(buffer: frame.unmaskedData)) }
            case .connectionClose:
                let code = frame.unmaskedData.getInteger(at: frame.unmaskedData.readerIndex, as: UInt16.self)
                self.state.withLock { $0.closeCode = code }
                context.close(promise: nil)
            default:
                break
            }
        }
    }
}

/// Attaches the endpoint once the accepted channel is active (as after an upgrade), then leaves.
private final class AttachWhenActive: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = Any
    let attach: @Sendable (any Channel) -> Void

    init(attach: @escaping @Sendable (any Channel) -> Void) { self.attach = attach }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        let channel = context.channel
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        self.attach(channel)
    }
}
