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
    private var publishDeadlineTimer: Scheduled<Void>?
    private var idleTimer: RepeatedTask?
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
                maxChunkStreams: configuration.maxChunkStreams, reassemblyBytesBeforePublish: configuration.reassemblyBytesBeforePublish,
                reassemblyBytes: configuration.reassemblyBytes, amf: configuration.amf))
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
        guard case .accepted(let id) = server.connectionOpened(context.channel) else {
            // Over a connection limit (logged by the server) or shutting down.
            closing = true
            context.close(promise: nil)
            return
        }
        logger[metadataKey: "rtmp.connection"] = "\(id)"
        if let remote = context.remoteAddress { logger[metadataKey: "rtmp.peer"] = "\(remote)" }
        if secure { logger[metadataKey: "rtmp.tls"] = "true" }
        let configuration = server.configuration
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        schedulePublishDeadline(in: configuration.publishDeadline, loopBound: loopBound, eventLoop: context.eventLoop)
        let checkEvery = TimeAmount.nanoseconds(min(configuration.idleTimeout.nanoseconds / 2, 1_000_000_000))
        idleTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: checkEvery, delay: checkEvery) { _ in
            loopBound.value.checkIdle()
        }
        context.fireChannelActive()
    }

    /// Handshake + `connect` + `publish` must be done by the deadline, however many bytes trickle
    /// in; only our own authoriser still deciding earns a little more time.
    private func schedulePublishDeadline(in delay: TimeAmount, loopBound: NIOLoopBound<RTMPConnectionHandler>, eventLoop: any EventLoop) {
        publishDeadlineTimer = eventLoop.scheduleTask(in: delay) {
            let handler = loopBound.value
            guard handler.record == nil, !handler.closing else { return }
            if handler.connection.session.isAwaitingAuthorization {
                handler.schedulePublishDeadline(in: .seconds(1), loopBound: loopBound, eventLoop: eventLoop)
                return
            }
            let seconds = Double(handler.server.configuration.publishDeadline.nanoseconds) / 1e9
            handler.fail("no publish within \(seconds) s of connecting (handshake, connect and publish; LIVEHUB_RTMP_PUBLISH_DEADLINE)")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        publishDeadlineTimer?.cancel()
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
        bytesSinceTick &+= bytes.readableBytes
        connection.receive(bytes)
        // Before `publish`, only small commands have a reason to be in flight.
        let sentPublish = connection.session.isAwaitingAuthorization || connection.session.isPublishing
        let limit = sentPublish ? server.configuration.maxBufferedBytes : server.configuration.maxBufferedBytesBeforePublish
        if connection.bufferedBytes > limit {
            fail("more than \(limit) bytes buffered\(sentPublish ? "" : " before publishing")")
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
                break
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
        publishDeadlineTimer?.cancel()
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
        // Before the publish, the publish deadline decides (`schedulePublishDeadline`).
        if record != nil {
            coalesceReceives(now: now)
            if now - lastMedia > timeout {
                logger.info("publisher idle: no media", metadata: ["timeout": "\(timeout)"])
                close(reason: .idle)
            }
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
