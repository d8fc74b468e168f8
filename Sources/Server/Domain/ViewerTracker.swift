import Hub
import Logging

/// The one owner of viewer counts (DESIGN.md "viewers"): who watches which room, each room's live
/// count, and the peak, persisted in the room's record when it grows. `RoomService` reads counts
/// from here for its stats and tells it when a room ends; the hub backend feeds joins and leaves.
///
/// A connection counts once however often it joins; a dropped connection leaves every room it
/// joined. Count broadcasts are throttled per room: the first change is announced at once, changes
/// within `minimumInterval` after it are folded into one trailing announcement of the latest count —
/// a crowd of 2,000 joining costs a handful of broadcasts, not 2,000 × 2,000 frames.
///
/// In cluster mode (issue 20) the counts of the other live nodes arrive with each heartbeat
/// (`updateRemoteCounts`, from `ClusterViewerCounts`): a room's count is this node's plus theirs,
/// and that total is what is announced and raises the peak. One node alone has no remote counts.
actor ViewerTracker {
    /// Receives each announced count with the room's peak (after the peak is persisted).
    typealias Announce = @Sendable (_ roomId: String, _ count: Int, _ peak: Int) async -> Void

    private var viewersByRoom: [String: Set<HubConnectionID>] = [:]
    private var roomsByConnection: [HubConnectionID: Set<String>] = [:]
    /// Persisted peak per room not ended: a cache, so that counts below the peak cost no write.
    private var peaks: [String: Int] = [:]
    /// The highest count since the last announcement, so a crowd that came and went between two
    /// announcements still raises the peak.
    private var highSinceAnnounced: [String: Int] = [:]
    private var lastAnnounced: [String: ContinuousClock.Instant] = [:]
    private var pendingAnnouncement: Set<String> = []
    /// Viewers of each room on the other live nodes (cluster mode; empty on one node).
    private var remoteCounts: [String: Int] = [:]
    private let store: any RoomStore
    private let minimumInterval: Duration
    private let announce: Announce
    private let logger: Logger
    /// Waits before a trailing announcement (tests hold it to stay independent of machine load).
    private let sleep: @Sendable (Duration) async -> Void

    init(
        store: any RoomStore,
        minimumInterval: Duration = .milliseconds(250),
        logger: Logger = Logger(label: "livehub.viewers"),
        sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) },
        announce: @escaping Announce
    ) {
        self.store = store
        self.minimumInterval = minimumInterval
        self.logger = logger
        self.sleep = sleep
        self.announce = announce
    }

    func join(roomId: String, connection: HubConnectionID) async {
        guard viewersByRoom[roomId, default: []].insert(connection).inserted else { return }
        roomsByConnection[connection, default: []].insert(roomId)
        highSinceAnnounced[roomId] = max(highSinceAnnounced[roomId] ?? 0, count(roomId: roomId))
        await changed(roomId)
    }

    func leave(roomId: String, connection: HubConnectionID) async {
        guard viewersByRoom[roomId]?.remove(connection) != nil else { return }
        roomsByConnection[connection]?.remove(roomId)
        if roomsByConnection[connection]?.isEmpty == true { roomsByConnection.removeValue(forKey: connection) }
        if viewersByRoom[roomId]?.isEmpty == true { viewersByRoom.removeValue(forKey: roomId) }
        await changed(roomId)
    }

    func leaveAll(connection: HubConnectionID) async {
        for roomId in roomsByConnection[connection] ?? [] {
            await leave(roomId: roomId, connection: connection)
        }
    }

    /// The room ended: its viewer set, peak cache and announcement state are dropped (its viewers'
    /// later leaves are no-ops). Joins to an ended room are refused before they get here.
    func roomEnded(_ roomId: String) {
        for connection in viewersByRoom.removeValue(forKey: roomId) ?? [] {
            roomsByConnection[connection]?.remove(roomId)
            if roomsByConnection[connection]?.isEmpty == true { roomsByConnection.removeValue(forKey: connection) }
        }
        peaks.removeValue(forKey: roomId)
        highSinceAnnounced.removeValue(forKey: roomId)
        remoteCounts.removeValue(forKey: roomId)
        if !pendingAnnouncement.contains(roomId) { lastAnnounced.removeValue(forKey: roomId) }
    }

    /// The room's viewers: on this node, plus on the other live nodes in cluster mode.
    func count(roomId: String) -> Int { localCount(roomId: roomId) + (remoteCounts[roomId] ?? 0) }

    /// The room's viewers connected to this node.
    func localCount(roomId: String) -> Int { viewersByRoom[roomId]?.count ?? 0 }

    /// Every room watched on this node with its count (what this node reports to the cluster).
    func localCounts() -> [String: Int] { viewersByRoom.mapValues(\.count) }

    /// The other live nodes' counts replace the previous ones (a room absent has none there).
    /// With `announceChanges` (the coordinator, so that one node, not all, speaks for changes made
    /// elsewhere) each room whose total moved is announced, throttled like a local change.
    func updateRemoteCounts(_ counts: [String: Int], announceChanges: Bool) async {
        let previous = remoteCounts
        remoteCounts = counts.filter { $0.value > 0 }
        let moved = Set(previous.keys).union(remoteCounts.keys).filter { previous[$0] != remoteCounts[$0] }
        for roomId in moved {
            highSinceAnnounced[roomId] = max(highSinceAnnounced[roomId] ?? 0, count(roomId: roomId))
            if announceChanges { await changed(roomId) }
        }
    }

    /// Rooms with viewers, a cached peak or announcement state (tests: an ended room keeps nothing).
    var trackedRooms: Int { Set(viewersByRoom.keys).union(lastAnnounced.keys).union(peaks.keys).union(highSinceAnnounced.keys).count }

    /// Connections tracked (a leak check for tests and metrics).
    var trackedConnections: Int { roomsByConnection.count }

    private func changed(_ roomId: String) async {
        let now = ContinuousClock.now
        if let last = lastAnnounced[roomId], now - last < minimumInterval {
            guard pendingAnnouncement.insert(roomId).inserted else { return }
            let delay = minimumInterval - (now - last)
            Task {
                await self.sleep(delay)
                await self.flush(roomId)
            }
            return
        }
        lastAnnounced[roomId] = now
        await announceCount(roomId)
        if viewersByRoom[roomId] == nil && !pendingAnnouncement.contains(roomId) { lastAnnounced.removeValue(forKey: roomId) }
    }

    private func flush(_ roomId: String) async {
        pendingAnnouncement.remove(roomId)
        lastAnnounced[roomId] = ContinuousClock.now
        await announceCount(roomId)
        if viewersByRoom[roomId] == nil { lastAnnounced.removeValue(forKey: roomId) }
    }

    private func announceCount(_ roomId: String) async {
        let count = count(roomId: roomId)
        let high = max(count, highSinceAnnounced.removeValue(forKey: roomId) ?? 0)
        await announce(roomId, count, await recordPeak(high, roomId: roomId))
    }

    /// Persists the peak when `count` exceeds it; returns the peak. A room that has ended keeps
    /// nothing here; a room the store does not know keeps its count and no peak.
    private func recordPeak(_ count: Int, roomId: String) async -> Int {
        if let known = peaks[roomId], count <= known { return known }
        let room: RoomRecord?
        do {
            room = try await store.update(id: roomId) { room in
                if count > room.peakViewers && room.status != .ended { room.peakViewers = count }
            }
        } catch {
            logger.warning("could not record the peak viewers", metadata: ["room": "\(roomId)", "error": "\(error)"])
            return max(peaks[roomId] ?? 0, count)
        }
        guard let room else { return count }  // not a room of the store: counted, no peak kept
        guard room.status != .ended else {
            roomEnded(roomId)  // a join that raced the room's end
            return room.peakViewers
        }
        let peak = max(peaks[roomId] ?? 0, room.peakViewers)
        peaks[roomId] = peak
        return peak
    }
}
