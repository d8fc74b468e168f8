import Hummingbird

/// `GET /healthz` and `GET /metrics` (Prometheus text format 0.0.4).
struct SystemController {
    let metrics: LiveHubMetrics
    let storage: any StorageHealth
    let rooms: any RoomStore

    func addRoutes(to router: Router<LiveHubRequestContext>) {
        router.get("healthz") { _, _ -> Response in
            let healthy = await storage.isHealthy()
            return try JSONBody.response(
                ["status": healthy ? "ok" : "database unavailable", "version": LiveHubVersion.string],
                status: healthy ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ -> Response in
            if let counts = try? await rooms.countByStatus() { metrics.setRooms(byStatus: counts) }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
    }
}
