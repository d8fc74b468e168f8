import Metrics
import Synchronization

/// The ingest's metrics, created once per server from the injected factory.
final class IngestMetrics: Sendable {
    /// `livehub_rtmp_publishers`: publishers currently connected and accepted.
    private let publishersGauge: Gauge
    private let publisherCount = Mutex(0)
    /// `livehub_rtmp_bytes_in_total`: bytes received on every RTMP connection.
    let bytesIn: Counter
    /// `livehub_rtmp_packets_in_total{type=video|audio|config|metadata}`.
    private let packets: [String: Counter]
    /// `livehub_rtmp_publish_refused_total{reason=…}`.
    private let refused: [String: Counter]
    /// `livehub_rtmp_connections_closed_on_error_total`.
    let protocolErrors: Counter
    /// `livehub_rtmp_connections_refused_total{limit=total|per_address}`.
    private let connectionsRefused: [String: Counter]
    /// `livehub_rtmp_publishers_cut_off_total`: publishers disconnected because a consumer of their
    /// stream found a limit exceeded (`LiveStream.refusePublisher`).
    let publishersCutOff: Counter

    init(factory: any MetricsFactory) {
        publishersGauge = Gauge(label: "livehub_rtmp_publishers", factory: factory)
        bytesIn = Counter(label: "livehub_rtmp_bytes_in_total", factory: factory)
        var packets: [String: Counter] = [:]
        for type in ["video", "audio", "config", "metadata"] {
            packets[type] = Counter(label: "livehub_rtmp_packets_in_total", dimensions: [("type", type)], factory: factory)
        }
        self.packets = packets
        var refused: [String: Counter] = [:]
        for reason in [PublishRejection.unknownKey, .roomEnded, .wrongApp, .malformedURL] {
            refused[reason.rawValue] = Counter(
                label: "livehub_rtmp_publish_refused_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        self.refused = refused
        protocolErrors = Counter(label: "livehub_rtmp_connections_closed_on_error_total", factory: factory)
        var connectionsRefused: [String: Counter] = [:]
        for limit in ["total", "per_address"] {
            connectionsRefused[limit] = Counter(label: "livehub_rtmp_connections_refused_total", dimensions: [("limit", limit)], factory: factory)
        }
        self.connectionsRefused = connectionsRefused
        publishersCutOff = Counter(label: "livehub_rtmp_publishers_cut_off_total", factory: factory)
        publishersGauge.record(0)
    }

    func packetIn(type: String) {
        packets[type]?.increment()
    }

    func connectionRefused(_ limit: String) {
        connectionsRefused[limit]?.increment()
    }

    func refused(_ reason: PublishRejection) {
        refused[reason.rawValue]?.increment()
    }

    func publisherConnected() {
        let count = publisherCount.withLock { count in
            count += 1
            return count
        }
        publishersGauge.record(count)
    }

    func publisherDisconnected() {
        let count = publisherCount.withLock { count in
            count -= 1
            return count
        }
        publishersGauge.record(count)
    }
}
