import Foundation

/// The room as the REST API and the hub show it (field names of the old Spring service).
/// `streamKey` and `rtmpUrl` are filled only for the room's owner.
public struct RoomView: Codable, Sendable, Equatable {
    public var id: String
    public var shopOwnerId: String
    public var shopOwnerName: String?
    public var title: String
    public var description: String?
    public var thumbnailUrl: String?
    public var status: RoomStatus
    /// True while the room is LIVE but its publisher is gone and the reconnect grace runs.
    public var reconnecting: Bool
    public var viewerCount: Int
    public var peakViewers: Int
    public var totalOrders: Int
    public var totalRevenue: Double
    public var createdAt: String
    public var startedAt: String?
    public var endedAt: String?
    public var hlsUrl: String
    public var streamKey: String?
    public var rtmpUrl: String?
}

/// `GET /rooms/{id}/stats` and the stats returned by `end` and broadcast with `ENDED`.
public struct RoomStats: Codable, Sendable, Equatable {
    public var roomId: String
    public var status: RoomStatus
    public var viewerCount: Int
    public var peakViewers: Int
    public var totalOrders: Int
    public var totalRevenue: Double
    /// Seconds from `startedAt` to `endedAt` (or now while live); 0 if never started.
    public var duration: Int
}

/// The payload of `/topic/live/{roomId}/status` (DESIGN.md "Live room hub").
public struct RoomStatusMessage: Codable, Sendable, Equatable {
    public var roomId: String
    public var status: RoomStatus
    public var reconnecting: Bool
    public var startedAt: String?
    public var endedAt: String?
    public var message: String
    public var stats: RoomStats?
}

/// A page of a paginated list (`{items, page, size, totalElements, totalPages}`; pages from 0).
public struct Page<Item: Codable & Sendable>: Codable, Sendable {
    public var items: [Item]
    public var page: Int
    public var size: Int
    public var totalElements: Int
    public var totalPages: Int
}
