import Foundation
import Ingest
import Logging

/// Input of `POST /rooms` after JSON decoding (unknown fields are ignored).
public struct CreateRoomRequest: Codable, Sendable {
    public var title: String
    public var description: String?
    public var thumbnailUrl: String?
}

/// Where the room lifecycle's events go, given to `RoomService` when it is made (the Server's
/// `RealtimeWiring.roomEvents` and the stream registry).
public struct RoomEvents: Sendable {
    /// Every announced status (after it is persisted), the room, and whether this announcement is
    /// the room going LIVE for the first time (the hub broadcasts it on `/topic/live/{id}/status`).
    public var statusChanged: @Sendable (_ status: RoomStatusMessage, _ room: RoomRecord, _ wentLive: Bool) async -> Void = { _, _, _ in }
    /// A room ended for good: its stream ends (the HLS playlist gets `EXT-X-ENDLIST`).
    public var streamEnded: @Sendable (_ roomId: String) async -> Void = { _ in }
    public init() {}
}

/// The live-room lifecycle: REST actions, publisher events from the ingest, the reconnect grace,
/// start-up recovery. Every transition is persisted first (one transaction through `RoomStore`),
/// then announced through `events`.
public actor RoomService {
    public typealias RoomHook = @Sendable (String) async -> Void

    let store: any RoomStore
    let reconnectGrace: Duration
    /// Times the reconnect grace (`ContinuousClock` in production; tests move a manual clock).
    let clock: any Clock<Duration>
    let logger: Logger

    /// Viewer counts and peaks live there alone; a room's stats read them, its end clears them.
    nonisolated let viewers: ViewerTracker
    private var reconnecting: Set<String> = []
    private var graceTimers: [String: Task<Void, Never>] = [:]
    private let events: RoomEvents
    /// Called when the owner ends a LIVE room: disconnect its publisher.
    private var disconnectPublisher: RoomHook?
    /// Which rooms' streams run here: all of them on one node; in cluster mode those whose stream
    /// lease this node holds (`ClusterStreamLeases`, issue 20).
    private var ownership: any StreamOwnership = SingleNodeStreamOwnership()

    init(
        store: any RoomStore, viewers: ViewerTracker, events: RoomEvents, reconnectGrace: Duration,
        clock: any Clock<Duration> = ContinuousClock(), logger: Logger
    ) {
        self.store = store
        self.clock = clock
        self.viewers = viewers
        self.events = events
        self.reconnectGrace = reconnectGrace
        self.logger = logger
    }

    /// The one connection made after construction, because it is a cycle: the RTMP server needs
    /// this service (its publish authorizer) before this service can reach the RTMP server.
    public func attachIngest(disconnectPublisher: @escaping RoomHook) {
        self.disconnectPublisher = disconnectPublisher
    }

    /// Cluster mode: streams are owned through leases (before `recoverAfterRestart` runs).
    func attachOwnership(_ ownership: any StreamOwnership) {
        self.ownership = ownership
    }

    // MARK: REST

    public func create(_ request: CreateRoomRequest, owner: AuthUser, now: Date = Date()) async throws -> RoomRecord {
        let room = RoomRecord(
            id: UUID().uuidString.lowercased(), shopOwnerId: owner.userId, shopOwnerName: owner.username,
            title: request.title, description: request.description, thumbnailUrl: request.thumbnailUrl,
            streamKey: StreamKey.generate(), status: .pending, peakViewers: 0, totalOrders: 0, totalRevenue: 0,
            createdAt: now, updatedAt: now, startedAt: nil, endedAt: nil)
        try await store.insert(room)
        logger.info("room created", metadata: ["room": "\(room.id)", "owner": "\(owner.userId)"])
        return room
    }

    public func room(id: String) async throws -> RoomRecord {
        try await store.existingRoom(id: id)
    }

    /// The room, checked to belong to `user`.
    public func ownedRoom(id: String, by user: AuthUser) async throws -> RoomRecord {
        try await store.ownedRoom(id: id, by: user)
    }

    public func list(status: RoomStatus?, page: Int, size: Int) async throws -> (rooms: [RoomRecord], total: Int) {
        try await store.rooms(status: status, offset: page * size, limit: size)
    }

    public func rooms(ownedBy user: AuthUser) async throws -> [RoomRecord] {
        try await store.rooms(ownerId: user.userId)
    }

    public func start(id: String, by user: AuthUser) async throws -> RoomRecord {
        _ = try await ownedRoom(id: id, by: user)
        let room = try await transition(id: id, on: .start)
        await announce(room, message: "The stream will start soon")
        return room
    }

    /// The room as it ended and its final stats (`RoomEndedView` shapes them for `PUT …/end`).
    public func end(id: String, by user: AuthUser, now: Date = Date()) async throws -> RoomStats {
        try await endRoom(id: id, by: user, now: now).stats
    }

    public func endRoom(id: String, by user: AuthUser, now: Date = Date()) async throws -> (room: RoomRecord, stats: RoomStats) {
        let before = try await ownedRoom(id: id, by: user)
        let room = try await transition(id: id, on: .end, now: now)
        cancelGrace(id)
        reconnecting.remove(id)
        await viewers.roomEnded(id)
        await ownership.roomEnded(roomId: id)
        if before.status == .live { await disconnectPublisher?(id) }
        await events.streamEnded(id)
        let stats = await stats(of: room, now: now)
        await announce(room, message: "The live stream has ended", stats: stats)
        return (room, stats)
    }

    public func rotateKey(id: String, by user: AuthUser) async throws -> RoomRecord {
        _ = try await ownedRoom(id: id, by: user)
        let updated = try await store.update(id: id) { room in
            switch room.status {
            case .live: throw DomainError.conflict("the stream key cannot be rotated while the room is LIVE")
            case .ended: throw DomainError.conflict("the room has ended; its stream key cannot be rotated")
            case .pending, .waitingStream:
                room.streamKey = StreamKey.generate()
                room.updatedAt = Date()
            }
        }
        guard let updated else { throw DomainError.notFound("no room with id \(id)") }
        logger.info("stream key rotated", metadata: ["room": "\(id)"])
        return updated
    }

    public func stats(id: String) async throws -> RoomStats {
        await stats(of: try await room(id: id))
    }

    public func stats(of room: RoomRecord, now: Date = Date()) async -> RoomStats {
        var duration = 0
        if let startedAt = room.startedAt {
            duration = max(0, Int((room.endedAt ?? now).timeIntervalSince(startedAt)))
        }
        return RoomStats(
            roomId: room.id, status: room.status, viewerCount: room.status == .ended ? 0 : await viewers.count(roomId: room.id),
            peakViewers: room.peakViewers, totalOrders: room.totalOrders, totalRevenue: room.totalRevenue,
            duration: duration)
    }

    public func isReconnecting(_ roomId: String) -> Bool { reconnecting.contains(roomId) }
    public func viewerCount(_ roomId: String) async -> Int { await viewers.count(roomId: roomId) }

    // MARK: Ingest (stream-key auth and publisher lifecycle)

    /// Checks a stream key against the rooms table: `unknownKey` or `roomEnded` when refused.
    /// Nothing is written here.
    public func authorizePublish(streamKey: String) async throws -> Result<String, PublishRejection> {
        guard !streamKey.isEmpty, let room = try await store.room(streamKey: streamKey) else {
            return .failure(.unknownKey)
        }
        if room.status == .ended { return .failure(.roomEnded) }
        return .success(room.id)
    }

    /// A publisher was accepted: PENDING/WAITING_STREAM → LIVE (`startedAt` set once); a
    /// reconnect within the grace clears "reconnecting" (in cluster mode also one on another node:
    /// the room's stream lease was held elsewhere). `session` is the ingest's publisher id.
    public func publisherStarted(roomId: String, session: Int = 0, now: Date = Date()) async {
        cancelGrace(roomId)
        let resumedFromAnotherNode = await ownership.publisherStarted(roomId: roomId, session: session)
        let wasReconnecting = reconnecting.remove(roomId) != nil || resumedFromAnotherNode
        do {
            let before = try await store.room(id: roomId)
            let room = try await transition(id: roomId, on: .publish, now: now)
            if before?.status != .live {
                logger.info("room is live", metadata: ["room": "\(roomId)"])
                await announce(room, message: "The live stream has started", wentLive: true)
            } else if wasReconnecting {
                logger.info("publisher reconnected", metadata: ["room": "\(roomId)"])
                await announce(room, message: "The stream is back")
            }
        } catch {
            logger.warning("could not mark room live", metadata: ["room": "\(roomId)", "error": "\(error)"])
        }
    }

    /// The publisher went away: the room stays LIVE, "reconnecting", until the grace expires.
    public func publisherGone(roomId: String) async {
        guard let room = try? await store.room(id: roomId), room.status == .live else { return }
        reconnecting.insert(roomId)
        await announce(room, message: "The streamer is reconnecting")
        startGrace(roomId)
    }

    /// Start-up recovery (DESIGN.md): rooms a crash left LIVE are never left lying — each gets the
    /// reconnect grace from now; if its publisher does not come back, it ends.
    /// In cluster mode only the rooms this node's previous run held (`StreamOwnership.recoverable`):
    /// rooms another node ingests are not touched; those of dead nodes are swept by the coordinator.
    public func recoverAfterRestart() async throws -> [String] {
        let orphans = await ownership.recoverable(try await store.rooms(status: .live))
        for room in orphans {
            reconnecting.insert(room.id)
            startGrace(room.id)
            logger.notice("room was LIVE at start-up; waiting for its publisher", metadata: ["room": "\(room.id)"])
        }
        return orphans.map(\.id)
    }

    // MARK: Cluster (issue 20)

    /// This node's stream lease was taken by another node (or deleted as the room ended there):
    /// any grace here stops; the room is the other node's now.
    func streamMovedAway(roomId: String) {
        cancelGrace(roomId)
        reconnecting.remove(roomId)
    }

    /// The coordinator found the room's lease holder dead: a LIVE room is "reconnecting" (announced
    /// once); it is ended by `endOrphan` when the grace passes.
    func orphanedByDeadNode(roomId: String) async {
        guard !reconnecting.contains(roomId), let room = try? await store.room(id: roomId), room.status == .live else { return }
        reconnecting.insert(roomId)
        logger.notice("the node running the room's stream is gone; waiting for its publisher", metadata: ["room": "\(roomId)"])
        await announce(room, message: "The streamer is reconnecting")
    }

    /// Ends a room whose grace passed on a dead node (this node won the lease's claim); whether it
    /// ended here (false: it was not LIVE any more).
    func endOrphan(roomId: String) async -> Bool {
        guard let room = try? await store.room(id: roomId), room.status == .live else {
            reconnecting.remove(roomId)
            return false
        }
        reconnecting.insert(roomId)
        return await endAfterGrace(roomId)
    }

    /// The ids of the rooms LIVE now.
    func liveRoomIds() async throws -> [String] {
        try await store.rooms(status: .live).map(\.id)
    }

    /// Cancels timers (graceful shutdown). Rooms stay as persisted; the next start recovers them.
    public func shutdown() {
        for task in graceTimers.values { task.cancel() }
        graceTimers.removeAll()
    }

    // MARK: Internals

    private func transition(id: String, on event: RoomEvent, now: Date = Date()) async throws -> RoomRecord {
        let updated = try await store.update(id: id) { room in
            let next: RoomStatus
            do {
                next = try RoomStateMachine.next(from: room.status, on: event)
            } catch let refusal as RoomTransitionError {
                throw DomainError.conflict(refusal.description)
            }
            guard next != room.status else { return }
            room.status = next
            room.updatedAt = now
            if next == .live && room.startedAt == nil { room.startedAt = now }
            if next == .ended { room.endedAt = now }
        }
        guard let updated else { throw DomainError.notFound("no room with id \(id)") }
        return updated
    }

    private func startGrace(_ roomId: String) {
        cancelGrace(roomId)
        let (grace, clock) = (reconnectGrace, clock)
        graceTimers[roomId] = Task { [weak self] in
            do { try await clock.sleep(for: grace) } catch { return }
            await self?.graceExpired(roomId)
        }
    }

    private func cancelGrace(_ roomId: String) {
        graceTimers.removeValue(forKey: roomId)?.cancel()
    }

    private func graceExpired(_ roomId: String) async {
        graceTimers.removeValue(forKey: roomId)
        guard reconnecting.contains(roomId) else { return }
        guard await ownership.mayEndAfterGrace(roomId: roomId) else {
            reconnecting.remove(roomId)
            logger.info("reconnect grace expired here, but the room's stream runs on another node", metadata: ["room": "\(roomId)"])
            return
        }
        _ = await endAfterGrace(roomId)
    }

    @discardableResult
    private func endAfterGrace(_ roomId: String) async -> Bool {
        guard reconnecting.remove(roomId) != nil else { return false }
        do {
            let room = try await transition(id: roomId, on: .graceExpired)
            await viewers.roomEnded(roomId)
            await ownership.roomEnded(roomId: roomId)
            logger.info("reconnect grace expired; room ended", metadata: ["room": "\(roomId)"])
            await events.streamEnded(roomId)
            await announce(room, message: "The live stream has ended", stats: await stats(of: room))
            return true
        } catch {
            logger.warning("grace expiry refused", metadata: ["room": "\(roomId)", "error": "\(error)"])
            return false
        }
    }

    private func announce(_ room: RoomRecord, message: String, stats: RoomStats? = nil, wentLive: Bool = false) async {
        let payload = RoomStatusMessage(
            roomId: room.id, status: room.status, reconnecting: reconnecting.contains(room.id),
            startedAt: room.startedAt.map(ISOTime.string), endedAt: room.endedAt.map(ISOTime.string),
            message: message, stats: stats)
        await events.statusChanged(payload, room, wentLive)
    }
}
