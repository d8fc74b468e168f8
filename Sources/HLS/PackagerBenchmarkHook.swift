import Logging
import MediaCore
import Metrics
import NIOCore

/// Synchronous access to one `HLSPackager` and its `SegmentStore`, for the micro-benchmarks in
/// `Benchmarks/` only (`@_spi(Benchmarks) import HLS`). `HLSService` runs the packager on a task fed
/// by a bounded `StreamReader`, which a benchmark can neither drive packet by packet nor wait on
/// precisely. Metrics go nowhere, logs are dropped, the wall clock is 0.
@_spi(Benchmarks)
public final class HLSPackagerHarness {
    private let store: SegmentStore
    private let packager: HLSPackager

    public init(configuration: HLSConfiguration) {
        store = SegmentStore(configuration: configuration)
        packager = HLSPackager(
            configuration: configuration, store: store, metrics: HLSMetrics(factory: NOOPMetricsHandler.instance),
            thumbnailer: Thumbnailer(width: configuration.thumbnailWidth), wallClock: { 0 },
            logger: Logger(label: "livehub.hls.benchmark", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// What `HLSService`'s task does with each event it reads.
    public func handle(_ event: StreamEvent) { packager.handle(event) }

    /// Media sequence number of the newest complete segment (-1: none yet).
    public var lastCompleteMSN: Int { store.lastCompleteMSN }

    /// The current media playlist, as a client would get it.
    public func mediaPlaylist() -> ByteBuffer? { store.mediaPlaylist() }
}
