import CoreMetrics
import MediaCore
import NIOCore
import Synchronization
import Testing

@Suite struct LiveStreamTests {
    func videoPacket(_ dts: Int64, key: Bool) -> StreamEvent {
        .packet(MediaPacket(codec: .h264, dts: dts, pts: dts, isKeyframe: key, payload: ByteBuffer(bytes: [0, 0, 0, 1, 0x65])))
    }

    @Test func aReaderAttachedLateReceivesThePublishStartMetadataAndConfigs() async {
        let stream = LiveStream(id: "room")
        stream.beginPublish()
        stream.publish(.metadata(StreamMetadata(width: 640, height: 360)))
        stream.publish(.config(TrackConfig(codec: .aac, extradata: [0x11, 0x90])))
        stream.publish(.config(TrackConfig(codec: .h264, extradata: [1, 2, 3])))
        let reader = stream.makeReader(name: "late")
        var iterator = reader.makeAsyncIterator()
        guard case .publishStarted(let session) = await iterator.next() else { Issue.record("no publishStarted"); return }
        #expect(session == 1)
        guard case .metadata(let metadata) = await iterator.next() else { Issue.record("no metadata"); return }
        #expect(metadata.width == 640)
        guard case .config(let video) = await iterator.next() else { Issue.record("no video config"); return }
        #expect(video.codec == .h264)
        guard case .config(let audio) = await iterator.next() else { Issue.record("no audio config"); return }
        #expect(audio.codec == .aac)
    }

    final class RecordingSink: StreamSink {
        let events = Mutex<[String]>([])
        func receive(_ event: StreamEvent) {
            let name: String
            switch event {
            case .publishStarted(let session): name = "start\(session)"
            case .metadata: name = "metadata"
            case .config(let config): name = "config:\(config.codec)"
            case .packet(let packet): name = "packet:\(packet.dts)"
            case .publishStopped: name = "stopped"
            case .ended: name = "ended"
            }
            events.withLock { $0.append(name) }
        }
        var received: [String] { events.withLock { $0 } }
    }

    @Test func aSinkSeesTheReplayThenEveryEventSynchronouslyAndInOrder() {
        let stream = LiveStream(id: "room")
        stream.beginPublish()
        stream.publish(.metadata(StreamMetadata(width: 640, height: 360)))
        stream.publish(.config(TrackConfig(codec: .h264, extradata: [1, 2, 3])))
        let sink = RecordingSink()
        stream.attachSink(sink)
        #expect(sink.received == ["start1", "metadata", "config:h264"])
        // No queue, no task: each publish has reached the sink when it returns.
        for dts in stride(from: Int64(0), to: 3000, by: 33) {
            stream.publish(videoPacket(dts, key: dts == 0))
            #expect(sink.received.last == "packet:\(dts)")
        }
        stream.endPublish()
        stream.beginPublish()
        stream.end()
        #expect(Array(sink.received.suffix(3)) == ["stopped", "start2", "ended"])
        #expect(sink.received.count == 3 + 91 + 3)
    }

    @Test func aDetachedSinkReceivesNothingAndALateSinkOfAnEndedStreamGetsEnded() {
        let stream = LiveStream(id: "room")
        let sink = RecordingSink()
        stream.attachSink(sink)
        #expect(sink.received.isEmpty)  // nobody publishing yet: nothing to replay
        stream.beginPublish()
        stream.detachSink(sink)
        stream.publish(videoPacket(0, key: true))
        #expect(sink.received == ["start1"])
        stream.end()
        let late = RecordingSink()
        stream.attachSink(late)
        #expect(late.received == ["ended"])
    }

    @Test func aSlowReaderDropsAndCountsThenResumesAtTheNextKeyframe() async {
        let stream = LiveStream(id: "room")
        let reader = stream.makeReader(name: "slow", capacity: 2)
        stream.beginPublish()
        stream.publish(videoPacket(0, key: true))
        stream.publish(videoPacket(33, key: false))
        stream.publish(videoPacket(66, key: false))  // dropped: queue full
        stream.publish(videoPacket(100, key: false))  // dropped: waiting for a keyframe
        #expect(reader.droppedPackets == 2)
        var iterator = reader.makeAsyncIterator()
        _ = await iterator.next()  // publishStarted
        _ = await iterator.next()  // 0
        _ = await iterator.next()  // 33
        stream.publish(videoPacket(133, key: false))  // still skipped: not a keyframe
        stream.publish(videoPacket(166, key: true))
        guard case .packet(let packet) = await iterator.next() else { Issue.record("expected a packet"); return }
        #expect(packet.dts == 166)
        #expect(reader.droppedPackets == 3)
    }

    @Test func endingTheStreamFinishesEveryReader() async {
        let stream = LiveStream(id: "room")
        let reader = stream.makeReader(name: "r")
        stream.beginPublish()
        stream.end()
        var events: [String] = []
        for await event in reader {
            switch event {
            case .publishStarted: events.append("start")
            case .ended: events.append("ended")
            default: events.append("other")
            }
        }
        #expect(events == ["start", "ended"])
        #expect(stream.makeReader(name: "after").droppedPackets == 0)
    }

    @Test func theRegistryAnnouncesEachStreamOnce() async {
        let registry = StreamRegistry()
        let first = registry.stream(for: "a")
        let again = registry.stream(for: "a")
        #expect(first === again)
        var iterator = registry.createdStreams.makeAsyncIterator()
        let announced = await iterator.next()
        #expect(announced === first)
        registry.end(roomId: "a")
        #expect(registry.existingStream(for: "a") == nil)
        #expect(first.isEnded)
    }

    @Test func dropsAreCountedPerConsumerInMetrics() async {
        let factory = CountingFactory()
        let stream = LiveStream(id: "room", metricsFactory: factory)
        let reader = stream.makeReader(name: "slowpoke", capacity: 1)
        stream.beginPublish()
        for dts in [Int64(0), 33, 66] { stream.publish(videoPacket(dts, key: dts == 0)) }
        #expect(reader.droppedPackets == 2)
        #expect(factory.total(label: "livehub_stream_packets_dropped_total", consumer: "slowpoke") == 2)
    }
}

/// A metrics factory that only sums counters (what the drop counter needs).
final class CountingFactory: MetricsFactory, Sendable {
    final class Handler: CounterHandler, Sendable {
        let value = Mutex<Int64>(0)
        func increment(by amount: Int64) { value.withLock { $0 += amount } }
        func reset() { value.withLock { $0 = 0 } }
    }
    let handlers = Mutex<[String: Handler]>([:])

    func total(label: String, consumer: String) -> Int64 {
        handlers.withLock { $0["\(label)|\(consumer)"] }?.value.withLock { $0 } ?? 0
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let key = "\(label)|\(dimensions.first(where: { $0.0 == "consumer" })?.1 ?? "")"
        return handlers.withLock { handlers in
            if let existing = handlers[key] { return existing }
            let handler = Handler()
            handlers[key] = handler
            return handler
        }
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler { NOOPMetricsHandler.instance }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { NOOPMetricsHandler.instance }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { NOOPMetricsHandler.instance }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { NOOPMetricsHandler.instance }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

@Suite struct PublisherRefusalTests {
    final class Calls: Sendable {
        let reasons = Mutex<[String]>([])
    }

    @Test func aConsumerRefusingThePublisherReachesTheIngestOnce() {
        let stream = LiveStream(id: "room")
        let calls = Calls()
        stream.beginPublish { reason in calls.reasons.withLock { $0.append(reason) } }
        stream.refusePublisher(reason: "too big")
        stream.refusePublisher(reason: "again")
        #expect(calls.reasons.withLock { $0 } == ["too big"])
    }

    @Test func nothingIsRefusedOnceThePublisherLeftOrBeforeOneCame() {
        let stream = LiveStream(id: "room")
        stream.refusePublisher(reason: "nobody")
        let calls = Calls()
        stream.beginPublish { reason in calls.reasons.withLock { $0.append(reason) } }
        stream.endPublish()
        stream.refusePublisher(reason: "late")
        #expect(calls.reasons.withLock { $0 }.isEmpty)
        // A new publish gets its own refusal.
        stream.beginPublish { reason in calls.reasons.withLock { $0.append("second: " + reason) } }
        stream.refusePublisher(reason: "x")
        #expect(calls.reasons.withLock { $0 } == ["second: x"])
    }
}
