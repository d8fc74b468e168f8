import Foundation
import Hub
import ServiceLifecycle

extension RealtimeWiring {
    /// `/topic/live/{roomId}/deal` (issue 22 §1): what `DealService` announces, through the broker
    /// (so every node's subscribers get it).
    static func dealEvents(broker: any HubBroker) -> DealEvents {
        var events = DealEvents()
        events.publish = { roomId, message in
            await broker.publish(topic: LiveDestination.topic(roomId, .deal), payload: json(message))
        }
        return events
    }
}

/// Runs `DealService.tick` every `LIVEHUB_DEAL_SWEEP_SECONDS`: expired reservations return their
/// units, due deals start and end. On several nodes every node sweeps; the store's conditional
/// updates make each change (and its announcement) happen once.
struct DealSweepService: Service {
    let deals: DealService
    let interval: Duration

    func run() async throws {
        let (deals, interval) = (deals, interval)
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await deals.tick()
                try await Task.sleep(for: interval)
            }
        }
    }
}
