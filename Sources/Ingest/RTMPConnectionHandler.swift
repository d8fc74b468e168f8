#if canImport(Glibc)
import Glibc
#endif
import Logging
import MediaCore
import NIOCore

/// The thin NIO side of one RTMP connection: feeds bytes to `RTMPIngestConnection`, performs
/// its actions (writes, authorizer calls, stream publishing), and owns the timers.
final class RTMPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let server: RTMPServer
    private let secure: Bool
    private var connection: RTMPIngestConnection
    private var logger: Logger
    private var context: ChannelHandlerContext?

    private var record: PublisherRecord?
    /// Set before a close that we initiate; `.closed` when the peer goes.
    private var stopReason: PublisherStopReason?
    private var closing = false
    private var handshakeDone = false
    private var handshakeTimer: Scheduled<Void>?
    private var idleTimer: RepeatedTask?
    private var lastActivity = NIODeadline.now()
    private var lastMedia = NIODeadline.now()
    private var streamKeyTagValue: String?
    private var receiveCoalescing: ReceiveCoalescing
    private var bytesSinceTick = 0
    private var lastTick = NIODeadline.now()

    init(server: RTMPServer, secure: Bool) {
        self.server = server
        self.secure = secure
        let configuration = server.configuration
        self.connection = RTMPIngestConnection(
            session: .init(
                app: configuration.app, windowAckSize: UInt32(clamping: configuration.windowAckSize),
                outboundChunkSize: UInt32(clamping: configuration.outboundChunkSize)),
            limits: .init(
                maxChunkSize: configuration.maxChunkSize, maxMessageSize: configuration.maxMessageSize,
                maxChunkStreams: configuration.maxChunkStreams, amf: configuration.amf))
        self.logger = server.logger
        self.receiveCoalescing = ReceiveCoalescing(window: configuration.receiveCoalescingWindow)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let id = server.connectionOpened(context.channel) else {
            context.close(promise: nil)
            return
        }
        logger[metadataKey: "rtmp.connection"] = "\(id)"
        if let remote = context.remoteAddress { logger[metadataKey: "rtmp.peer"] = "\(remote)" }
        if secure { logger[metadataKey: "rtmp.tls"] = "true" }
        lastActivity = .now()
        let configuration = server.configuration
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: configuration.handshakeTimeout) {
            let handler = loopBound.value
            if !handler.handshakeDone { handler.fail("handshake timed out") }
        }
        let checkEvery = TimeAmount.nanoseconds(min(configuration.idleTimeout.nanoseconds / 2, 1_000_000_000))
        idleTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: checkEvery, delay: checkEvery) { _ in
            loopBound.value.checkIdle()
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        idleTimer?.cancel()
        closing = true
        server.connectionClosed(context.channel)
        if let record {
            let reason = stopReason ?? .closed
            Task { await record.stop(reason: reason) }
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        guard !closing else { return }
        server.metrics.bytesIn.increment(by: Int64(bytes.readableBytes))
        lastActivity = .now()
        bytesSinceTick &+= bytes.readableBytes
        connection.receive(bytes)
        if connection.bufferedBytes > server.configuration.maxBufferedBytes {
            fail("more than \(server.configuration.maxBufferedBytes) bytes buffered")
            return
        }
        run()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail("connection error: \(error)")
    }

    // MARK: - Driving the connection

    private func run() {
        guard !closing else { return }
        let actions: [RTMPIngestConnection.Action]
        do {
            actions = try connection.process()
        } catch {
            fail("protocol error: \(error)")
            return
        }
        perform(actions)
    }

    private func perform(_ actions: [RTMPIngestConnection.Action]) {
        guard let context else { return }
        var wrote = false
        for action in actions {
            guard !closing else { return }
            switch action {
            case .write(let bytes):
                context.write(wrapOutboundOut(bytes), promise: nil)
                wrote = true
            case .handshakeCompleted:
                handshakeDone = true
                handshakeTimer?.cancel()
            case .authorize(let app, let streamKey):
                if wrote {
                    context.flush()
                    wrote = false
                }
                authorize(app: app, streamKey: streamKey, context: context)
            case .refuse(let reason):
                server.metrics.refused(reason)
                logger.info(
                    "publish refused",
                    metadata: ["reason": "\(reason.rawValue)", "key": "\(streamKeyTagValue ?? "-")"])
                closing = true
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in
                    channel.close(promise: nil)
                }
                return
            case .emit(let event):
                switch event {
                case .packet(let packet):
                    lastMedia = .now()
                    server.metrics.packetIn(type: packet.kind.rawValue)
                case .config:
                    server.metrics.packetIn(type: "config")
                case .metadata:
                    server.metrics.packetIn(type: "metadata")
                default:
                    break
                }
                record?.publish(event)
            case .unpublish:
                if wrote { context.flush() }
                close(reason: .unpublished)
                return
            case .notice(let text):
                logger.info("\(text)")
            }
        }
        if wrote { context.flush() }
    }

    private func authorize(app: String, streamKey: String, context: ChannelHandlerContext) {
        streamKeyTagValue = streamKeyTag(streamKey)
        let server = self.server
        let channel = context.channel
        let logger = self.logger
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        Task {
            let decision = await server.authorizer.authorizePublish(app: app, streamKey: streamKey)
            switch decision {
            case .accept(let roomId):
                var publishLogger = logger
                publishLogger[metadataKey: "room"] = "\(roomId)"
                let record = await server.beginPublish(roomId: roomId, channel: channel, logger: publishLogger)
                eventLoop.execute { loopBound.value.authorized(record: record) }
            case .reject(let reason):
                eventLoop.execute { loopBound.value.rejected(reason) }
            }
        }
    }

    private func authorized(record: PublisherRecord) {
        guard !closing, context != nil else {
            let reason = stopReason ?? .closed
            Task { await record.stop(reason: reason) }
            return
        }
        self.record = record
        logger[metadataKey: "room"] = "\(record.roomId)"
        logger.info("publish started", metadata: ["key": "\(streamKeyTagValue ?? "-")"])
        lastMedia = .now()
        bytesSinceTick = 0
        lastTick = .now()
        perform(connection.authorizationAccepted())
        run()
    }

    private func rejected(_ reason: PublishRejection) {
        guard !closing else { return }
        perform(connection.authorizationRejected(reason))
    }

    private func checkIdle() {
        guard !closing else { return }
        let timeout = server.configuration.idleTimeout
        let now = NIODeadline.now()
        if record != nil {
            coalesceReceives(now: now)
            if now - lastMedia > timeout {
                logger.info("publisher idle: no media", metadata: ["timeout": "\(timeout)"])
                close(reason: .idle)
            }
        } else if !connection.session.isAwaitingAuthorization, now - lastActivity > timeout {
            logger.info("connection idle before publishing")
            close(reason: .idle)
        }
    }

    /// Adjusts the socket's receive low-water mark to the stream's rate (`ReceiveCoalescing`).
    private func coalesceReceives(now: NIODeadline) {
        let bytes = bytesSinceTick
        let elapsed = now - lastTick
        bytesSinceTick = 0
        lastTick = now
        #if os(Linux)
        guard let mark = receiveCoalescing.update(bytesSinceLastTick: bytes, elapsed: elapsed),
            let options = context?.channel.syncOptions
        else { return }
        do {
            try options.setOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_RCVLOWAT)), value: SocketOptionValue(mark))
        } catch {
            logger.debug("SO_RCVLOWAT not set: \(error)")
        }
        #endif
    }

    /// Bad input: exactly one warning line, then close.
    private func fail(_ reason: String) {
        guard !closing else { return }
        server.metrics.protocolErrors.increment()
        logger.warning("closing RTMP connection: \(reason)")
        close(reason: .protocolError)
    }

    private func close(reason: PublisherStopReason) {
        guard !closing else { return }
        closing = true
        stopReason = reason
        if let record {
            Task { await record.stop(reason: reason) }
        }
        context?.close(promise: nil)
    }
}
