import Metrics

/// swift-metrics instruments of the HLS packager and its HTTP handler.
struct HLSMetrics: Sendable {
    let segmentsProduced: Counter
    let partsProduced: Counter
    let bytesServed: Counter
    let playlistRequestsBlocking: Counter
    let playlistRequestsNonBlocking: Counter
    let packagerErrors: Counter

    init(factory: any MetricsFactory) {
        segmentsProduced = Counter(label: "livehub_hls_segments_produced_total", factory: factory)
        partsProduced = Counter(label: "livehub_hls_parts_produced_total", factory: factory)
        bytesServed = Counter(label: "livehub_hls_bytes_served_total", factory: factory)
        playlistRequestsBlocking = Counter(
            label: "livehub_hls_playlist_requests_total", dimensions: [("blocking", "yes")], factory: factory)
        playlistRequestsNonBlocking = Counter(
            label: "livehub_hls_playlist_requests_total", dimensions: [("blocking", "no")], factory: factory)
        packagerErrors = Counter(label: "livehub_hls_packager_errors_total", factory: factory)
    }
}
