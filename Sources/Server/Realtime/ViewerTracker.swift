import Hub

/// Live viewers per room, counted per connection (a connection counts once however often it
/// joins; a dropped connection leaves every room it joined). DESIGN.md "viewers".
///
/// Count broadcasts are throttled per room: the first change is announced at once, changes within
/// `minimumInterval` after it are folded into one trailing announcement of the latest count — a
/// crowd of 2,000 joining costs a handful of broadcasts, not 2,000 × 2,000 frames.
actor ViewerTracker {
    private var viewersByRoom: [String: Set<HubConnectionID>] = [:]
    private var roomsByConnection: [HubConnectionID: Set<String>] = [:]
    private var lastAnnounced: [String: ContinuousClock.Instant] = [:]
    private var pendingAnnouncement: Set<String> = []
    private let minimumInterval: Duration
    private let onChange: @Sendable (_ roomId: String, _ count: Int) async -> Void
    /// Waits before a trailing announcement (tests hold it to stay independent of machine load).
    private let sleep: @Sendable (Duration) async -> Void

    init(
        minimumInterval: Duration = .milliseconds(250),
        sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) },
        onChange: @escaping @Sendable (_ roomId: String, _ count: Int) async -> Void
    ) {
        self.minimumInterval = minimumInterval
        self.sleep = sleep
        self.onChange = onChange
    }

    func join(roomId: String, connection: HubConnectionID) async {
        guard viewersByRoom[roomId, default: []].insert(connection).inserted else { return }
        roomsByConnection[connection, default: []].insert(roomId)
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

    /// The room ended: its viewer set and announcement state are dropped (its viewers' later
    /// leaves are no-ops). Joins to an ended room are refused before they get here.
    func roomEnded(_ roomId: String) {
        for connection in viewersByRoom.removeValue(forKey: roomId) ?? [] {
            roomsByConnection[connection]?.remove(roomId)
            if roomsByConnection[connection]?.isEmpty == true { roomsByConnection.removeValue(forKey: connection) }
        }
        if !pendingAnnouncement.contains(roomId) { lastAnnounced.removeValue(forKey: roomId) }
    }

    func count(roomId: String) -> Int { viewersByRoom[roomId]?.count ?? 0 }

    /// Rooms with viewers or announcement state (tests: an ended room keeps nothing).
    var trackedRooms: Int { Set(viewersByRoom.keys).union(lastAnnounced.keys).count }

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
        await onChange(roomId, count(roomId: roomId))
        if viewersByRoom[roomId] == nil && !pendingAnnouncement.contains(roomId) { lastAnnounced.removeValue(forKey: roomId) }
    }

    private func flush(_ roomId: String) async {
        pendingAnnouncement.remove(roomId)
        lastAnnounced[roomId] = ContinuousClock.now
        await onChange(roomId, count(roomId: roomId))
        if viewersByRoom[roomId] == nil { lastAnnounced.removeValue(forKey: roomId) }
    }
}
