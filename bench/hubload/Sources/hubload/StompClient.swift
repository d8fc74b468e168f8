#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Settings every connection shares (immutable).
struct ClientConfig: Sendable {
    var host: String
    var port: Int
    var path: String
    var subprotocols: String
    var destination: String
    var join: String?
    var receipt: Bool
    var expect: Int
    var handshakeTimeout: TimeAmount
    var connectFrame: [UInt8]
    var subscribeFrame: [UInt8]
    var joinFrame: [UInt8]?

    init(_ o: Options) {
        self.host = o.host
        self.port = o.port
        self.path = o.path
        self.subprotocols = o.subprotocols
        self.destination = o.destination
        self.join = o.join
        self.receipt = o.receipt
        self.expect = o.expect
        self.handshakeTimeout = .nanoseconds(Int64(o.handshakeTimeout * 1e9))
        self.connectFrame = Array("CONNECT\naccept-version:1.2,1.1,1.0\nhost:localhost\nheart-beat:0,0\n\n\u{0}".utf8)
        self.subscribeFrame = Array(("SUBSCRIBE\nid:sub-0\ndestination:\(o.destination)\nack:auto\n"
            + (o.receipt ? "receipt:r-sub-0\n" : "") + "\n\u{0}").utf8)
        self.joinFrame = o.join.map {
            Array("SEND\ndestination:\($0)\ncontent-type:application/json\ncontent-length:2\n\n{}\u{0}".utf8)
        }
    }
}

/// One subscriber's state. Created on the main thread, then only touched on its channel's
/// event loop (handlers, close future, timeout task), hence `@unchecked Sendable`.
final class ClientConn: @unchecked Sendable {
    let stats: LoopStats
    let tally: Tally
    let config: ClientConfig
    var channel: Channel?
    var guardHandler: HandshakeGuard?
    var stomp: StompHandler?
    var timeout: Scheduled<Void>?
    /// Reported to the tally (subscribed or failed) — exactly once.
    var reported = false
    var subscribed = false
    /// We started closing (shutdown or failure): a close then is not "closed by the server".
    var closingByUs = false
    var count = 0

    init(stats: LoopStats, tally: Tally, config: ClientConfig) {
        self.stats = stats
        self.tally = tally
        self.config = config
    }

    func succeed() {
        guard !self.reported else { return }
        self.reported = true
        self.subscribed = true
        self.timeout?.cancel()
        self.timeout = nil
        self.stats.conns.append(self)
        self.tally.subscribed.add(1, ordering: .relaxed)
        self.tally.inFlight.subtract(1, ordering: .relaxed)
    }

    func fail(_ kind: FailKind) {
        guard !self.reported else { return }
        self.reported = true
        self.timeout?.cancel()
        self.timeout = nil
        self.tally.countFailure(kind)
        self.tally.failed.add(1, ordering: .relaxed)
        self.tally.inFlight.subtract(1, ordering: .relaxed)
        self.closingByUs = true
        self.channel?.close(promise: nil)
    }

    func channelClosed() {
        self.tally.openChannels.subtract(1, ordering: .relaxed)
        if !self.reported {
            self.fail(.closed)
        } else if self.subscribed && !self.closingByUs && !self.tally.shuttingDown.load(ordering: .relaxed) {
            self.tally.closedByServer.add(1, ordering: .relaxed)
        }
        self.channel = nil
        self.guardHandler = nil
        self.stomp = nil
    }

    /// Orderly close from our side: WebSocket close 1000, then the socket.
    func shutdown() {
        self.closingByUs = true
        if let stomp = self.stomp, let context = stomp.context {
            stomp.sendClose(context: context, code: 1000)
        } else {
            self.channel?.close(promise: nil)
        }
    }

    /// Starts one connection on `loop` (called on the main thread).
    static func launch(on loop: EventLoop, stats: LoopStats, tally: Tally, config: ClientConfig) {
        let conn = ClientConn(stats: stats, tally: tally, config: config)
        tally.started.add(1, ordering: .relaxed)
        tally.inFlight.add(1, ordering: .relaxed)
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(config.handshakeTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    conn.setUp(channel)
                }
            }
        bootstrap.connect(host: config.host, port: config.port).whenComplete { result in
            switch result {
            case .failure:
                conn.fail(.connect)
            case .success(let channel):
                conn.sendUpgradeRequest(channel)
            }
        }
    }

    /// Pipeline: HTTP client handlers + upgrade handler + HandshakeGuard; after the 101 (with a
    /// valid Sec-WebSocket-Accept) the HTTP handlers are gone and the guard is replaced by the
    /// StompHandler, alone in the pipeline.
    private func setUp(_ channel: Channel) {
        self.channel = channel
        self.tally.openChannels.add(1, ordering: .relaxed)
        channel.closeFuture.whenComplete { _ in self.channelClosed() }
        self.timeout = channel.eventLoop.scheduleTask(in: self.config.handshakeTimeout) {
            self.fail(.timeout)
        }
        do {
            try channel.pipeline.syncOperations.addHTTPClientHandlers(
                leftOverBytesStrategy: .forwardBytes,
                withClientUpgrade: (upgraders: [StompUpgrader(conn: self)], completionHandler: { _ in }))
            let guardHandler = HandshakeGuard(conn: self)
            self.guardHandler = guardHandler
            try channel.pipeline.syncOperations.addHandler(guardHandler)
        } catch {
            self.fail(.handshake)
        }
    }

    private func sendUpgradeRequest(_ channel: Channel) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(self.config.host):\(self.config.port)")
        headers.add(name: "Sec-WebSocket-Protocol", value: self.config.subprotocols)
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: self.config.path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    func upgraded(_ channel: Channel, response: HTTPResponseHead) throws {
        let proto = response.headers.first(name: "Sec-WebSocket-Protocol") ?? "(none)"
        self.stats.subprotocols[proto, default: 0] += 1
        if let guardHandler = self.guardHandler {
            channel.pipeline.syncOperations.removeHandler(guardHandler, promise: nil)
            self.guardHandler = nil
        }
        let stomp = StompHandler(conn: self)
        self.stomp = stomp
        try channel.pipeline.syncOperations.addHandler(stomp)
    }
}

/// Sits at the tail while the HTTP upgrade is under way: anything reaching it means the upgrade
/// was refused (a non-101 response, or an upgrade error).
final class HandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    let conn: ClientConn

    init(conn: ClientConn) { self.conn = conn }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.conn.fail(.handshake)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.conn.fail(.handshake)
    }
}

/// Upgrader: NIO's WebSocket client upgrader adds `Sec-WebSocket-Key`/`-Version` (random key) and
/// checks `Sec-WebSocket-Accept`; instead of NIO's frame codec we then install `StompHandler`,
/// which parses WebSocket frames in place from each read (no frame objects per delivery).
final class StompUpgrader: NIOHTTPClientProtocolUpgrader {
    let supportedProtocol = "websocket"
    let requiredUpgradeHeaders: [String] = []
    let keyAndAccept: NIOWebSocketClientUpgrader
    let conn: ClientConn

    init(conn: ClientConn) {
        self.conn = conn
        self.keyAndAccept = NIOWebSocketClientUpgrader(upgradePipelineHandler: { channel, _ in
            channel.eventLoop.makeSucceededVoidFuture()
        })
    }

    func addCustom(upgradeRequestHeaders: inout HTTPHeaders) {
        self.keyAndAccept.addCustom(upgradeRequestHeaders: &upgradeRequestHeaders)
    }

    func shouldAllowUpgrade(upgradeResponse: HTTPResponseHead) -> Bool {
        self.keyAndAccept.shouldAllowUpgrade(upgradeResponse: upgradeResponse)
    }

    func upgrade(context: ChannelHandlerContext, upgradeResponse: HTTPResponseHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        return channel.eventLoop.makeCompletedFuture {
            try self.conn.upgraded(channel, response: upgradeResponse)
        }
    }
}

/// RFC 6455 client framing + STOMP 1.2: CONNECT → CONNECTED → SUBSCRIBE (→ RECEIPT), then every
/// MESSAGE is scanned (bytes only) for `bm<seq>@<send ns>`. Server frames are parsed straight out
/// of the read buffer; only a frame split across reads, or a fragmented message, is copied.
final class StompHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase { case connecting, subscribing, subscribed, closing, closed }

    let conn: ClientConn
    var phase = Phase.connecting
    var context: ChannelHandlerContext?
    /// Bytes of an incomplete WebSocket frame (nil when none).
    var pending: ByteBuffer?
    /// A fragmented message being reassembled (nil when none).
    var fragments: ByteBuffer?
    static let maxMessage = 1 << 24

    init(conn: ClientConn) { self.conn = conn }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.sendText(context: context, self.conn.config.connectFrame)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.phase != .closed else { return }
        var buffer = Self.unwrapInboundIn(data)
        let now = monotonicNanos()
        var own = false
        if var p = self.pending {
            self.pending = nil
            p.writeBuffer(&buffer)
            buffer = p
            own = true
        }
        let consumed = buffer.withUnsafeReadableBytes { self.parseFrames($0, now: now, context: context) }
        guard self.phase != .closed else { return }
        buffer.moveReaderIndex(forwardBy: consumed)
        if buffer.readableBytes > 0 {
            if own {
                buffer.discardReadBytes()
                self.pending = buffer
            } else {  // copy: do not pin the (pooled) receive buffer
                var copy = context.channel.allocator.buffer(capacity: Swift.max(buffer.readableBytes, 512))
                copy.writeBuffer(&buffer)
                self.pending = copy
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.phase = .closed
        context.close(promise: nil)
    }

    /// Complete frames from `p`; returns the bytes consumed.
    private func parseFrames(_ p: UnsafeRawBufferPointer, now: Int64, context: ChannelHandlerContext) -> Int {
        let n = p.count
        var i = 0
        while n - i >= 2 {
            let b0 = p[i]
            let b1 = p[i + 1]
            var length = Int(b1 & 0x7F)
            var header = 2
            if length == 126 {
                guard n - i >= 4 else { return i }
                length = Int(p[i + 2]) << 8 | Int(p[i + 3])
                header = 4
            } else if length == 127 {
                guard n - i >= 10 else { return i }
                var v: UInt64 = 0
                for k in 0..<8 { v = v << 8 | UInt64(p[i + 2 + k]) }
                guard v <= UInt64(Self.maxMessage) else {
                    self.protocolClose(context: context, code: 1009)
                    return n
                }
                length = Int(v)
                header = 10
            }
            if b1 & 0x80 != 0 || b0 & 0x70 != 0 {  // masked server frame, or RSV bits without an extension
                self.protocolClose(context: context, code: 1002)
                return n
            }
            guard n - i >= header + length else { return i }
            let payload = UnsafeRawBufferPointer(rebasing: p[(i + header)..<(i + header + length)])
            i += header + length
            self.handleFrame(fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, payload, now: now, context: context)
            if self.phase == .closed { return n }
        }
        return i
    }

    private func handleFrame(fin: Bool, opcode: UInt8, _ payload: UnsafeRawBufferPointer, now: Int64,
                             context: ChannelHandlerContext) {
        switch opcode {
        case 0x1, 0x2:  // text, binary
            guard self.fragments == nil else { return self.protocolClose(context: context, code: 1002) }
            if fin {
                self.processFrames(payload, now: now, context: context)
            } else {
                var f = context.channel.allocator.buffer(capacity: Swift.max(payload.count * 2, 1024))
                f.writeBytes(payload)
                self.fragments = f
            }
        case 0x0:  // continuation
            guard var f = self.fragments else { return self.protocolClose(context: context, code: 1002) }
            self.fragments = nil
            guard f.readableBytes + payload.count <= Self.maxMessage else {
                return self.protocolClose(context: context, code: 1009)
            }
            f.writeBytes(payload)
            if fin {
                f.withUnsafeReadableBytes { self.processFrames($0, now: now, context: context) }
            } else {
                self.fragments = f
            }
        case 0x9:  // ping → pong with the same payload
            self.sendFrame(context: context, opcode: 0xA, payload)
        case 0xA:  // pong
            break
        case 0x8:  // close
            let code = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
            self.conn.stats.closeCodes[code, default: 0] += 1
            if self.phase == .closing {  // the answer to our close
                self.phase = .closed
                context.close(promise: nil)
            } else {  // server-initiated: echo the code (RFC 6455 §5.5.1), then close the socket
                self.phase = .closing
                let echo: [UInt8] = code == 1005 ? [] : [UInt8(code >> 8), UInt8(code & 0xFF)]
                echo.withUnsafeBytes { self.sendFrame(context: context, opcode: 0x8, $0, thenClose: true) }
                self.phase = .closed
            }
        default:
            self.protocolClose(context: context, code: 1002)
        }
    }

    private func protocolClose(context: ChannelHandlerContext, code: UInt16) {
        guard self.phase != .closed else { return }
        let body: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        body.withUnsafeBytes { self.sendFrame(context: context, opcode: 0x8, $0, thenClose: true) }
        self.phase = .closed
    }

    /// Our orderly close (shutdown): close frame, then the socket once it is written.
    func sendClose(context: ChannelHandlerContext, code: UInt16) {
        guard self.phase != .closing && self.phase != .closed else { return }
        self.phase = .closing
        let body: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        body.withUnsafeBytes { self.sendFrame(context: context, opcode: 0x8, $0, thenClose: true) }
    }

    func sendText(context: ChannelHandlerContext, _ text: [UInt8]) {
        text.withUnsafeBytes { self.sendFrame(context: context, opcode: 0x1, $0) }
    }

    /// One masked client frame (RFC 6455 §5.3: a fresh random key per frame).
    private func sendFrame(context: ChannelHandlerContext, opcode: UInt8, _ payload: UnsafeRawBufferPointer,
                           thenClose: Bool = false) {
        let n = payload.count
        var out = context.channel.allocator.buffer(capacity: n + 14)
        out.writeInteger(UInt8(0x80 | opcode))
        if n < 126 {
            out.writeInteger(UInt8(0x80 | n))
        } else if n < 65536 {
            out.writeInteger(UInt8(0x80 | 126))
            out.writeInteger(UInt16(n))
        } else {
            out.writeInteger(UInt8(0x80 | 127))
            out.writeInteger(UInt64(n))
        }
        var rng = SystemRandomNumberGenerator()
        let key: UInt32 = rng.next()
        out.writeInteger(key)
        let k0 = UInt8(key >> 24), k1 = UInt8((key >> 16) & 0xFF), k2 = UInt8((key >> 8) & 0xFF), k3 = UInt8(key & 0xFF)
        if n > 0 {
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { dst in
                for j in 0..<n {
                    let m: UInt8
                    switch j & 3 {
                    case 0: m = k0
                    case 1: m = k1
                    case 2: m = k2
                    default: m = k3
                    }
                    dst[j] = payload[j] ^ m
                }
                return n
            }
        }
        if thenClose {
            context.writeAndFlush(Self.wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.writeAndFlush(Self.wrapOutboundOut(out), promise: nil)
        }
    }

    // MARK: STOMP

    /// Walks every STOMP frame of one WebSocket message (heart-beat EOLs between frames allowed).
    private func processFrames(_ p: UnsafeRawBufferPointer, now: Int64, context: ChannelHandlerContext) {
        let n = p.count
        var i = 0
        while i < n {
            let b = p[i]
            if b == 0x0A || b == 0x0D || b == 0 {
                i += 1
                continue
            }
            // command line
            let cmdStart = i
            while i < n && p[i] != 0x0A { i += 1 }
            var cmdEnd = i
            if cmdEnd > cmdStart && p[cmdEnd - 1] == 0x0D { cmdEnd -= 1 }
            i += 1
            // headers (only content-length matters here)
            var contentLength = -1
            while i < n {
                let ls = i
                while i < n && p[i] != 0x0A { i += 1 }
                var le = i
                if le > ls && p[le - 1] == 0x0D { le -= 1 }
                i += 1
                if le == ls { break }
                if le - ls > 15 && Self.hasContentLengthPrefix(p, at: ls) {
                    var v = 0
                    var j = ls + 15
                    while j < le, p[j] >= 0x30, p[j] <= 0x39, v < (1 << 40) {
                        v = v * 10 + Int(p[j] - 0x30)
                        j += 1
                    }
                    contentLength = v
                }
            }
            let bodyStart = min(i, n)
            var bodyEnd: Int
            if contentLength >= 0 && bodyStart + contentLength <= n {
                bodyEnd = bodyStart + contentLength
                i = bodyEnd + 1  // the NUL
            } else {
                bodyEnd = bodyStart
                while bodyEnd < n && p[bodyEnd] != 0 { bodyEnd += 1 }
                i = bodyEnd + 1
            }
            self.dispatch(p, cmdStart: cmdStart, cmdEnd: cmdEnd, bodyStart: bodyStart, bodyEnd: bodyEnd,
                          now: now, context: context)
        }
    }

    @inline(__always)
    private static func hasContentLengthPrefix(_ p: UnsafeRawBufferPointer, at i: Int) -> Bool {
        // "content-length:"
        p[i] == 0x63 && p[i + 1] == 0x6F && p[i + 2] == 0x6E && p[i + 3] == 0x74 && p[i + 4] == 0x65
            && p[i + 5] == 0x6E && p[i + 6] == 0x74 && p[i + 7] == 0x2D && p[i + 8] == 0x6C
            && p[i + 9] == 0x65 && p[i + 10] == 0x6E && p[i + 11] == 0x67 && p[i + 12] == 0x74
            && p[i + 13] == 0x68 && p[i + 14] == 0x3A
    }

    private func dispatch(_ p: UnsafeRawBufferPointer, cmdStart: Int, cmdEnd: Int, bodyStart: Int, bodyEnd: Int,
                          now: Int64, context: ChannelHandlerContext) {
        let len = cmdEnd - cmdStart
        guard len > 0 else { return }
        let c0 = p[cmdStart]
        if len == 7 && c0 == UInt8(ascii: "M") {  // MESSAGE
            self.onMessage(p, bodyStart: bodyStart, bodyEnd: bodyEnd, now: now)
        } else if len == 9 && c0 == UInt8(ascii: "C") {  // CONNECTED
            guard self.phase == .connecting else { return }
            self.phase = .subscribing
            self.sendText(context: context, self.conn.config.subscribeFrame)
            if !self.conn.config.receipt { self.subscribedNow(context: context) }
        } else if len == 7 && c0 == UInt8(ascii: "R") {  // RECEIPT (we only ask for one)
            if self.phase == .subscribing { self.subscribedNow(context: context) }
        } else if len == 5 && c0 == UInt8(ascii: "E") {  // ERROR
            if self.phase == .connecting || self.phase == .subscribing {
                self.conn.fail(.stompError)
            } else {
                self.conn.stats.errorFrames += 1
            }
        }
    }

    private func subscribedNow(context: ChannelHandlerContext) {
        self.phase = .subscribed
        self.conn.succeed()
        if let join = self.conn.config.joinFrame {
            self.sendText(context: context, join)
        }
    }

    @inline(__always)
    private func onMessage(_ p: UnsafeRawBufferPointer, bodyStart: Int, bodyEnd: Int, now: Int64) {
        // first `bm<digits>@<digits>` in the body
        guard let base = p.baseAddress else { return }
        var j = bodyStart
        while j + 4 < bodyEnd {
            // next "b" via memchr, then "m<digit>...@<digit>..."
            guard let hit = memchr(base + j, 0x62, bodyEnd - 4 - j) else { break }
            j = base.distance(to: UnsafeRawPointer(hit))
            if p[j + 1] == 0x6D {  // "bm"
                var k = j + 2
                var seq = 0
                let seqStart = k
                while k < bodyEnd, p[k] >= 0x30, p[k] <= 0x39, k - seqStart < 12 {
                    seq = seq * 10 + Int(p[k] - 0x30)
                    k += 1
                }
                if k > seqStart && k < bodyEnd && p[k] == 0x40 {  // "@"
                    k += 1
                    let tStart = k
                    var sent: Int64 = 0
                    while k < bodyEnd, p[k] >= 0x30, p[k] <= 0x39, k - tStart < 19 {
                        sent = sent * 10 + Int64(p[k] - 0x30)
                        k += 1
                    }
                    if k > tStart {
                        self.conn.stats.record(seq: seq, sent: sent, now: now)
                        self.conn.count += 1
                        if self.conn.count == self.conn.config.expect {
                            self.conn.tally.completeConnections.add(1, ordering: .relaxed)
                        }
                        return
                    }
                }
            }
            j += 1
        }
        self.conn.stats.unmarked += 1
    }
}
