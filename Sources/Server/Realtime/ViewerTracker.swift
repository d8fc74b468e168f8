import Hub

/// Live viewers per room, counted per connection (a connection counts once however often it
/// joins; a dropped connection leaves every room it joined). DESIGN.md "viewers".
actor ViewerTracker {
    private var viewersByRoom: [String: Set<HubConnectionID>] = [:]
    private var roomsByConnection: [HubConnectionID: Set<String>] = [:]
    private let onChange: @Sendable (_ roomId: String, _ count: Int) async -> Void

    init(onChange: @escaping @Sendable (_ roomId: String, _ count: Int) async -> Void) {
        self.onChange = onChange
    }

    func join(roomId: String, connection: HubConnectionID) async {
        guard viewersByRoom[roomId, default: []].insert(connection).inserted else { return }
        roomsByConnection[connection, default: []].insert(roomId)
        await onChange(roomId, viewersByRoom[roomId]?.count ?? 0)
    }

    func leave(roomId: String, connection: HubConnectionID) async {
        guard viewersByRoom[roomId]?.remove(connection) != nil else { return }
        roomsByConnection[connection]?.remove(roomId)
        if roomsByConnection[connection]?.isEmpty == true { roomsByConnection.removeValue(forKey: connection) }
        let count = viewersByRoom[roomId]?.count ?? 0
        if count == 0 { viewersByRoom.removeValue(forKey: roomId) }
        await onChange(roomId, count)
    }

    func leaveAll(connection: HubConnectionID) async {
        for roomId in roomsByConnection[connection] ?? [] {
            await leave(roomId: roomId, connection: connection)
        }
    }

    func count(roomId: String) -> Int { viewersByRoom[roomId]?.count ?? 0 }

    /// Connections tracked (a leak check for tests and metrics).
    var trackedConnections: Int { roomsByConnection.count }
}
