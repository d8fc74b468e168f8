import NIOCore
import NIOWebSocket
import Synchronization

/// A hub connection that lives on its NIO channel alone: no task while it is idle.
///
/// Why: a task per connection (the WebSocket library's handler task, awaiting the next frame) kept
/// its async frames, an inbound stream and an outbound writer alive for every idle viewer; with
/// Hummingbird's HTTP/1 connection machinery that was ~37 KiB per watching viewer
/// (`bench/hub/idle_memory.py`). Here an idle connection is its pipeline, its hub objects and a
/// ticker entry. Inbound frames are handled by `HubWebSocketFrameHandler` on the event loop; the
/// work they cause (parsing, token checks, SENDs) runs in order on a short task started when the
/// first frame of a burst arrives and ended when the burst is done (`InboundProcessor`). Writing
/// is `ChannelDrain`'s, ticking `ConnectionTicker`'s.
extension ConnectionRunner {
    /// Runs `session` on `channel`, whose pipeline ends with NIO's WebSocket frame codecs (just
    /// upgraded): the server's WebSocket transport. Call on the channel's event loop. `start` runs
    /// first, before any frame; `finish` runs once, after the channel closed and every frame before
    /// it was handled. A shutdown's quiesce closes the connection politely.
    static func attach(_ session: HubSessionHandle, to channel: any Channel, hub: Hub, closeGrace: Duration = .seconds(5), pingInterval: Duration? = .seconds(30)) {
        let (connection, clock, tickInterval, maxInboundBytes) = (session.connection, hub.clock, session.tickInterval, hub.configuration.maxInboundBytes)
        let (coalesce, goodbye, start, onFrame, onTick, nextTickDue, end) = (
            session.coalesce, session.goodbye, session.start, session.onFrame, session.onTick, session.nextTickDue, session.finish)
        let quiesce: @Sendable () -> Void = { hub.close(connection, reason: .shutdown) }
        channel.eventLoop.assertInEventLoop()
        let drain = ChannelDrain(
            channel: channel, connection: connection, clock: clock, closeGrace: closeGrace, pingInterval: pingInterval,
            coalesce: coalesce, goodbye: goodbye)
        drain.start()
        let ticker = ConnectionTicker.shared(interval: tickInterval)
        // Ticked when the session or the liveness check can next fall due (`nextTickDue`: the
        // session's earliest deadline on `clock`, nil = every round); a handled frame may bring
        // that forward (a CONNECT negotiating heart-beats), so it wakes the ticket.
        let ticket = ticker.add(clock: clock) {
            drain.syncLastWrite()
            drain.livenessTick()
            guard await onTick() else { return .stop }
            guard let sessionDue = nextTickDue() else { return .everyRound }
            return .again(notBefore: min(sessionDue, drain.nextLivenessCheck()))
        }
        let processor = InboundProcessor(
            maxBytes: maxInboundBytes,
            start: start,
            onFrame: { frame in
                let keepReading = await onFrame(frame)
                ticket.wake()
                return keepReading
            },
            onStopped: {
                // The session asked to close; its goodbye is queued, the drain closes the channel.
                // A reader that stopped without that (client half-closed) closes it here.
                if !connection.isClosing { channel.close(promise: nil) }
            },
            end: {
                ticker.remove(ticket)
                await end()
            },
            setReading: { reading in channel.setOption(ChannelOptions.autoRead, value: reading).whenFailure { _ in } })
        processor.enqueue(.start)
        do {
            try channel.pipeline.syncOperations.addHandler(HubWebSocketFrameHandler(processor: processor, quiesce: quiesce))
        } catch {
            channel.close(promise: nil)
            processor.enqueue(.end)
            return
        }
        // Closed before the handler was in place: its channelInactive never comes.
        if !channel.isActive { processor.enqueue(.end) }
    }
}

extension ConnectionRunner {
    /// Writes `frames`, a Close with `code` and `reason`, and closes: for a connection the hub
    /// cannot take (shutting down). Call on the channel's event loop.
    static func refuse(channel: any Channel, frames: [HubOutboundFrame], code: UInt16, reason: String) {
        for frame in frames { channel.write(frame.webSocketFrame, promise: nil) }
        var payload = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        payload.writeInteger(code)
        payload.writeString(reason)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

/// One connection's inbound work, in order, on a task that exists only while there is work.
///
/// A flood is held back, not buffered: once the frames received and not yet processed reach
/// `maxBytes` (payloads plus `frameOverhead` each) the channel stops reading (`autoRead` off) until
/// the backlog is half worked off, so TCP pushes back on the client. Counted in bytes, not frames:
/// a frame may be 1 MiB. What one socket read already holds is still decoded and queued, so the
/// backlog can pass `maxBytes` by one read's frames; a frame counts until its work is done. The task
/// yields after each frame, so a flooding connection takes its turn with the others.
final class InboundProcessor: Sendable {
    enum Job: Sendable {
        case start
        case frame(HubInboundFrame)
        case end
    }

    private struct State {
        var jobs = CircularBuffer<Job>(initialCapacity: 4)
        var running = false
        /// The session asked to close: later frames are dropped.
        var stopped = false
        /// `.end` is queued: nothing is accepted after it.
        var ended = false
        var readingPaused = false
        /// Bytes of the queued frames and of the one being worked on (`cost`).
        var backlogBytes = 0
    }

    /// What a queued frame costs besides its payload (its job and buffer headers, roughly).
    static let frameOverhead = 64

    static func cost(of job: Job) -> Int {
        if case .frame(let frame) = job { return frame.data.readableBytes + Self.frameOverhead }
        return 0
    }

    let maxBytes: Int
    private let state = Mutex(State())
    private let start: @Sendable () async -> Void
    private let onFrame: @Sendable (HubInboundFrame) async -> Bool
    private let onStopped: @Sendable () -> Void
    private let end: @Sendable () async -> Void
    private let setReading: @Sendable (Bool) -> Void

    init(
        maxBytes: Int,
        start: @escaping @Sendable () async -> Void, onFrame: @escaping @Sendable (HubInboundFrame) async -> Bool,
        onStopped: @escaping @Sendable () -> Void, end: @escaping @Sendable () async -> Void,
        setReading: @escaping @Sendable (Bool) -> Void
    ) {
        self.start = start
        self.onFrame = onFrame
        self.onStopped = onStopped
        self.end = end
        self.setReading = setReading
        self.maxBytes = max(1, maxBytes)
    }

    /// Jobs queued and not yet taken (tests).
    var backlog: Int { self.state.withLock { $0.jobs.count } }
    /// Bytes counted against `maxBytes` now (tests).
    var backlogBytes: Int { self.state.withLock { $0.backlogBytes } }

    func enqueue(_ job: Job) {
        let (startTask, pause) = self.state.withLock { s -> (Bool, Bool) in
            if s.ended { return (false, false) }
            if case .end = job { s.ended = true }
            s.jobs.append(job)
            s.backlogBytes += Self.cost(of: job)
            var pause = false
            if s.backlogBytes >= self.maxBytes && !s.readingPaused {
                s.readingPaused = true
                pause = true
            }
            if s.running { return (false, pause) }
            s.running = true
            return (true, pause)
        }
        if pause { self.setReading(false) }
        if startTask { Task { await self.run() } }
    }

    private func run() async {
        var done = 0
        while true {
            let (next, resume, stopped): (Job?, Bool, Bool) = self.state.withLock { s in
                s.backlogBytes -= done
                var resume = false
                if s.readingPaused && s.backlogBytes <= self.maxBytes / 2 {
                    s.readingPaused = false
                    resume = true
                }
                guard let job = s.jobs.popFirst() else {
                    s.running = false
                    return (nil, resume, s.stopped)
                }
                return (job, resume, s.stopped)
            }
            if resume { self.setReading(true) }
            guard let next else { return }
            done = Self.cost(of: next)
            switch next {
            case .start:
                await self.start()
            case .frame(let frame):
                if stopped { continue }
                if !(await self.onFrame(frame)) {
                    self.state.withLock { $0.stopped = true }
                    self.onStopped()
                }
                // A frame's work rarely suspends (a heart-beat, a parse error, a refusal): without
                // this, a connection that keeps its backlog full would keep a thread of the
                // cooperative pool (one per core) to itself, and every other connection would wait.
                await Task.yield()
            case .end:
                await self.end()
                return
            }
        }
    }
}

/// The end of an upgraded hub connection's pipeline: data frames go to the `InboundProcessor`;
/// control frames are answered here, on the event loop (RFC 6455 §5.5).
///
/// - A client frame must be masked (§5.1) and may not set RSV bits (§5.2, no extension is
///   negotiated); a frame with an opcode this server does not know is refused too: all with a
///   Close 1002 (protocol error), then the TCP connection is closed.
/// - Ping → Pong with the same payload; a Pong only counts as liveness (`ChannelDrainInboundObserver`).
/// - Close → a Close echoing the client's code (1000 without one, 1002 for a malformed or reserved
///   code, §7.4), then the TCP connection is closed (§7.1.1: the server closes first).
/// - Oversized and malformed frames never get here: NIO's `WebSocketProtocolErrorHandler` answers
///   the decoder's errors with a Close (1009 / 1002) and closes.
/// - `ChannelShouldQuiesceEvent` (server shutting down) → `quiesce`, which closes the hub connection
///   with its goodbye.
/// - `ChannelEvent.inputClosed` (the client half-closed TCP without a Close frame) → closed.
final class HubWebSocketFrameHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let processor: InboundProcessor
    private let quiesce: @Sendable () -> Void
    private var closing = false

    init(processor: InboundProcessor, quiesce: @escaping @Sendable () -> Void) {
        self.processor = processor
        self.quiesce = quiesce
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        if self.closing { return }
        guard frame.maskKey != nil, !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            self.close(context: context, code: 1002)
            return
        }
        switch frame.opcode {
        case .text:
            self.processor.enqueue(.frame(HubInboundFrame(kind: .text, data: frame.unmaskedData, fin: frame.fin)))
        case .binary:
            self.processor.enqueue(.frame(HubInboundFrame(kind: .binary, data: frame.unmaskedData, fin: frame.fin)))
        case .continuation:
            self.processor.enqueue(.frame(HubInboundFrame(kind: .continuation, data: frame.unmaskedData, fin: frame.fin)))
        case .ping:
            context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            break
        case .connectionClose:
            self.close(context: context, code: Self.replyCode(toClosePayload: frame.unmaskedData))
        default:
            self.close(context: context, code: 1002)
        }
    }

    /// RFC 6455 §5.5.1 / §7.4: the status code to answer a client's Close with.
    static func replyCode(toClosePayload payload: ByteBuffer) -> UInt16 {
        if payload.readableBytes == 0 { return 1000 }
        guard payload.readableBytes >= 2, let code = payload.getInteger(at: payload.readerIndex, as: UInt16.self) else { return 1002 }
        switch code {
        case 1000...1003, 1007...1011, 3000...4999: return code
        default: return 1002
        }
    }

    private func close(context: ChannelHandlerContext, code: UInt16) {
        self.closing = true
        var payload = context.channel.allocator.buffer(capacity: 2)
        payload.writeInteger(code)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)))
            .whenComplete { _ in channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.processor.enqueue(.end)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.quiesce()
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client shut its side of the TCP connection without a Close frame (the server's
            // channels allow half-closure): nothing more can come, so close now rather than at the
            // next liveness check, a minute later, which would hold its per-address and per-user
            // places until then.
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
