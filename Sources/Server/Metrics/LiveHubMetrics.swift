import CoreMetrics
import Foundation
import Prometheus

/// One Prometheus registry per application (not the process-global MetricsSystem, so that several
/// servers in one test process keep separate figures). Modules get `factory` for their own
/// swift-metrics counters; `/metrics` renders the registry in Prometheus text format.
public final class LiveHubMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory
    let startedAt = Date()
    private let uptime: Prometheus.Gauge

    public init() {
        registry = PrometheusCollectorRegistry()
        factory = PrometheusMetricsFactory(registry: registry)
        uptime = registry.makeGauge(name: "livehub_uptime_seconds", help: "Seconds since the process started")
    }

    /// Counts one HTTP request by matched route (never the raw path: ids stay out of labels).
    public func recordRequest(route: String, method: String, status: Int) {
        requestCounter(route: route, method: method, status: status).increment()
    }

    /// The counter behind `recordRequest` (a registry lookup; hot paths keep it).
    func requestCounter(route: String, method: String, status: Int) -> Prometheus.Counter {
        registry.makeCounter(
            name: "livehub_http_requests_total",
            labels: [("route", route), ("method", method), ("status", String(status))],
            help: "HTTP requests by route and status")
    }

    public func setRooms(byStatus counts: [RoomStatus: Int]) {
        for status in RoomStatus.allCases {
            registry.makeGauge(name: "livehub_rooms", labels: [("status", status.rawValue)], help: "Rooms by status")
                .set(Double(counts[status] ?? 0))
        }
    }

    public func render() -> [UInt8] {
        uptime.set(Date().timeIntervalSince(startedAt))
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
