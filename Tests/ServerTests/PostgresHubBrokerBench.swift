import Foundation
import Hub
import Logging
import NIOCore
import Synchronization
import Testing

@testable import Server

/// Records when each payload reached the hub's encoder (the moment the node delivers it).
private final class ArrivalClock: HubMessageEncoder {
    let arrivals = Mutex<[String: ContinuousClock.Instant]>([:])
    func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame {
        let now = ContinuousClock.now
        arrivals.withLock { $0[message.payloadString] = now }
        return .text(ByteBuffer())
    }
}

/// Figures, not a check: `LIVEHUB_BROKER_BENCH=1 swift test --filter PostgresHubBrokerBench`
/// (`LIVEHUB_BROKER_BENCH_PUBLISHERS=512` for more concurrent publishers)
/// (with `LIVEHUB_TEST_DATABASE_URL`). Two nodes on one database: sustained publishes/s on node A
/// with many concurrent publishers, then cross-node latency (publish called on A → delivered by
/// B's hub) at a moderate rate.
@Suite("PostgreSQL hub broker bench")
struct PostgresHubBrokerBench {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["LIVEHUB_BROKER_BENCH"] == "1" && TestPostgres.isAvailable))
    func throughputAndCrossNodeLatency() async throws {
        try await TestPostgres.withDatabase { database in
            let a = try BrokerTestNode(url: database.url, name: "a", topics: [])
            let b = try BrokerTestNode(url: database.url, name: "b", topics: [])
            defer { a.stop(); b.stop() }
            let clock = ArrivalClock()
            let probe = try b.hub.register(format: HubWireFormat(name: "bench", encoder: clock, acceptsUserMessages: false))
            let rooms = (0..<32).map { "/topic/live/bench-\($0)/chat" }
            for room in rooms { b.hub.subscribe(probe, topic: room) }
            try await a.waitUntilStarted()
            try await b.waitUntilStarted()

            // 1. Throughput: 64 publishers (`LIVEHUB_BROKER_BENCH_PUBLISHERS`), each awaiting its publish, for 5 s.
            let publishers = min(max(Int(ProcessInfo.processInfo.environment["LIVEHUB_BROKER_BENCH_PUBLISHERS"] ?? "") ?? 64, 1), 10_000)
            let duration: Duration = .seconds(5)
            let started = ContinuousClock.now
            let sent = await withTaskGroup(of: Int.self) { group in
                for p in 0..<publishers {
                    group.addTask {
                        var n = 0
                        while ContinuousClock.now - started < duration {
                            await a.broker.publish(topic: rooms[p % rooms.count], payload: ByteBuffer(string: "t\(p)-\(n)"))
                            n += 1
                        }
                        return n
                    }
                }
                return await group.reduce(0, +)
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            try await waitFor("B caught up", seconds: 60) { clock.arrivals.withLock { $0.count } >= sent }
            let caughtUp = ContinuousClock.now - started
            let text = a.metrics.renderedText
            print("broker bench: \(sent) publishes in \(String(format: "%.2f", seconds)) s = \(Int(Double(sent) / seconds))/s committed by A with \(publishers) publishers; B delivered all after \(caughtUp)")
            print(text.split(separator: "\n").filter { $0.hasPrefix("livehub_broker_published_total") || $0.hasPrefix("livehub_broker_batches_total") }.joined(separator: "; "))
            _ = probe.takePendingOutbound()

            // 2. Latency: 2,000 chats from 20 publishers at about 100/s each (2,000/s in all).
            clock.arrivals.withLock { $0.removeAll() }
            let sentAt = ArrivalClock()  // its map, filled by the publishers
            await withTaskGroup(of: Void.self) { group in
                for p in 0..<20 {
                    group.addTask {
                        for i in 0..<100 {
                            let payload = "l\(p)-\(i)"
                            sentAt.arrivals.withLock { $0[payload] = ContinuousClock.now }
                            await a.broker.publish(topic: rooms[p % rooms.count], payload: ByteBuffer(string: payload))
                            try? await Task.sleep(for: .milliseconds(10))
                        }
                    }
                }
            }
            try await waitFor("latency run delivered", seconds: 30) { clock.arrivals.withLock { $0.count } >= 2000 }
            _ = probe.takePendingOutbound()
            let sends = sentAt.arrivals.withLock { $0 }
            let latencies = clock.arrivals.withLock { arrivals in
                arrivals.compactMap { payload, at -> Double? in
                    guard let sent = sends[payload] else { return nil }
                    let d = at - sent
                    return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
                }
            }.sorted()
            func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            print(String(format: "broker bench: cross-node latency over %d chats: p50 %.1f ms, p99 %.1f ms, max %.1f ms", latencies.count, percentile(0.5), percentile(0.99), latencies.last ?? 0))
            #expect(latencies.count == 2000)
        }
    }
}
