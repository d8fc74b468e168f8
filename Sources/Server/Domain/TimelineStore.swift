import Foundation

/// One `live_timeline_event` row (issue 21 §3; contract §2): something that happened in a room
/// besides its chat lines, at a wall-clock millisecond. `kind` is one of `TimelineKind`; `payload`
/// the JSON of its `data` (a `LiveChatView`, `LiveProductView`, `TimelineUnfeature`,
/// `TimelineOrder` or `RoomStatusMessage`).
public struct TimelineEventRecord: Sendable, Equatable {
    /// Insertion order (nil before insertion); the `e<seq>` of the timeline and the `f<seq>` of a chapter.
    public var seq: Int64?
    public var liveRoomId: String
    public var atMs: Int64
    public var kind: String
    public var payload: String

    public init(seq: Int64? = nil, liveRoomId: String, atMs: Int64, kind: String, payload: String) {
        self.seq = seq
        self.liveRoomId = liveRoomId
        self.atMs = atMs
        self.kind = kind
        self.payload = payload
    }
}

/// The event kinds of `live_timeline_event` (chat lines are read from `live_chat`).
public enum TimelineKind {
    public static let pin = "pin"
    public static let feature = "feature"
    public static let unfeature = "unfeature"
    public static let order = "order"
    public static let status = "status"
}

/// A position in one of the timeline's two ordered streams: rows strictly after
/// (`atMs`, `seq`) in (wall ms, seq) order. `seq` -1 = every row at `atMs` is still to come;
/// `Int64.max` = none is.
public struct TimelinePosition: Sendable, Equatable {
    public var atMs: Int64
    public var seq: Int64

    public init(atMs: Int64, seq: Int64) {
        self.atMs = atMs
        self.seq = seq
    }
}

/// Storage of the timeline, declared by the domain; SQLite and PostgreSQL implement it alike
/// (`StoreContractTests`).
public protocol TimelineStore: Sendable {
    /// Inserts `event` and returns it with its `seq`.
    func insert(_ event: TimelineEventRecord) async throws -> TimelineEventRecord
    /// Events of a room with `fromMs ≤ atMs ≤ toMs`, after `after` when given, in (atMs, seq)
    /// order, at most `limit`; only those of `kinds` when given.
    func events(
        roomId: String, fromMs: Int64, toMs: Int64, after: TimelinePosition?, kinds: [String]?, limit: Int
    ) async throws -> [TimelineEventRecord]
    /// The room's last event (highest seq) of one of `kinds`.
    func lastEvent(roomId: String, kinds: [String]) async throws -> TimelineEventRecord?
    /// Chat lines of a room whose `createdAt` is in [fromMs, toMs] (its ISO-8601 text compared
    /// as text: fixed width, so text order is time order), after `after` when given (its `atMs`
    /// being `createdAt` in ms), in (createdAt, seq) order, at most `limit`.
    func chats(roomId: String, fromMs: Int64, toMs: Int64, after: TimelinePosition?, limit: Int) async throws -> [LiveChatRecord]
}

/// Wall-clock milliseconds of a `Date` and back, clamped to what ISO-8601 text of years
/// 1970…9999 holds (no conversion of an outside number can trap).
public enum WallClock {
    /// 9999-12-31T23:59:59.999Z.
    public static let maxMs: Int64 = 253_402_300_799_999

    public static func ms(_ date: Date) -> Int64 {
        let value = (date.timeIntervalSince1970 * 1000).rounded()
        guard value.isFinite else { return 0 }
        return Int64(min(max(value, 0), Double(maxMs)))
    }

    public static func date(_ ms: Int64) -> Date {
        Date(timeIntervalSince1970: Double(min(max(ms, 0), maxMs)) / 1000)
    }

    /// `createdAt` text as the stores keep it (`ISOTime`), for range comparisons on it.
    static func isoText(_ ms: Int64) -> String { ISOTime.string(date(ms)) }

    public static var nowMs: Int64 { ms(Date()) }
}
