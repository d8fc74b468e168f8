import HLS
import Logging
import PostgresNIO
import ServiceLifecycle

/// This node's part of the cluster-wide state in PostgreSQL (issue 20), made by `LiveHub.build`
/// in cluster mode: the node registry, viewer counts, stream leases, the cross-node chat limit
/// and shared idempotency answers. Each replaces a single-node default behind a small protocol.
struct ClusterState: Sendable {
    let registry: ClusterNodeRegistry
    let viewerCounts: ClusterViewerCounts
    let leases: ClusterStreamLeases
    let chatRate: ClusterChatRateLimit
    let idempotency: PostgresIdempotencyStore

    init(client: PostgresClient, configuration: LiveHubConfiguration, logger: Logger) {
        registry = ClusterNodeRegistry(
            client: client, nodeId: configuration.effectiveNodeId, advertiseURL: configuration.effectiveAdvertiseURL,
            nodeTimeout: configuration.clusterNodeTimeout, logger: logger)
        viewerCounts = ClusterViewerCounts(registry: registry)
        leases = ClusterStreamLeases(
            leases: PostgresStreamLeases(registry: registry), reconnectGrace: configuration.reconnectGrace, logger: logger)
        chatRate = ClusterChatRateLimit(client: client, perSecond: configuration.clusterChatRatePerSecond, logger: logger)
        idempotency = PostgresIdempotencyStore(
            client: client,
            limits: IdempotencyLimits(perUser: configuration.idempotencyKeysPerUser, total: configuration.idempotencyKeysTotal),
            logger: logger)
    }

    /// Puts the cluster's behaviour into the services (before any traffic).
    func attach(
        rooms: RoomService, live: LiveRoomService, notifications: NotificationService, hls: HLSService,
        disconnectPublisher: @escaping @Sendable (String) async -> Void
    ) async {
        await leases.attach(rooms: rooms, disconnectPublisher: disconnectPublisher)
        await leases.attachHLS(
            position: { hls.position(roomId: $0) },
            continueNumbering: { hls.continueNumbering(roomId: $0, after: $1) })
        await rooms.attachOwnership(leases)
        await live.attachChatRateGate(chatRate)
        await notifications.attachSharedIdempotency(idempotency)
    }

    /// One heartbeat: this node is alive; its viewer counts go out and the others' come in; its
    /// leases are renewed (a lost one disconnects its publisher); the coordinator sweeps rooms of
    /// dead nodes and prunes old rows. Each step's failure is logged and the next one runs.
    func beat(viewers: ViewerTracker) async {
        let logger = registry.logger
        do { try await registry.heartbeat() } catch { logger.warning("cluster heartbeat failed", metadata: ["error": "\(String(reflecting: error))"]) }
        let coordinator = (try? await registry.isCoordinator()) ?? false
        do {
            try await viewerCounts.report(await viewers.localCounts())
            await viewers.updateRemoteCounts(try await viewerCounts.otherNodesCounts(), announceChanges: coordinator)
        } catch {
            logger.warning("cluster viewer counts failed", metadata: ["error": "\(String(reflecting: error))"])
        }
        await leases.renewAll()
        guard coordinator else { return }
        do {
            try await leases.sweepOrphans()
            try await viewerCounts.pruneDeadNodes()
            try await chatRate.prune()
            try await idempotency.prune()
        } catch {
            logger.warning("cluster sweep failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}

/// Registers this node, then beats every `LIVEHUB_CLUSTER_HEARTBEAT` until shutdown, when it
/// withdraws its viewer counts (the other nodes' totals drop at once instead of after the timeout).
struct ClusterHeartbeatService: Service {
    let state: ClusterState
    let viewers: ViewerTracker
    let interval: Duration

    func run() async throws {
        // The schema was migrated by `LiveHubStorage.open` before any service runs.
        try await state.registry.register()
        await state.leases.markReady()
        let (state, viewers, interval) = (state, viewers, interval)
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await state.beat(viewers: viewers)
                try await Task.sleep(for: interval)
            }
        }
        try? await state.viewerCounts.report([:])
    }
}
