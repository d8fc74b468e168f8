import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

@testable import Hub

/// `ChannelDrain`: the hub queue written straight onto a channel on its event loop, one job per
/// loop, holding back while the socket is full and closing with an RFC 6455 Close frame.
@Suite struct ChannelDrainTests {
    struct Rig {
        let hub: Hub
        let connection: HubConnection
        let channel: EmbeddedChannel

        init(maxFrames: Int = 256) throws {
            hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: maxFrames, maxBytes: 1 << 20)))
            connection = try hub.register(format: .stomp(.raw))
            channel = EmbeddedChannel()
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            ChannelDrain(channel: channel, connection: connection, clock: hub.clock, coalesce: { $0 }, goodbye: { _ in [.text(ByteBuffer(string: "goodbye"))] })
                .start()
        }

        func written() throws -> [(WebSocketOpcode, String)] {
            try writtenFrames().map { ($0.opcode, String(buffer: $0.data)) }
        }

        func writtenFrames() throws -> [WebSocketFrame] {
            var frames: [WebSocketFrame] = []
            while let frame = try channel.readOutbound(as: WebSocketFrame.self) { frames.append(frame) }
            return frames
        }
    }

    @Test func framesReachTheChannelWhenTheLoopRunsInOrder() throws {
        let rig = try Rig()
        #expect(rig.hub.send(.text(ByteBuffer(string: "a")), to: rig.connection))
        #expect(rig.hub.send(.text(ByteBuffer(string: "b")), to: rig.connection))
        #expect(try rig.written().isEmpty, "nothing is written off the event loop")
        rig.channel.embeddedEventLoop.run()
        let frames = try rig.written()
        #expect(frames.map(\.1) == ["a", "b"])
        #expect(frames.allSatisfy { $0.0 == .text })
        #expect(rig.connection.takePendingOutbound().isEmpty)
    }

    @Test func aFullSocketHoldsFramesInTheQueueUntilItIsWritableAgain() throws {
        let rig = try Rig()
        rig.channel.isWritable = false
        rig.hub.send(.text(ByteBuffer(string: "held")), to: rig.connection)
        rig.channel.embeddedEventLoop.run()
        #expect(try rig.written().isEmpty)
        rig.channel.isWritable = true
        rig.channel.pipeline.fireChannelWritabilityChanged()
        #expect(try rig.written().map(\.1) == ["held"])
    }

    @Test func aConsumerThatStaysFullIsClosedAsSlow() throws {
        let rig = try Rig(maxFrames: 3)
        rig.channel.isWritable = false
        for index in 0..<4 { rig.hub.send(.text(ByteBuffer(string: "m\(index)")), to: rig.connection) }
        // The hand-overs reach the queue on the loop, in order; the fourth overflows it there.
        rig.channel.embeddedEventLoop.run()
        #expect(rig.connection.wasDroppedAsSlow)
        #expect(rig.hub.snapshot().slowClientDrops == 1)
        let frames = try rig.writtenFrames()
        #expect(frames.map { String(buffer: $0.data) }.first == "goodbye", "pending frames are dropped, goodbye then close")
        #expect(frames.count == 2)
        guard var close = frames.last?.data, frames.last?.opcode == .connectionClose else { Issue.record("no close frame: \(frames)"); return }
        #expect(close.readInteger(as: UInt16.self) == HubCloseReason.slowConsumer.webSocketCloseCode)
        #expect(close.readString(length: close.readableBytes) == "slow consumer")
        #expect(!rig.channel.isActive)
    }

    @Test func closeWritesQueuedFramesGoodbyeAndACloseFrameThenClosesTheChannel() throws {
        let rig = try Rig()
        rig.hub.send(.text(ByteBuffer(string: "last")), to: rig.connection)
        rig.hub.close(rig.connection, reason: .normal)
        rig.hub.send(.text(ByteBuffer(string: "after close")), to: rig.connection)
        rig.channel.embeddedEventLoop.run()
        let frames = try rig.written()
        #expect(frames.map(\.1).prefix(2) == ["last", "goodbye"])
        #expect(frames.count == 3 && frames[2].0 == .connectionClose)
        #expect(frames[2].1.hasSuffix("bye"))
        #expect(!rig.channel.isActive)
    }

    @Test func manyConnectionsOnOneLoopAreDrainedByOneJob() throws {
        let hub = Hub()
        let loop = EmbeddedEventLoop()
        var channels: [EmbeddedChannel] = []
        var connections: [HubConnection] = []
        for _ in 0..<50 {
            let connection = try hub.register(format: .stomp(.raw))
            connections.append(connection)
            #expect(hub.subscribe(connection, topic: "/topic/t"))
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            ChannelDrain(channel: channel, connection: connection, clock: hub.clock, coalesce: { $0 }, goodbye: { _ in [] }).start()
            channels.append(channel)
        }
        loop.run()
        let batch = LoopDrainBatch.forLoop(loop)
        let jobsBefore = batch.jobsScheduled.load(ordering: .relaxed)
        #expect(hub.publish(topic: "/topic/t", json: #"{"n":1}"#) == 50)
        #expect(batch.jobsScheduled.load(ordering: .relaxed) - jobsBefore == 1, "one job for the 50 connections")
        // The publisher only handed the loop its members: nothing was queued per connection.
        #expect(connections.allSatisfy { $0.takePendingOutbound().isEmpty })
        loop.run()
        for channel in channels {
            let frame = try channel.readOutbound(as: WebSocketFrame.self)
            #expect(frame.map { String(buffer: $0.data).contains(#"{"n":1}"#) } == true)
        }
    }

    @Test func repliesFanOutFramesAndTheCloseReachTheSocketInTheOrderTheyWereHandedOver() throws {
        let rig = try Rig()
        #expect(rig.hub.subscribe(rig.connection, topic: "/topic/room"))
        // A reply queued while the socket is full: its drain job is scheduled before the fan-out.
        rig.channel.isWritable = false
        #expect(rig.hub.send(.text(ByteBuffer(string: "a")), to: rig.connection))
        rig.channel.embeddedEventLoop.run()
        rig.channel.isWritable = true
        #expect(rig.hub.publish(topic: "/topic/room", json: "p") == 1)
        #expect(rig.hub.send(.text(ByteBuffer(string: "b")), to: rig.connection))
        rig.hub.close(rig.connection, reason: .normal)
        #expect(rig.connection.isClosing, "a requested close shows at once")
        #expect(!rig.hub.send(.text(ByteBuffer(string: "after close")), to: rig.connection))
        #expect(rig.hub.publish(topic: "/topic/room", json: "late") == 1, "handed over; the loop finds it closed")
        rig.channel.pipeline.fireChannelWritabilityChanged()
        rig.channel.embeddedEventLoop.run()
        let frames = try rig.written()
        #expect(frames.count == 5, "\(frames)")
        guard frames.count == 5 else { return }
        #expect(frames[0].1 == "a" && frames[2].1 == "b" && frames[3].1 == "goodbye")
        #expect(frames[4].0 == .connectionClose)
        #expect(frames[1].1.hasPrefix("MESSAGE\n") && frames[1].1.contains("\n\np\u{0}"))
        #expect(!frames.contains { $0.1.contains("late") })
    }

    @Test func fanOutsThatPileUpBeforeTheLoopRunsAreWrittenTogetherByTheDrain() throws {
        let hub = Hub()
        let connection = try hub.register(format: .stomp(.raw))
        #expect(hub.subscribe(connection, topic: "/topic/room"))
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // A coalescer that joins what it is given: one frame out means one write for the batch.
        let joined: @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame] = { frames in
            guard frames.count > 1 else { return frames }
            var all = ByteBuffer()
            for frame in frames { var b = frame.buffer; all.writeBuffer(&b) }
            return [.text(all)]
        }
        ChannelDrain(channel: channel, connection: connection, clock: hub.clock, coalesce: joined, goodbye: { _ in [] }).start()
        channel.embeddedEventLoop.run()
        for n in 1...3 { #expect(hub.publish(topic: "/topic/room", json: "m\(n)") == 1) }
        channel.embeddedEventLoop.run()
        var frames: [WebSocketFrame] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) { frames.append(frame) }
        #expect(frames.count == 1, "three fan-outs behind each other: one write")
        let text = frames.first.map { String(buffer: $0.data) } ?? ""
        let positions = ["m1", "m2", "m3"].compactMap { text.firstRange(of: "\n\n\($0)\u{0}")?.lowerBound }
        #expect(positions.count == 3 && positions == positions.sorted(), "in publish order")
    }

    @Test func aFannedOutFrameForAFullSocketWaitsInItsQueueAndKeepsItsPlace() throws {
        let rig = try Rig()
        #expect(rig.hub.subscribe(rig.connection, topic: "/topic/room"))
        rig.channel.isWritable = false
        #expect(rig.hub.publish(topic: "/topic/room", json: "one") == 1)
        #expect(rig.hub.send(.text(ByteBuffer(string: "two")), to: rig.connection))
        rig.channel.embeddedEventLoop.run()
        #expect(try rig.written().isEmpty, "held while the socket is full")
        rig.channel.isWritable = true
        rig.channel.pipeline.fireChannelWritabilityChanged()
        let frames = try rig.written()
        #expect(frames.count == 2)
        #expect(frames.first?.1.contains("\n\none\u{0}") == true)
        #expect(frames.last?.1 == "two")
    }
}

/// The framed path: with NIO's `WebSocketFrameEncoder` in the pipeline the drain writes ready
/// frame bytes below it; each distinct message is framed once per batch.
@Suite struct WebSocketFramerTests {
    @Test func theSameMessageIsFramedOnceAndSharedAndLengthsFollowRFC6455() {
        var framer = WebSocketFramer()
        let message = HubOutboundFrame.text(ByteBuffer(string: "MESSAGE\n\nhello\u{0}"))
        let first = framer.framed(message, allocator: ByteBufferAllocator())
        let second = framer.framed(message, allocator: ByteBufferAllocator())
        #expect(framer.framings == 1)
        #expect(first.withUnsafeReadableBytes { $0.baseAddress } == second.withUnsafeReadableBytes { $0.baseAddress })
        #expect(Array(first.readableBytesView.prefix(2)) == [0x81, UInt8(message.buffer.readableBytes)])
        // A different buffer with equal bytes is a different message (framed again, same bytes).
        let copy = framer.framed(.text(ByteBuffer(string: "MESSAGE\n\nhello\u{0}")), allocator: ByteBufferAllocator())
        #expect(framer.framings == 2 && copy == first)

        for (length, header) in [(125, [0x82, 125]), (126, [0x82, 126, 0, 126]), (65_536, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])] {
            let framed = WebSocketFramer.frame(ByteBuffer(repeating: 7, count: length), isText: false, allocator: ByteBufferAllocator())
            #expect(Array(framed.readableBytesView.prefix(header.count)) == header.map(UInt8.init))
            #expect(framed.readableBytes == header.count + length)
        }
    }

    @Test func withTheEncoderInThePipelineTheSocketGetsValidFramesOfTheSharedBytes() throws {
        let hub = Hub()
        let connection = try hub.register(format: .stomp(.raw))
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        ChannelDrain(channel: channel, connection: connection, clock: hub.clock, coalesce: { $0 }, goodbye: { _ in [] }).start()
        channel.embeddedEventLoop.run()
        hub.send(.text(ByteBuffer(string: "one")), to: connection)
        hub.send(.binary(ByteBuffer(bytes: [1, 2, 3])), to: connection)
        channel.embeddedEventLoop.run()
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let b) = buffer else { Issue.record("file region"); return }
            bytes += b.readableBytesView
        }
        #expect(bytes == [0x81, 3] + Array("one".utf8) + [0x82, 3, 1, 2, 3])
        // A close is a Close frame through the encoder (code 1000, "bye").
        hub.close(connection, reason: .normal)
        channel.embeddedEventLoop.run()
        var close: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { close += buffer.readableBytesView }
        #expect(Array(close.prefix(4)) == [0x88, 5, 0x03, 0xE8] && Array(close.dropFirst(4)) == Array("bye".utf8))
    }
}

/// Liveness without a task: a silent peer gets a Ping after `pingInterval`, any inbound frame
/// (a Pong) counts as alive, and a peer silent for another interval after the Ping is closed.
@Suite struct ChannelDrainLivenessTests {
    @Test func aSilentPeerIsPingedThenClosedAndAPongKeepsItOpen() throws {
        let clock = ManualHubClock()
        let hub = Hub(clock: clock.clock)
        let connection = try hub.register(format: .stomp(.raw))
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder()))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let drain = ChannelDrain(
            channel: channel, connection: connection, clock: clock.clock, pingInterval: .seconds(30), coalesce: { $0 }, goodbye: { _ in [] })
        drain.start()
        channel.embeddedEventLoop.run()

        func written() throws -> [UInt8] {
            var bytes: [UInt8] = []
            while let buffer = try channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let b) = buffer { bytes += b.readableBytesView }
            }
            return bytes
        }
        clock.advance(by: .seconds(29))
        drain.livenessTick()
        channel.embeddedEventLoop.run()
        #expect(try written().isEmpty, "not silent long enough")
        clock.advance(by: .seconds(2))
        drain.livenessTick()
        channel.embeddedEventLoop.run()
        #expect(try written() == [0x89, 0x00], "a Ping")
        drain.livenessTick()
        channel.embeddedEventLoop.run()
        #expect(try written().isEmpty, "one Ping at a time")

        // The peer answers with a masked, empty Pong: alive again.
        clock.advance(by: .seconds(20))
        try channel.writeInbound(ByteBuffer(bytes: [0x8A, 0x80, 1, 2, 3, 4]))
        clock.advance(by: .seconds(20))
        drain.livenessTick()
        channel.embeddedEventLoop.run()
        let afterPong = try written()
        #expect(channel.isActive && afterPong.isEmpty, "20 s since the Pong")

        // Silent again: Ping at 30 s, closed at 60 s.
        clock.advance(by: .seconds(10))
        drain.livenessTick()
        channel.embeddedEventLoop.run()
        #expect(try written() == [0x89, 0x00])
        clock.advance(by: .seconds(29))
        drain.livenessTick()
        channel.embeddedEventLoop.run()
        #expect(channel.isActive)
        clock.advance(by: .seconds(2))
        drain.livenessTick()
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive, "closed after a silent interval following the Ping")
    }
}

/// `ConnectionTicker`: one task ticks every registered connection that is due; a tick returning
/// `.stop` is dropped; removed tickets are not called again; a ticket is skipped until the
/// deadline its tick returned, unless woken.
@Suite struct ConnectionTickerTests {
    final class Counts: Sendable {
        let values = Mutex<[String: Int]>([:])
        func bump(_ key: String) { values.withLock { $0[key, default: 0] += 1 } }
        subscript(key: String) -> Int { values.withLock { $0[key] ?? 0 } }
    }

    @Test func ticksEveryConnectionUntilItSaysStopOrIsRemoved() async throws {
        // An interval no other test uses, so this ticker is this test's alone.
        let ticker = ConnectionTicker.shared(interval: .milliseconds(13))
        let counts = Counts()
        let keep = ticker.add { counts.bump("keep"); return .everyRound }
        _ = ticker.add { counts.bump("once"); return .stop }
        let removed = ticker.add { counts.bump("removed"); return .everyRound }
        ticker.remove(removed)
        let deadline = ContinuousClock.now + .seconds(20)
        while counts["keep"] < 5 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(counts["keep"] >= 5)
        #expect(counts["once"] == 1)
        #expect(counts["removed"] == 0)
        #expect(ticker.count == 1)
        ticker.remove(keep)
        #expect(ticker.count == 0)
    }

    @Test func aTicketIsSkippedUntilItsDeadlineOrAWake() async throws {
        let ticker = ConnectionTicker.shared(interval: .milliseconds(11))
        let clock = ManualHubClock(.seconds(100))
        let counts = Counts()
        // Due again 10 s of hub clock after each tick.
        let ticket = ticker.add(clock: clock.clock) {
            counts.bump("t")
            return .again(notBefore: clock.now + .seconds(10))
        }
        defer { ticker.remove(ticket) }
        #expect(await eventually { counts["t"] == 1 })
        // Many rounds (11 ms each) pass without the hub clock moving: not ticked again.
        try await Task.sleep(for: .milliseconds(150))
        #expect(counts["t"] == 1)
        clock.advance(by: .seconds(9))
        try await Task.sleep(for: .milliseconds(100))
        #expect(counts["t"] == 1, "9 s of 10: not due")
        clock.advance(by: .seconds(1))
        #expect(await eventually { counts["t"] == 2 }, "due at its deadline")
        // A wake (an inbound frame) makes it due in the next round, deadline or not.
        try await Task.sleep(for: .milliseconds(100))
        #expect(counts["t"] == 2)
        ticket.wake()
        #expect(await eventually { counts["t"] == 3 })
    }
}

/// `InboundProcessor`: a connection's inbound work in order on a task that exists only while
/// there is work; reading pauses above the backlog limit; nothing runs after `end`.
@Suite struct InboundProcessorTests {
    final class Log: Sendable {
        let events = Mutex<[String]>([])
        func add(_ event: String) { events.withLock { $0.append(event) } }
        var all: [String] { events.withLock { $0 } }
    }

    @Test func framesRunInOrderAfterStartAndEndRunsLastAndOnce() async throws {
        let log = Log()
        // 100 frames of 2 bytes: 6,600 bytes queued at once against a 2,000-byte limit.
        let processor = InboundProcessor(
            maxBytes: 2_000,
            start: { log.add("start") },
            onFrame: { frame in
                try? await Task.sleep(for: .microseconds(200))
                log.add(String(buffer: frame.data))
                return true
            },
            onStopped: { log.add("stopped") },
            end: { log.add("end") },
            setReading: { log.add($0 ? "resume" : "pause") })
        processor.enqueue(.start)
        for i in 0..<100 { processor.enqueue(.frame(.text("f\(i)"))) }
        processor.enqueue(.end)
        processor.enqueue(.frame(.text("after end")))
        processor.enqueue(.end)
        #expect(await eventually { log.all.last == "end" })
        let work = log.all.filter { $0 != "pause" && $0 != "resume" }
        #expect(work == ["start"] + (0..<100).map { "f\($0)" } + ["end"])
        // 100 queued at once: reading paused once, resumed once the backlog was half worked off.
        #expect(log.all.filter { $0 == "pause" }.count == 1)
        #expect(log.all.filter { $0 == "resume" }.count == 1)
        let resumedAt = try #require(log.all.firstIndex(of: "resume"))
        let perFrame = 2 + InboundProcessor.frameOverhead
        #expect(log.all[..<resumedAt].filter { $0.hasPrefix("f") }.count >= 100 - 1_000 / perFrame)
        #expect(processor.backlogBytes == 0)
    }

    /// Issue 17: the backlog is bounded in bytes, not frames. Two 100 KiB frames against a 128 KiB
    /// limit pause reading although only two frames wait; tiny frames do not, however many.
    @Test func readingPausesOnBytesNotFrames() async throws {
        let log = Log()
        let gate = Gate()
        let processor = InboundProcessor(
            maxBytes: 128 * 1024,
            start: {},
            onFrame: { frame in
                await gate.wait()
                log.add("f\(frame.data.readableBytes)")
                return true
            },
            onStopped: {}, end: {},
            setReading: { log.add($0 ? "resume" : "pause") })
        for _ in 0..<100 { processor.enqueue(.frame(.text("x"))) }
        #expect(!log.all.contains("pause"), "100 small frames are 6.5 KiB")
        let big = HubInboundFrame(kind: .binary, data: ByteBuffer(repeating: 0, count: 100 * 1024))
        processor.enqueue(.frame(big))
        #expect(!log.all.contains("pause"))
        processor.enqueue(.frame(big))
        #expect(log.all == ["pause"], "two 100 KiB frames reach 128 KiB")
        #expect(processor.backlogBytes == 100 * (1 + InboundProcessor.frameOverhead) + 2 * (100 * 1024 + InboundProcessor.frameOverhead))
        gate.open()
        #expect(await eventually { log.all.last == "resume" })
        // A frame counts until its work is done: with one big frame left (100 KiB) the backlog is
        // still above half the limit, so reading resumes only after the second.
        #expect(log.all == ["pause"] + Array(repeating: "f1", count: 100) + ["f\(100 * 1024)", "f\(100 * 1024)", "resume"])
        #expect(processor.backlogBytes == 0)
    }

    /// Holds frames' work until opened.
    final class Gate: Sendable {
        private let isOpen = Atomic<Bool>(false)
        func open() { self.isOpen.store(true, ordering: .relaxed) }
        func wait() async {
            while !self.isOpen.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(1)) }
        }
    }

    @Test func afterTheSessionAsksToCloseLaterFramesAreDroppedButEndStillRuns() async throws {
        let log = Log()
        let processor = InboundProcessor(
            maxBytes: 1 << 20,
            start: {},
            onFrame: { frame in
                let text = String(buffer: frame.data)
                log.add(text)
                return text != "close"
            },
            onStopped: { log.add("stopped") },
            end: { log.add("end") },
            setReading: { _ in })
        for text in ["a", "close", "b", "c"] { processor.enqueue(.frame(.text(text))) }
        processor.enqueue(.end)
        #expect(await eventually { log.all.last == "end" })
        #expect(log.all == ["a", "close", "stopped", "end"])
    }

    @Test func aClientsCloseCodeIsEchoedUnlessItIsMalformedOrReserved() {
        func reply(_ bytes: [UInt8]) -> UInt16 { HubWebSocketFrameHandler.replyCode(toClosePayload: ByteBuffer(bytes: bytes)) }
        #expect(reply([]) == 1000)
        #expect(reply([0x03]) == 1002, "one byte cannot hold a code")
        #expect(reply([0x03, 0xE9]) == 1001)
        #expect(reply([0x03, 0xE9, 0x62, 0x79, 0x65]) == 1001, "with a reason")
        #expect(reply([0x0F, 0xA0]) == 4000, "application codes")
        for reserved: UInt16 in [999, 1004, 1005, 1006, 1015, 2999, 5000] {
            #expect(reply([UInt8(reserved >> 8), UInt8(reserved & 0xFF)]) == 1002, "\(reserved)")
        }
    }
}
