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
    /// Issue 21: `{base}/hls/{id}/vod.m3u8` once the room has ENDED and a recording with a segment
    /// exists; absent otherwise.
    public var replayUrl: String? = nil
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

/// `PUT /rooms/{id}/start`: the room (every `RoomView` field, flat) plus the old service's `message`.
public struct RoomStartedView: Codable, Sendable, Equatable {
    public static let startedMessage = "Live room started. Start streaming with your stream key."

    public var room: RoomView
    public var message: String

    public init(room: RoomView, message: String = Self.startedMessage) {
        self.room = room
        self.message = message
    }

    private enum CodingKeys: String, CodingKey { case message }

    public init(from decoder: any Decoder) throws {
        room = try RoomView(from: decoder)
        message = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .message)
    }

    public func encode(to encoder: any Encoder) throws {
        try room.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(message, forKey: .message)
    }
}

/// `PUT /rooms/{id}/end`: the old service's end DTO `{id, status, startedAt, endedAt, duration: "2h 30m",
/// durationSeconds, peakViewers, totalOrders, totalRevenue, message}`, plus what LiveHub answered
/// before (`roomId`, `viewerCount`). `duration` is the old service's text; the seconds LiveHub used
/// to answer as `duration` are `durationSeconds` (README "Differences from the old service").
public struct RoomEndedView: Codable, Sendable, Equatable {
    public static let endedMessage = "Live room ended."

    public var id: String
    public var roomId: String
    public var status: RoomStatus
    public var startedAt: String?
    public var endedAt: String?
    /// `DurationText.format(durationSeconds)`, e.g. `2h 30m`, `45m`, `0m`.
    public var duration: String
    public var durationSeconds: Int
    public var viewerCount: Int
    public var peakViewers: Int
    public var totalOrders: Int
    public var totalRevenue: Double
    public var message: String

    public init(room: RoomRecord, stats: RoomStats, message: String = Self.endedMessage) {
        id = room.id
        roomId = room.id
        status = stats.status
        startedAt = room.startedAt.map(ISOTime.string)
        endedAt = room.endedAt.map(ISOTime.string)
        duration = DurationText.format(seconds: stats.duration)
        durationSeconds = stats.duration
        viewerCount = stats.viewerCount
        peakViewers = stats.peakViewers
        totalOrders = stats.totalOrders
        totalRevenue = stats.totalRevenue
        self.message = message
    }
}

/// The old service's duration text: whole hours and minutes, seconds dropped (rounded down).
/// One hour or more: `"{h}h {m}m"` (`2h 30m`, `1h 0m`); under an hour: `"{m}m"` (`45m`); under a
/// minute: `0m`. Negative input counts as 0.
public enum DurationText {
    public static func format(seconds: Int) -> String {
        let seconds = max(0, seconds)
        let hours = seconds / 3600
        let minutes = (seconds % 3600) / 60
        return hours > 0 ? "\(hours)h \(minutes)m" : "\(minutes)m"
    }
}
