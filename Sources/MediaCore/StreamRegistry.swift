import CoreMetrics
import Synchronization

/// One `LiveStream` per room. The ingest asks for the stream of the room it authorised; the server
/// attaches readers (the HLS packager, the thumbnailer) when a stream appears, and removes the
/// stream when the room ends.
public final class StreamRegistry: Sendable {
    private let streams = Mutex<[String: LiveStream]>([:])
    private let createdContinuation: AsyncStream<LiveStream>.Continuation
    /// Every stream the registry creates, in order. Consume it from exactly one task.
    public let createdStreams: AsyncStream<LiveStream>

    private let metricsFactory: (any MetricsFactory)?

    /// - Parameter metricsFactory: passed to every stream for its per-consumer drop counters.
    public init(metricsFactory: (any MetricsFactory)? = nil) {
        self.metricsFactory = metricsFactory
        (createdStreams, createdContinuation) = AsyncStream.makeStream(of: LiveStream.self)
    }

    /// The stream of `roomId`, created (and announced on `createdStreams`) if it does not exist.
    public func stream(for roomId: String) -> LiveStream {
        let (stream, created) = streams.withLock { streams -> (LiveStream, Bool) in
            if let existing = streams[roomId] { return (existing, false) }
            let stream = LiveStream(id: roomId, metricsFactory: metricsFactory)
            streams[roomId] = stream
            return (stream, true)
        }
        if created { createdContinuation.yield(stream) }
        return stream
    }

    /// The stream of `roomId` if one exists.
    public func existingStream(for roomId: String) -> LiveStream? {
        streams.withLock { $0[roomId] }
    }

    /// End the room's stream for good and forget it.
    public func end(roomId: String) {
        let stream = streams.withLock { $0.removeValue(forKey: roomId) }
        stream?.end()
    }

    public var activeStreamIds: [String] { streams.withLock { Array($0.keys) } }

    /// End every stream (shutdown) and close `createdStreams`.
    public func shutdown() {
        let all = streams.withLock { streams -> [LiveStream] in
            let all = Array(streams.values)
            streams.removeAll()
            return all
        }
        for stream in all { stream.end() }
        createdContinuation.finish()
    }
}
