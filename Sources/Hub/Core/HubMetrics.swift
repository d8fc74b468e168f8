import CoreMetrics
import Synchronization

/// The hub's swift-metrics instruments, created from an injected `MetricsFactory`.
///
/// | label | type | dimensions |
/// |---|---|---|
/// | `livehub_hub_connections` | gauge | `protocol` |
/// | `livehub_hub_users_online` | gauge | `protocol` (bell users online = `protocol="socketio"`) |
/// | `livehub_hub_subscriptions` | gauge | |
/// | `livehub_hub_topics` | gauge | |
/// | `livehub_hub_messages_in_total` | counter | `protocol` |
/// | `livehub_hub_messages_out_total` | counter | `protocol` |
/// | `livehub_hub_encodes_total` | counter | `protocol` |
/// | `livehub_hub_slow_client_drops_total` | counter | `protocol` |
/// | `livehub_hub_rate_limited_total` | counter | `protocol` |
/// | `livehub_hub_user_pushes_total` | counter | (bell pushes: one per `sendToUser` that reached ≥ 1 socket) |
final class HubMetrics: Sendable {
    let factory: any MetricsFactory
    private struct PerProtocol {
        var connections: Gauge
        var usersOnline: Gauge
        var messagesIn: Counter
        var messagesOut: Counter
        var encodes: Counter
        var slowDrops: Counter
        var rateLimited: Counter
    }
    private let perProtocol = Mutex<[String: PerProtocol]>([:])
    let subscriptions: Gauge
    let topics: Gauge
    let userPushes: Counter

    init(factory: any MetricsFactory) {
        self.factory = factory
        self.subscriptions = Gauge(label: "livehub_hub_subscriptions", factory: factory)
        self.topics = Gauge(label: "livehub_hub_topics", factory: factory)
        self.userPushes = Counter(label: "livehub_hub_user_pushes_total", factory: factory)
    }

    private func instruments(_ proto: String) -> PerProtocol {
        self.perProtocol.withLock { map in
            if let m = map[proto] { return m }
            let d = [("protocol", proto)]
            let m = PerProtocol(
                connections: Gauge(label: "livehub_hub_connections", dimensions: d, factory: self.factory),
                usersOnline: Gauge(label: "livehub_hub_users_online", dimensions: d, factory: self.factory),
                messagesIn: Counter(label: "livehub_hub_messages_in_total", dimensions: d, factory: self.factory),
                messagesOut: Counter(label: "livehub_hub_messages_out_total", dimensions: d, factory: self.factory),
                encodes: Counter(label: "livehub_hub_encodes_total", dimensions: d, factory: self.factory),
                slowDrops: Counter(label: "livehub_hub_slow_client_drops_total", dimensions: d, factory: self.factory),
                rateLimited: Counter(label: "livehub_hub_rate_limited_total", dimensions: d, factory: self.factory)
            )
            map[proto] = m
            return m
        }
    }

    func connections(_ proto: String, _ value: Int) { self.instruments(proto).connections.record(value) }
    func usersOnline(_ proto: String, _ value: Int) { self.instruments(proto).usersOnline.record(value) }
    func messageIn(_ proto: String) { self.instruments(proto).messagesIn.increment() }
    func messagesOut(_ proto: String, _ n: Int) { if n > 0 { self.instruments(proto).messagesOut.increment(by: n) } }
    func encode(_ proto: String) { self.instruments(proto).encodes.increment() }
    func slowDrop(_ proto: String) { self.instruments(proto).slowDrops.increment() }
    func rateLimited(_ proto: String) { self.instruments(proto).rateLimited.increment() }
}
