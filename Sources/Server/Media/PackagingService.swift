import HLS
import Logging
import MediaCore
import ServiceLifecycle

/// Attaches an HLS packager to every live stream the ingest creates, and stops them all on shutdown.
struct PackagingService: Service {
    let streams: StreamRegistry
    let hls: HLSService
    let logger: Logger

    func run() async throws {
        await withGracefulShutdownHandler {
            for await stream in streams.createdStreams {
                hls.attach(stream: stream)
            }
        } onGracefulShutdown: {
            streams.shutdown()
        }
        await hls.shutdown()
    }
}

extension HLSConfiguration {
    init(_ configuration: LiveHubConfiguration) {
        let variant: HLSVariant
        switch configuration.hlsVariant {
        case .fmp4LowLatency: variant = .fmp4LowLatency
        case .fmp4: variant = .fmp4
        case .mpegts: variant = .mpegts
        }
        self.init(
            variant: variant, targetSegmentDuration: configuration.hlsSegmentSeconds,
            partTargetDuration: configuration.hlsPartSeconds, windowSegments: configuration.hlsWindowSegments,
            retainAfterEnd: configuration.hlsRetainAfterEnd, maxSegmentBytes: configuration.hlsMaxSegmentBytes,
            maxSegmentsPerTenSeconds: configuration.hlsMaxSegmentsPerTenSeconds,
            trackDiscoveryBufferBytes: configuration.hlsDiscoveryBufferBytes)
    }
}
