import CoreMetrics
import Synchronization

/// One live stream (one room): the publisher pushes `StreamEvent`s, every reader pulls them from a
/// queue of its own. Readers never slow the publisher down: when a reader's queue is full, new
/// packets for it are dropped and counted, and after a drop its video resumes at the next keyframe
/// (a decoder cannot start mid-GOP). Control events (`publishStarted`, `config`, `metadata`,
/// `publishStopped`, `ended`) are never dropped.
///
/// The layout follows mediamtx's stream/reader split: the stream keeps the latest metadata and
/// codec configs so that a reader attached late starts with everything it needs.
public final class LiveStream: Sendable {
    /// The room this stream belongs to (HLS serves it under this id, never under a stream key).
    public let id: String

    private struct State {
        var readers: [ObjectIdentifier: StreamReader] = [:] { didSet { readerList = Array(readers.values) } }
        var sinks: [ObjectIdentifier: any StreamSink] = [:] { didSet { sinkList = Array(sinks.values) } }
        /// The values above, kept as arrays: `publish` hands them out per packet without building one.
        var readerList: [StreamReader] = []
        var sinkList: [any StreamSink] = []
        var session = 0
        var publishing = false
        var metadata: StreamMetadata?
        var configs: [TrackKind: TrackConfig] = [:]
        var ended = false
        /// How to make the current publisher's ingest disconnect it (`refusePublisher`).
        var refusePublisher: (@Sendable (String) -> Void)?
    }

    private let state = Mutex(State())
    private let metricsFactory: (any MetricsFactory)?

    /// - Parameter metricsFactory: where `livehub_stream_packets_dropped_total{consumer}` goes
    ///   (nil: not counted in metrics; `StreamReader.droppedPackets` still counts).
    public init(id: String, metricsFactory: (any MetricsFactory)? = nil) {
        self.id = id
        self.metricsFactory = metricsFactory
    }

    /// Number of publishes so far (1 after the first publish; > 1 after reconnects/takeovers).
    public var session: Int { state.withLock { $0.session } }
    public var isPublishing: Bool { state.withLock { $0.publishing } }
    public var isEnded: Bool { state.withLock { $0.ended } }
    public var latestMetadata: StreamMetadata? { state.withLock { $0.metadata } }
    public var latestConfigs: [TrackKind: TrackConfig] { state.withLock { $0.configs } }

    /// Attach a reader with a queue of `capacity` packets (control events do not count).
    /// A reader attached while a publisher is live first receives `publishStarted`, the latest
    /// metadata and the latest codec configs.
    public func makeReader(name: String, capacity: Int = 512) -> StreamReader {
        let dropped = metricsFactory.map {
            Counter(label: "livehub_stream_packets_dropped_total", dimensions: [("consumer", name)], factory: $0)
        }
        let reader = StreamReader(name: name, capacity: capacity, droppedCounter: dropped)
        let replay: [StreamEvent]? = state.withLock { state in
            if state.ended { return nil }
            state.readers[ObjectIdentifier(reader)] = reader
            return Self.replay(state)
        }
        if let replay {
            for event in replay { reader.offer(event) }
        } else {
            reader.offer(.ended)
        }
        return reader
    }

    /// What a consumer attached now must see first: `publishStarted`, the latest metadata and codec
    /// configs (nothing while no publisher is live).
    private static func replay(_ state: State) -> [StreamEvent] {
        guard state.publishing else { return [] }
        var events: [StreamEvent] = [.publishStarted(session: state.session)]
        if let metadata = state.metadata { events.append(.metadata(metadata)) }
        for kind in [TrackKind.video, .audio] {
            if let config = state.configs[kind] { events.append(.config(config)) }
        }
        return events
    }

    /// Attach a sink: it receives every event synchronously, in order, on the publisher's thread,
    /// with no queue and no thread hop. Meant for the one consumer whose work is a bounded amount of
    /// CPU per packet and that must see every packet (the HLS packager): handing each packet to a
    /// task instead cost a wake-up and two context switches per packet, measured as ~30 % of the
    /// server's ingest CPU. Anything that may wait (a socket, a file, a decoder) uses `makeReader`.
    /// A sink attached while a publisher is live first receives the replay `makeReader` gives.
    /// A sink attached after `end()` receives `.ended` at once.
    public func attachSink(_ sink: any StreamSink) {
        // The replay is delivered under the lock so no packet of a concurrent publish can overtake it.
        let ended = state.withLock { state -> Bool in
            if state.ended { return true }
            state.sinks[ObjectIdentifier(sink)] = sink
            for event in Self.replay(state) { sink.receive(event) }
            return false
        }
        if ended { sink.receive(.ended) }
    }

    /// Detach a sink; it receives nothing more.
    public func detachSink(_ sink: any StreamSink) {
        _ = state.withLock { $0.sinks.removeValue(forKey: ObjectIdentifier(sink)) }
    }

    /// Detach a reader; its iteration finishes.
    public func removeReader(_ reader: StreamReader) {
        _ = state.withLock { $0.readers.removeValue(forKey: ObjectIdentifier(reader)) }
        reader.finish()
    }

    /// Mark the start of a publish and return its session number.
    /// - Parameter onRefusal: how the ingest disconnects this publisher when a consumer refuses
    ///   its stream (`refusePublisher(reason:)`); called at most once, from the consumer's thread.
    @discardableResult
    public func beginPublish(onRefusal: (@Sendable (String) -> Void)? = nil) -> Int {
        let (session, readers, sinks) = state.withLock { state -> (Int, [StreamReader], [any StreamSink]) in
            state.session += 1
            state.publishing = true
            state.metadata = nil
            state.configs = [:]
            state.refusePublisher = onRefusal
            return (state.session, state.readerList, state.sinkList)
        }
        let event = StreamEvent.publishStarted(session: session)
        for sink in sinks { sink.receive(event) }
        for reader in readers { reader.offer(event) }
        return session
    }

    /// Push one event from the publisher to every sink (synchronously) and reader (queued).
    /// Never waits on a reader.
    public func publish(_ event: StreamEvent) {
        let (readers, sinks): ([StreamReader], [any StreamSink]) = state.withLock { state in
            if state.ended { return ([], []) }
            switch event {
            case .metadata(let metadata): state.metadata = metadata
            case .config(let config): state.configs[config.kind] = config
            case .publishStopped:
                state.publishing = false
                state.refusePublisher = nil
            case .ended: state.ended = true
            case .publishStarted, .packet: break
            }
            return (state.readerList, state.sinkList)
        }
        for sink in sinks { sink.receive(event) }
        for reader in readers { reader.offer(event) }
    }

    /// A consumer found the current publisher's stream over one of its limits (e.g. the HLS
    /// packager: a segment larger than allowed, timestamps that force a segment per frame): the
    /// ingest disconnects the publisher, as for any other disconnect the room then waits for it to
    /// come back. Nothing happens when no publisher is live; a second call for the same publish does
    /// nothing either.
    public func refusePublisher(reason: String) {
        let refuse = state.withLock { state -> (@Sendable (String) -> Void)? in
            defer { state.refusePublisher = nil }
            return state.publishing ? state.refusePublisher : nil
        }
        refuse?(reason)
    }

    /// The publisher of this session left (socket closed, idle, or taken over).
    public func endPublish() {
        publish(.publishStopped)
    }

    /// The stream is over for good: readers receive `.ended` and then finish.
    public func end() {
        let (readers, sinks): ([StreamReader], [any StreamSink]) = state.withLock { state in
            if state.ended { return ([], []) }
            state.ended = true
            state.publishing = false
            let readers = Array(state.readers.values)
            state.readers.removeAll()
            let sinks = Array(state.sinks.values)
            state.sinks.removeAll()
            return (readers, sinks)
        }
        for sink in sinks { sink.receive(.ended) }
        for reader in readers {
            reader.offer(.ended)
            reader.finish()
        }
    }
}

/// A synchronous consumer of a `LiveStream` (see `LiveStream.attachSink`). `receive` runs on the
/// publisher's thread and must not wait; calls for one stream come one at a time except around a
/// publisher takeover, so implementations serialise with a lock of their own.
public protocol StreamSink: AnyObject, Sendable {
    func receive(_ event: StreamEvent)
}

/// A reader's bounded queue. Iterate it with `for await event in reader`.
public final class StreamReader: AsyncSequence, Sendable {
    public typealias Element = StreamEvent

    public let name: String
    public let capacity: Int

    private struct State {
        var queue: [StreamEvent] = []
        var head = 0
        var queuedPackets = 0
        var waiter: CheckedContinuation<StreamEvent?, Never>?
        var finished = false
        var droppedPackets = 0
        var deliveredPackets = 0
        /// After a drop, skip video until the next keyframe.
        var awaitingVideoKeyframe = false
    }

    private let state: Mutex<State>
    private let droppedCounter: Counter?

    init(name: String, capacity: Int, droppedCounter: Counter? = nil) {
        self.name = name
        self.capacity = Swift.max(1, capacity)
        self.state = Mutex(State())
        self.droppedCounter = droppedCounter
    }

    /// Packets dropped because this reader was too slow (or skipped while resynchronising).
    public var droppedPackets: Int { state.withLock { $0.droppedPackets } }
    public var deliveredPackets: Int { state.withLock { $0.deliveredPackets } }
    public var queuedPackets: Int { state.withLock { $0.queuedPackets } }

    /// Returns false when the event was dropped (or the reader is finished).
    @discardableResult
    func offer(_ event: StreamEvent) -> Bool {
        enum Outcome { case queued, handedOver(CheckedContinuation<StreamEvent?, Never>), dropped, finished }
        let outcome: Outcome = state.withLock { state in
            if state.finished { return .finished }
            if case .packet(let packet) = event {
                if state.awaitingVideoKeyframe && packet.kind == .video {
                    if packet.isKeyframe {
                        state.awaitingVideoKeyframe = false
                    } else {
                        state.droppedPackets += 1
                        return .dropped
                    }
                }
                if state.queuedPackets >= capacity {
                    state.droppedPackets += 1
                    if packet.kind == .video { state.awaitingVideoKeyframe = true }
                    return .dropped
                }
            }
            if let waiter = state.waiter {
                state.waiter = nil
                if case .packet = event { state.deliveredPackets += 1 }
                return .handedOver(waiter)
            }
            if case .packet = event { state.queuedPackets += 1 }
            state.queue.append(event)
            return .queued
        }
        switch outcome {
        case .queued: return true
        case .handedOver(let waiter):
            waiter.resume(returning: event)
            return true
        case .dropped:
            droppedCounter?.increment()
            return false
        case .finished: return false
        }
    }

    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<StreamEvent?, Never>? in
            state.finished = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Next event, or nil once the reader is finished and drained.
    public func next() async -> StreamEvent? {
        await withCheckedContinuation { (continuation: CheckedContinuation<StreamEvent?, Never>) in
            let immediate: StreamEvent?? = state.withLock { state in
                if state.head < state.queue.count {
                    let event = state.queue[state.head]
                    state.head += 1
                    if state.head > 64 && state.head * 2 > state.queue.count {
                        state.queue.removeFirst(state.head)
                        state.head = 0
                    }
                    if case .packet = event {
                        state.queuedPackets -= 1
                        state.deliveredPackets += 1
                    }
                    return .some(event)
                }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let reader: StreamReader
        public mutating func next() async -> StreamEvent? { await reader.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: self) }
}
