import NIOCore
import NIOWebSocket
import Synchronization

/// Writes one hub connection's outbound queue straight onto its WebSocket `Channel`, on the
/// channel's event loop, with no writer task in between.
///
/// Why: through a WebSocket library's async writer (WSCore's, before) every delivery cost two hops (the queue woke the
/// connection's writer task on the Swift pool, whose `write` then hopped to the event loop). A
/// chat into a 10k-viewer room was 20k scheduled jobs, and the last viewer waited for all of
/// them. Here the connection is attached to its event loop's `LoopDrainBatch`, the hub's delivery
/// lane for that loop (`HubLaneAttachment`): a fan-out hands each loop the frame and its members in
/// one go, and the loop writes it straight to every member with nothing queued before it (the
/// rest get it queued behind what waits): one job per event loop per fan-out, no per-viewer work
/// on the publishing thread.
///
/// Back-pressure: a drain writes only while the channel is writable (below NIO's high water
/// mark); otherwise the frames wait in the hub queue, whose limits then declare the connection a
/// slow consumer (`OutboundQueue`), and `ChannelDrainWritabilityHandler` resumes the drain when
/// the socket catches up. A `.close` item is written even to an unwritable channel: the goodbye
/// frames, an RFC 6455 §5.5.1 Close frame with the reason, then the TCP connection is closed.
///
/// Framing: a server's WebSocket frames are not masked (RFC 6455 §5.1), so a message fanned out to
/// many connections is the same bytes on every socket. `LoopDrainBatch.run` frames each distinct
/// message once (`WebSocketFramer`) and every drain writes that one buffer below NIO's
/// `WebSocketFrameEncoder`, straight toward the socket: per delivery a retain and an iovec, no
/// header allocation, no trip through the rest of the pipeline.
///
/// Liveness (RFC 6455 §5.5.2–5.5.3): a connection silent for `pingInterval` is sent a Ping; if it
/// is still silent `pingInterval` later it is closed. Any inbound frame counts (a Pong, a STOMP
/// heart-beat, a chat), seen by `ChannelDrainInboundObserver` right behind the frame decoder and
/// checked from `ConnectionTicker`'s tick: no task or timer per connection (WSCore's auto-ping was
/// a task each, ~3 KiB per idle viewer).
///
/// `HubWebSocketFrameHandler` owns the inbound side and the client's control frames (answering
/// its Pings, its Close); both write whole frames on the same event loop, so frames never
/// interleave. Requires a pipeline without a per-message compression extension.
final class ChannelDrain: Sendable {
    let channel: any Channel
    let connection: HubConnection
    let clock: HubClock
    /// How long a close may take to flush before the channel is closed anyway.
    let closeGrace: Duration
    /// Silence before a Ping, and again before closing (nil: no liveness check).
    let pingInterval: Duration?
    /// `clock.now()` of the last inbound frame, in nanoseconds.
    private let lastInboundNanos: Atomic<Int64>
    private let pingOutstanding = Atomic<Bool>(false)
    let coalesce: @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame]
    let goodbye: @Sendable (HubCloseReason) -> [HubOutboundFrame]
    private let batch: LoopDrainBatch
    private let finished = Atomic<Bool>(false)
    /// The context of NIO's `WebSocketFrameEncoder` in this channel: writes through it are encoded
    /// frame bytes. Set on the event loop before the first drain; nil if the pipeline has no such
    /// encoder (then frames go through `channel.write` as `WebSocketFrame`s). Event loop only.
    nonisolated(unsafe) private var encoderContext: ChannelHandlerContext?
    /// The queue may hold something: set by its wake-up, cleared by `drainNow` just before it
    /// takes everything. While clear, a fanned-out frame goes straight to the socket. Once the
    /// lane is attached the queue only changes on the event loop, so this is exact there.
    private let queueMayHold = Atomic<Bool>(false)
    /// `clock.now()` of the last write, in nanoseconds, kept here and handed to the connection
    /// before each of its ticks (`syncLastWrite`), the only time anything reads it.
    private let lastWriteNanos: Atomic<Int64>

    init(
        channel: any Channel, connection: HubConnection, clock: HubClock, closeGrace: Duration = .seconds(5),
        pingInterval: Duration? = nil,
        coalesce: @escaping @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame],
        goodbye: @escaping @Sendable (HubCloseReason) -> [HubOutboundFrame]
    ) {
        self.channel = channel
        self.connection = connection
        self.clock = clock
        self.closeGrace = closeGrace
        self.pingInterval = pingInterval
        self.lastInboundNanos = Atomic(clock.now().hubNanoseconds)
        self.coalesce = coalesce
        self.goodbye = goodbye
        self.batch = LoopDrainBatch.forLoop(channel.eventLoop)
        self.lastWriteNanos = Atomic(clock.now().hubNanoseconds)
    }

    /// Installs the writability observer and hands the connection's queue over to this drain.
    func start() {
        // Runs on the loop before any drain job (jobs on one loop run in order).
        self.channel.eventLoop.execute { [self] in
            let pipeline = self.channel.pipeline.syncOperations
            self.encoderContext = try? pipeline.context(handlerType: WebSocketFrameEncoder.self)
            try? pipeline.addHandler(ChannelDrainWritabilityHandler(drain: self))
            if let decoder = try? pipeline.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self) {
                try? pipeline.addHandler(ChannelDrainInboundObserver(drain: self), position: .after(decoder))
            }
        }
        self.connection.attach(lane: self.batch, member: self) {
            self.connection.queue.setDrain { [self] in
                self.queueMayHold.store(true, ordering: .relaxed)
                self.batch.submit(.drain(self))
            }
        }
    }

    /// Hands the time of the last write to the connection (heart-beat deadlines read it there).
    /// Called before each of the connection's ticks; the deliveries themselves touch only this
    /// object, not the connection's (a cache miss each in a 10k fan-out).
    func syncLastWrite() {
        self.connection.noteWrite(at: .nanoseconds(self.lastWriteNanos.load(ordering: .relaxed)))
    }

    private func noteWrite(at time: Duration) {
        let nanos = time.hubNanoseconds
        if nanos > self.lastWriteNanos.load(ordering: .relaxed) { self.lastWriteNanos.store(nanos, ordering: .relaxed) }
    }

    /// A frame arrived (any loop or thread).
    func noteInbound() {
        self.lastInboundNanos.store(self.clock.now().hubNanoseconds, ordering: .relaxed)
        self.pingOutstanding.store(false, ordering: .relaxed)
    }

    /// From the connection's tick: Ping a silent peer, close one that stayed silent after it.
    func livenessTick() {
        guard let interval = self.pingInterval, !self.finished.load(ordering: .relaxed) else { return }
        let silent = self.clock.now().hubNanoseconds - self.lastInboundNanos.load(ordering: .relaxed)
        guard silent >= interval.hubNanoseconds else { return }
        if !self.pingOutstanding.load(ordering: .relaxed) {
            self.pingOutstanding.store(true, ordering: .relaxed)
            self.channel.eventLoop.execute { [self] in
                guard self.channel.isActive else { return }
                // Ping, FIN, no payload (RFC 6455 §5.5.2).
                self.channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer()), promise: nil)
            }
        } else if silent >= 2 * interval.hubNanoseconds {
            // No Pong and nothing else for a whole interval after the Ping: the peer is gone.
            self.channel.close(promise: nil)
        }
    }

    /// The earliest hub-clock time `livenessTick` can next act: a Ping `pingInterval` after the
    /// last inbound frame, the close `pingInterval` after that. Only ever early (the last inbound
    /// frame only moves forward).
    func nextLivenessCheck() -> Duration {
        guard let interval = self.pingInterval, !self.finished.load(ordering: .relaxed) else { return .hubNever }
        let last = Duration.nanoseconds(self.lastInboundNanos.load(ordering: .relaxed))
        return self.pingOutstanding.load(ordering: .relaxed) ? last + interval * 2 : last + interval
    }

    /// On the event loop: write what is queued (if the socket takes it) and flush.
    func drainNow() {
        var framer = WebSocketFramer()
        self.drainNow(framer: &framer)
    }

    func drainNow(framer: inout WebSocketFramer) {
        self.channel.eventLoop.assertInEventLoop()
        if self.finished.load(ordering: .relaxed) { return }
        guard self.channel.isActive else {
            self.finished.store(true, ordering: .relaxed)
            _ = self.connection.queue.takeAll()
            return
        }
        if !self.channel.isWritable && !self.connection.queue.isClosing { return }
        self.queueMayHold.store(false, ordering: .relaxed)
        var items = self.connection.queue.takeAll()
        if items.isEmpty { return }
        defer { self.connection.queue.recycle(&items) }
        let encoder = self.encoderContext
        var closeReason: HubCloseReason?
        if items.count == 1, case .frame(let only) = items[0] {
            // The usual case in a fan-out: one message for an idle socket (coalescing one frame is
            // the frame itself), written without building a frames array.
            self.write(only, encoder: encoder, framer: &framer)
        } else {
            var frames: [HubOutboundFrame] = []
            frames.reserveCapacity(items.count)
            for item in items {
                switch item {
                case .frame(let frame): frames.append(frame)
                case .close(let reason): closeReason = reason
                }
                if closeReason != nil { break }
            }
            for frame in self.coalesce(frames) { self.write(frame, encoder: encoder, framer: &framer) }
        }
        self.noteWrite(at: self.clock.now())
        guard let reason = closeReason else {
            if let encoder { encoder.flush() } else { self.channel.flush() }
            return
        }
        self.finished.store(true, ordering: .relaxed)
        for frame in self.goodbye(reason) { self.write(frame, encoder: encoder, framer: &framer) }
        var payload = self.channel.allocator.buffer(capacity: 2 + reason.text.utf8.count)
        payload.writeInteger(reason.webSocketCloseCode)
        payload.writeString(reason.text)
        let channel = self.channel
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)).whenComplete { _ in
            channel.close(promise: nil)
        }
        // A slow consumer is not waited for; anyone else gets `closeGrace` to take the goodbye.
        if reason == .slowConsumer {
            channel.close(promise: nil)
        } else {
            channel.eventLoop.scheduleTask(in: TimeAmount(self.closeGrace)) {
                channel.close(promise: nil)
            }
        }
    }

    /// On the event loop, in lane order: one fanned-out frame for this connection. Written and
    /// flushed at once when nothing waits before it and the socket takes it (the usual case: an
    /// idle viewer), else queued behind what waits (the queue's limits apply, and its drain runs).
    /// (A closed channel needs no check here: NIO fails the write, and the next drain finishes.)
    /// - Parameter now: the hub clock when the lane's job began (the write time for heart-beats:
    ///   early if anything, so a heart-beat is never late).
    func deliverNow(_ frame: HubOutboundFrame, now: Duration, framer: inout WebSocketFramer) {
        if self.finished.load(ordering: .relaxed) { return }
        if !self.queueMayHold.load(ordering: .relaxed) && self.channel.isWritable {
            self.write(frame, encoder: self.encoderContext, framer: &framer, flush: true)
            self.noteWrite(at: now)
            return
        }
        _ = self.connection.enqueueNow(frame)
    }

    /// - Parameter flush: write and flush in one pass down the pipeline.
    private func write(_ frame: HubOutboundFrame, encoder: ChannelHandlerContext?, framer: inout WebSocketFramer, flush: Bool = false) {
        if let encoder {
            let bytes = NIOAny(IOData.byteBuffer(framer.framed(frame, allocator: self.channel.allocator)))
            if flush { encoder.writeAndFlush(bytes, promise: nil) } else { encoder.write(bytes, promise: nil) }
            return
        }
        if flush {
            self.channel.writeAndFlush(frame.webSocketFrame, promise: nil)
        } else {
            self.channel.write(frame.webSocketFrame, promise: nil)
        }
    }
}

/// The hub's delivery lane for one event loop (`HubLaneAttachment`): hand-overs for its connections
/// — fanned-out frames with their members, closes, queues to drain — wait here in order; the
/// first one schedules a job on the loop, which works through everything handed over until it runs.
final class LoopDrainBatch: Sendable {
    enum Work: Sendable {
        /// Write what the connection's queue holds.
        case drain(ChannelDrain)
        /// One frame for each member (`ChannelDrain`s of this loop).
        case deliver(HubOutboundFrame, [ChannelDrain])
        /// Close the connection's queue after what was handed over before.
        case close(ChannelDrain, HubCloseReason)
    }

    let eventLoop: any EventLoop
    private let pending = Mutex<[Work]>([])
    /// Jobs put on the loop so far (tests check the batching).
    let jobsScheduled = Atomic<Int>(0)

    private init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    private static let batches = Mutex<[ObjectIdentifier: LoopDrainBatch]>([:])

    /// One batch per event loop for the life of the process (a server has a handful of loops).
    static func forLoop(_ loop: any EventLoop) -> LoopDrainBatch {
        let key = ObjectIdentifier(loop)
        return self.batches.withLock { batches in
            if let batch = batches[key] { return batch }
            let batch = LoopDrainBatch(eventLoop: loop)
            batches[key] = batch
            return batch
        }
    }

    /// Delivers `frame` to each of `members` (all of this loop), after everything handed to this
    /// lane before. Never waits.
    func deliver(_ frame: HubOutboundFrame, to members: [ChannelDrain]) {
        self.submit(.deliver(frame, members))
    }

    /// Closes `member`'s queue with `reason` after everything handed to this lane before.
    func close(_ member: ChannelDrain, reason: HubCloseReason) {
        self.submit(.close(member, reason))
    }

    func submit(_ work: Work) {
        let first = self.pending.withLock { pending in
            pending.append(work)
            return pending.count == 1
        }
        if first {
            self.jobsScheduled.add(1, ordering: .relaxed)
            self.eventLoop.execute { self.run() }
        }
    }

    private func run() {
        let works = self.pending.withLock { pending in
            let works = pending
            pending = []
            pending.reserveCapacity(works.count)
            return works
        }
        var framer = WebSocketFramer()
        // Behind (more than one fan-out waiting, sustained load): queue them all and let each
        // connection's drain, scheduled behind this job, write everything it got in one write
        // (`coalesce`) — writing each frame on its own here would cost a syscall per frame when
        // the machine has the least to spare.
        var fanOuts = 0
        for work in works { if case .deliver = work { fanOuts += 1 } }
        let coalescing = fanOuts > 1
        for work in works {
            switch work {
            case .drain(let drain):
                drain.drainNow(framer: &framer)
            case .deliver(let frame, let members) where coalescing:
                for member in members { _ = member.connection.enqueueNow(frame) }
            case .deliver(let frame, let members):
                guard let first = members.first else { continue }
                let time = first.clock.now()
                for member in members { member.deliverNow(frame, now: time, framer: &framer) }
            case .close(let drain, let reason):
                // Wakes the drain (a `.drain` behind whatever is handed over meanwhile).
                drain.connection.queue.close(reason)
            }
        }
    }
}

/// Unmasked server frames (RFC 6455 §5.2) for hub messages, each distinct message framed once per
/// batch run. A message is recognised by its bytes' address and length; the entry keeps the
/// original buffer alive, so no other buffer can take that address while the entry exists.
struct WebSocketFramer {
    private struct Entry {
        let original: ByteBuffer
        let address: UInt
        let isText: Bool
        let framed: ByteBuffer
    }

    /// A batch carries a handful of distinct messages (the chats of one burst); coalesced SockJS
    /// frames are one-offs, so only the latest few are kept.
    private static let capacity = 8
    private var entries: [Entry] = []
    private(set) var framings = 0

    mutating func framed(_ frame: HubOutboundFrame, allocator: ByteBufferAllocator) -> ByteBuffer {
        let (payload, isText): (ByteBuffer, Bool) =
            switch frame {
            case .text(let buffer): (buffer, true)
            case .binary(let buffer): (buffer, false)
            }
        let address = payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        for entry in self.entries
        where entry.address == address && entry.isText == isText && entry.original.readableBytes == payload.readableBytes {
            return entry.framed
        }
        let framed = Self.frame(payload, isText: isText, allocator: allocator)
        self.framings += 1
        if self.entries.count == Self.capacity { self.entries.removeFirst() }
        self.entries.append(Entry(original: payload, address: address, isText: isText, framed: framed))
        return framed
    }

    /// FIN set, no mask, opcode text (0x1) or binary (0x2), 7/16/64-bit payload length.
    static func frame(_ payload: ByteBuffer, isText: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = payload.readableBytes
        var out = allocator.buffer(capacity: length + 10)
        out.writeInteger(UInt8(0x80 | (isText ? 0x1 : 0x2)))
        if length < 126 {
            out.writeInteger(UInt8(length))
        } else if length <= 0xFFFF {
            out.writeInteger(UInt8(126))
            out.writeInteger(UInt16(length))
        } else {
            out.writeInteger(UInt8(127))
            out.writeInteger(UInt64(length))
        }
        var payload = payload
        out.writeBuffer(&payload)
        return out
    }
}

/// Right behind the WebSocket frame decoder: every inbound frame (Pongs included, which the
/// WebSocket library consumes) tells the drain the peer is alive.
final class ChannelDrainInboundObserver: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = Any
    let drain: ChannelDrain

    init(drain: ChannelDrain) { self.drain = drain }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.drain.noteInbound()
        context.fireChannelRead(data)
    }
}

/// At the end of a drained connection's pipeline: resumes its drain when the socket can take more.
final class ChannelDrainWritabilityHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = Any
    let drain: ChannelDrain

    init(drain: ChannelDrain) { self.drain = drain }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.drain.drainNow() }
        context.fireChannelWritabilityChanged()
    }
}

extension HubOutboundFrame {
    /// One whole, unmasked server frame (RFC 6455 §5.2).
    var webSocketFrame: WebSocketFrame {
        switch self {
        case .text(let buffer): WebSocketFrame(fin: true, opcode: .text, data: buffer)
        case .binary(let buffer): WebSocketFrame(fin: true, opcode: .binary, data: buffer)
        }
    }
}
