import CoreMetrics
import Hub
import Synchronization
import Testing

/// A minimal in-memory `MetricsFactory`: last value per gauge, running total per counter.
final class TestMetrics: MetricsFactory {
    let values = Mutex<[String: Double]>([:])

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.isEmpty ? label : label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    subscript(_ label: String, _ dimensions: [(String, String)] = []) -> Double? {
        self.values.withLock { $0[Self.key(label, dimensions)] }
    }

    final class Handler: CounterHandler, RecorderHandler, TimerHandler, FloatingPointCounterHandler, MeterHandler {
        let key: String
        let metrics: TestMetrics
        init(_ key: String, _ metrics: TestMetrics) {
            self.key = key
            self.metrics = metrics
        }
        func add(_ v: Double) { self.metrics.values.withLock { $0[self.key, default: 0] += v } }
        func store(_ v: Double) { self.metrics.values.withLock { $0[self.key] = v } }
        func increment(by amount: Int64) { self.add(Double(amount)) }
        func increment(by amount: Double) { self.add(amount) }
        func decrement(by amount: Double) { self.add(-amount) }
        func reset() { self.store(0) }
        func record(_ value: Int64) { self.store(Double(value)) }
        func record(_ value: Double) { self.store(value) }
        func set(_ value: Int64) { self.store(Double(value)) }
        func set(_ value: Double) { self.store(value) }
        func recordNanoseconds(_ duration: Int64) { self.store(Double(duration)) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Handler(Self.key(label, dimensions), self) }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler { Handler(Self.key(label, dimensions), self) }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { Handler(Self.key(label, dimensions), self) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Handler(Self.key(label, dimensions), self) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Handler(Self.key(label, dimensions), self) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

@Suite("Hub metrics")
struct MetricsTests {
    @Test func connectionsSubscriptionsUsersAndDropsAreReported() throws {
        let metrics = TestMetrics()
        let hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: 1, maxBytes: 1 << 20)), metricsFactory: metrics)
        let u = HubIdentity(userId: "u", username: "U")
        let a = try hub.register(format: .socketIO, identity: u)
        let b = try hub.register(format: .stomp)
        #expect(metrics["livehub_hub_connections", [("protocol", "socketio")]] == 1)
        #expect(metrics["livehub_hub_connections", [("protocol", "stomp")]] == 1)
        #expect(metrics["livehub_hub_users_online", [("protocol", "socketio")]] == 1)
        hub.subscribe(b, topic: "/topic/x", variant: "s")
        #expect(metrics["livehub_hub_subscriptions"] == 1)
        hub.publish(topic: "/topic/x", json: "1")
        hub.publish(topic: "/topic/x", json: "2")  // queue of 1 overflows
        #expect(metrics["livehub_hub_slow_client_drops_total", [("protocol", "stomp")]] == 1)
        #expect(metrics["livehub_hub_messages_out_total", [("protocol", "stomp")]] == 1)
        hub.sendToUser(userId: "u", event: "e", json: "{}")
        #expect(metrics["livehub_hub_user_pushes_total"] == 1)
        hub.unregister(a)
        hub.unregister(b)
        #expect(metrics["livehub_hub_connections", [("protocol", "socketio")]] == 0)
        #expect(metrics["livehub_hub_users_online", [("protocol", "socketio")]] == 0)
        #expect(metrics["livehub_hub_subscriptions"] == 0)
    }
}
