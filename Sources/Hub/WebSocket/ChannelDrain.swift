import NIOCore
import NIOWebSocket
import Synchronization

/// Writes one hub connection's outbound queue straight onto its WebSocket `Channel`, on the
/// channel's event loop, with no writer task in between.
///
/// Why: through WSCore's async writer every delivery cost two hops (the queue woke the
/// connection's writer task on the Swift pool, whose `write` then hopped to the event loop). A
/// chat into a 10k-viewer room was 20k scheduled jobs, and the last viewer waited for all of
/// them. Here an enqueue only appends to the queue; the first one for a connection since its last
/// drain also puts the connection on its event loop's `LoopDrainBatch`, and the batch runs once
/// per loop for every connection queued meanwhile: one job per event loop per fan-out.
///
/// Back-pressure: a drain writes only while the channel is writable (below NIO's high water
/// mark); otherwise the frames wait in the hub queue, whose limits then declare the connection a
/// slow consumer (`OutboundQueue`), and `ChannelDrainWritabilityHandler` resumes the drain when
/// the socket catches up. A `.close` item is written even to an unwritable channel: the goodbye
/// frames, an RFC 6455 §5.5.1 Close frame with the reason, then the TCP connection is closed.
///
/// The WebSocket library (WSCore) still owns the upgrade, the inbound side and control frames
/// (ping/pong, the client's Close); both write whole frames on the same event loop, so frames
/// never interleave. Requires a pipeline without a per-message compression extension.
final class ChannelDrain: Sendable {
    let channel: any Channel
    let connection: HubConnection
    let clock: HubClock
    /// How long a close may take to flush before the channel is closed anyway.
    let closeGrace: Duration
    let coalesce: @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame]
    let goodbye: @Sendable (HubCloseReason) -> [HubOutboundFrame]
    private let batch: LoopDrainBatch
    /// Touched on the event loop only (NIOLoopBound would need the loop at every access).
    private let finished = Atomic<Bool>(false)

    init(
        channel: any Channel, connection: HubConnection, clock: HubClock, closeGrace: Duration = .seconds(5),
        coalesce: @escaping @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame],
        goodbye: @escaping @Sendable (HubCloseReason) -> [HubOutboundFrame]
    ) {
        self.channel = channel
        self.connection = connection
        self.clock = clock
        self.closeGrace = closeGrace
        self.coalesce = coalesce
        self.goodbye = goodbye
        self.batch = LoopDrainBatch.forLoop(channel.eventLoop)
    }

    /// Installs the writability observer and hands the connection's queue over to this drain.
    func start() {
        _ = self.channel.pipeline.addHandler(ChannelDrainWritabilityHandler(drain: self))
        self.connection.queue.setDrain { [self] in self.batch.submit(self) }
    }

    /// On the event loop: write what is queued (if the socket takes it) and flush.
    func drainNow() {
        self.channel.eventLoop.assertInEventLoop()
        if self.finished.load(ordering: .relaxed) { return }
        guard self.channel.isActive else {
            self.finished.store(true, ordering: .relaxed)
            _ = self.connection.queue.takeForDrain()
            return
        }
        if !self.channel.isWritable && !self.connection.isClosing { return }
        let items = self.connection.queue.takeForDrain()
        if items.isEmpty { return }
        var frames: [HubOutboundFrame] = []
        frames.reserveCapacity(items.count)
        var closeReason: HubCloseReason?
        for item in items {
            switch item {
            case .frame(let frame): frames.append(frame)
            case .close(let reason): closeReason = reason
            }
            if closeReason != nil { break }
        }
        for frame in self.coalesce(frames) { self.write(frame) }
        self.connection.noteWrite(at: self.clock.now())
        guard let reason = closeReason else {
            self.channel.flush()
            return
        }
        self.finished.store(true, ordering: .relaxed)
        for frame in self.goodbye(reason) { self.write(frame) }
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

    private func write(_ frame: HubOutboundFrame) {
        switch frame {
        case .text(let buffer): self.channel.write(WebSocketFrame(fin: true, opcode: .text, data: buffer), promise: nil)
        case .binary(let buffer): self.channel.write(WebSocketFrame(fin: true, opcode: .binary, data: buffer), promise: nil)
        }
    }
}

/// The connections of one event loop whose queues have something to write: the first submit
/// schedules one job on the loop, which drains every connection submitted until it runs.
final class LoopDrainBatch: Sendable {
    let eventLoop: any EventLoop
    private let pending = Mutex<[ChannelDrain]>([])
    /// Jobs put on the loop so far (tests check the batching).
    let jobsScheduled = Atomic<Int>(0)

    private init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    private static let batches = Mutex<[ObjectIdentifier: LoopDrainBatch]>([:])

    /// One batch per event loop for the life of the process (a server has a handful of loops).
    static func forLoop(_ loop: any EventLoop) -> LoopDrainBatch {
        let key = ObjectIdentifier(loop as AnyObject)
        return self.batches.withLock { batches in
            if let batch = batches[key] { return batch }
            let batch = LoopDrainBatch(eventLoop: loop)
            batches[key] = batch
            return batch
        }
    }

    func submit(_ drain: ChannelDrain) {
        let first = self.pending.withLock { pending in
            pending.append(drain)
            return pending.count == 1
        }
        if first {
            self.jobsScheduled.add(1, ordering: .relaxed)
            self.eventLoop.execute { self.run() }
        }
    }

    private func run() {
        let drains = self.pending.withLock { pending in
            let drains = pending
            pending = []
            pending.reserveCapacity(drains.count)
            return drains
        }
        for drain in drains { drain.drainNow() }
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
