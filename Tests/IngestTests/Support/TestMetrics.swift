import CoreMetrics
import Synchronization

/// A minimal in-memory `MetricsFactory` (the test target cannot use MetricsTestKit).
final class TestMetricsFactory: MetricsFactory {
    private let values = Mutex<[String: Double]>([:])

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    func value(_ label: String, _ dimensions: [(String, String)] = []) -> Double? {
        values.withLock { $0[Self.key(label, dimensions)] }
    }

    fileprivate func add(_ key: String, _ amount: Double) { values.withLock { $0[key, default: 0] += amount } }
    fileprivate func set(_ key: String, _ value: Double) { values.withLock { $0[key] = value } }

    final class Handler: CounterHandler, RecorderHandler, TimerHandler {
        let factory: TestMetricsFactory
        let key: String
        init(factory: TestMetricsFactory, key: String) {
            self.factory = factory
            self.key = key
        }
        func increment(by amount: Int64) { factory.add(key, Double(amount)) }
        func reset() { factory.set(key, 0) }
        func record(_ value: Int64) { factory.set(key, Double(value)) }
        func record(_ value: Double) { factory.set(key, value) }
        func recordNanoseconds(_ duration: Int64) { factory.set(key, Double(duration)) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(factory: self, key: Self.key(label, dimensions))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(factory: self, key: Self.key(label, dimensions))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(factory: self, key: Self.key(label, dimensions))
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
