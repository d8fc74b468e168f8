import Benchmark
import Hub
import NIOCore

// Encode-once fan-out: N STOMP connections (raw WebSocket framing) subscribed to one live room's chat
// topic; one chat message published, then every connection's queue drained with
// `takePendingOutbound()` (what each connection's writer task does before writing to its socket).
// One iteration = publish → enqueued on all N → all N queues drained; the measurement covers the
// publish alone unless the name says "publish + drain". No sockets; metrics not bootstrapped (no-op).

/// A chat message as the server publishes it (LiveChatView JSON, ~230 bytes).
let chatJSON = #"""
{"seq":48213,"id":"5f0c6a2e-8d1b-4c7e-9a43-2b6f1d0e7c91","liveRoomId":"room-7","userId":"u-1042","username":"viewer 1042","message":"Does the blue one come in size M? 😀","type":"chat","createdAt":"2025-11-25T05:36:12.345Z"}
"""#
let topic = "/topic/live/room-7/chat"

let deliveriesPerSecond = BenchmarkMetric.custom("Deliveries/s", polarity: .prefersLarger, useScalingFactor: false)

struct Room {
    let hub: Hub
    let connections: [HubConnection]
    let payload: ByteBuffer
}

/// `sharedSubscriptionId`: every client subscribed as `sub-0` (stomp.js numbers subscriptions per
/// client, so clients that subscribe in the same order share ids) → one encode per publish.
/// Otherwise each client has its own id → one encode per subscriber (the worst case).
func makeRoom(subscribers: Int, sharedSubscriptionId: Bool) throws -> Room {
    let hub = Hub()
    var connections: [HubConnection] = []
    for index in 0..<subscribers {
        let connection = try hub.register(format: .stomp)
        hub.subscribe(connection, topic: topic, variant: sharedSubscriptionId ? "sub-0" : "sub-\(index)")
        connections.append(connection)
    }
    return Room(hub: hub, connections: connections, payload: ByteBuffer(string: chatJSON))
}

let benchmarks: @Sendable () -> Void = {
    // `drainMeasured`: false = the measurement is the publish alone (encode + enqueue on all N, the
    // queues are drained after it, outside the measurement); true = publish + drain all N queues.
    let cases: [(subscribers: Int, shared: Bool, drainMeasured: Bool, label: String)] = [
        (1_000, true, false, "1,000 subscribers, one subscription id"),
        (1_000, true, true, "1,000 subscribers, one subscription id, publish + drain"),
        (10_000, true, false, "10,000 subscribers, one subscription id"),
        (1_000, false, false, "1,000 subscribers, distinct subscription ids"),
    ]
    for (subscribers, shared, drainMeasured, label) in cases {
        Benchmark(
            "Hub STOMP chat fan-out, \(label)",
            configuration: .init(
                metrics: [.wallClock, .throughput, .mallocCountTotal, deliveriesPerSecond],
                timeUnits: .microseconds,
                units: [deliveriesPerSecond: .count, .mallocCountTotal: .count],
                warmupIterations: 10,
                maxDuration: .seconds(3),
                maxIterations: 1_000_000)
        ) { (benchmark: Benchmark, room: Room) in
            let start = ContinuousClock.now
            let enqueued = room.hub.publish(topic: topic, payload: room.payload)
            let published = ContinuousClock.now
            if !drainMeasured { benchmark.stopMeasurement() }
            var drained = 0
            for connection in room.connections {
                let items = connection.takePendingOutbound()
                drained += items.count
                blackHole(items)
            }
            let end = ContinuousClock.now
            benchmark.stopMeasurement()
            guard enqueued == subscribers, drained == subscribers else {
                return benchmark.error("enqueued \(enqueued), drained \(drained), expected \(subscribers)")
            }
            let elapsed = (drainMeasured ? end : published) - start
            benchmark.measurement(deliveriesPerSecond, Int(Double(subscribers) / elapsed.seconds))
        } setup: {
            try makeRoom(subscribers: subscribers, sharedSubscriptionId: shared)
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
