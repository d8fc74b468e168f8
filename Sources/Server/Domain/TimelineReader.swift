import Foundation

/// `GET /rooms/{id}/timeline` (issue 21 §3; contract §2): the room's chat lines (from `live_chat`)
/// and timeline events merged in order — by wall ms, events before chat lines at the same ms, then
/// seq — each with `t`, its position in the media timeline: `ReplayRecordings.mediaSeconds` of its
/// instant, or without a recording the seconds since the room started.
public struct TimelineReader: Sendable {
    /// Chapters listed on a page (the room's first ones).
    public static let maxChapters = 1000
    /// Bounds of `from`/`to` (seconds into the show) and `limit`.
    public static let maxSeconds = 10_000_000.0
    public static let limits = 1...1000
    public static let defaultLimit = 200
    /// Wall-clock slack around a `from`/`to` bound: an instant in a gap of the recording (a
    /// reconnect) has the `t` of the segment after it; rows read in this slack are filtered by `t`.
    static let boundSlackMs: Int64 = 300_000

    let rooms: any RoomStore
    let store: any TimelineStore
    let recordings: (any ReplayRecordings)?
    let nowMs: @Sendable () -> Int64

    public init(
        rooms: any RoomStore, store: any TimelineStore, recordings: (any ReplayRecordings)?,
        nowMs: @escaping @Sendable () -> Int64 = { WallClock.nowMs }
    ) {
        self.rooms = rooms
        self.store = store
        self.recordings = recordings
        self.nowMs = nowMs
    }

    /// A validated request (the HTTP layer checks the numbers; `TimelineCursor` its cursor).
    public struct Query: Sendable {
        public var from: Double?
        public var to: Double?
        public var limit: Int
        public var cursor: TimelineCursor?

        public init(from: Double? = nil, to: Double? = nil, limit: Int = TimelineReader.defaultLimit, cursor: TimelineCursor? = nil) {
            self.from = from
            self.to = to
            self.limit = limit
            self.cursor = cursor
        }
    }

    /// The media clock of one room.
    struct MediaClock {
        let roomId: String
        let recordings: (any ReplayRecordings)?
        let recorded: Bool
        /// `startedAt` in wall ms (the origin without a recording); nil: never started.
        let startMs: Int64?

        /// Seconds into the show, 3 decimals, ≥ 0.
        func seconds(_ atMs: Int64) -> Double {
            var value: Double
            if recorded, let media = recordings?.mediaSeconds(roomId: roomId, wallClockMs: atMs) {
                value = media
            } else if let startMs {
                value = (Double(atMs) - Double(startMs)) / 1000
            } else {
                value = 0
            }
            guard value.isFinite else { return 0 }
            value = max(0, min(value, TimelineReader.maxSeconds * 10))
            return (value * 1000).rounded() / 1000
        }

        /// The wall instant of `seconds` into the show (nil: not known).
        func wallMs(_ seconds: Double) -> Int64? {
            if recorded { return recordings?.wallClockMs(roomId: roomId, mediaSeconds: seconds) }
            guard let startMs else { return nil }
            return WallClock.clamped(Double(startMs) + seconds * 1000)
        }
    }

    public func page(roomId: String, _ query: Query) async throws -> TimelinePage {
        let room = try await rooms.existingRoom(id: roomId)
        let endMs = room.endedAt.map(WallClock.ms) ?? nowMs()
        let startMs = room.startedAt.map(WallClock.ms)
        let recordedDuration = recordings?.mediaSeconds(roomId: roomId, wallClockMs: endMs)
        let clock = MediaClock(roomId: roomId, recordings: recordings, recorded: recordedDuration != nil, startMs: startMs)
        let duration = recordedDuration.map { $0.isFinite ? max(0, ($0 * 1000).rounded() / 1000) : 0 }
            ?? startMs.map { max(0, ((Double(endMs) - Double($0))).rounded() / 1000) } ?? 0

        // Wall bounds (with slack), then the exact filter on `t`.
        let from = query.from ?? 0
        let to = query.to ?? .infinity
        var fromMs: Int64 = 0
        // The recording's answer is clamped before any arithmetic on it.
        if from > 0, let wall = clock.wallMs(from) { fromMs = max(0, min(max(wall, 0), WallClock.maxMs) - Self.boundSlackMs) }
        var toMs = WallClock.maxMs
        if to.isFinite, let wall = clock.wallMs(to) { toMs = min(WallClock.maxMs, min(max(wall, 0), WallClock.maxMs) + Self.boundSlackMs) }

        let limit = min(max(query.limit, Self.limits.lowerBound), Self.limits.upperBound)
        var eventsAfter: TimelinePosition?
        var chatsAfter: TimelinePosition?
        if let cursor = query.cursor {
            eventsAfter = TimelinePosition(atMs: cursor.atMs, seq: cursor.isChat ? Int64.max : cursor.seq)
            chatsAfter = TimelinePosition(atMs: cursor.atMs, seq: cursor.isChat ? cursor.seq : -1)
        }
        let events = try await store.events(roomId: roomId, fromMs: fromMs, toMs: toMs, after: eventsAfter, kinds: nil, limit: limit)
        let chats = try await store.chats(roomId: roomId, fromMs: fromMs, toMs: toMs, after: chatsAfter, limit: limit)
        let thumbnails = recordings?.chapterThumbnails(roomId: roomId) ?? [:]

        var rows: [Row] = events.compactMap { event in event.seq.map { Row(atMs: event.atMs, isChat: false, seq: $0, event: event, chat: nil) } }
        rows += chats.compactMap { chat in chat.seq.map { Row(atMs: WallClock.ms(chat.createdAt), isChat: true, seq: $0, event: nil, chat: chat) } }
        rows.sort { ($0.atMs, $0.isChat ? 1 : 0, $0.seq) < ($1.atMs, $1.isChat ? 1 : 0, $1.seq) }
        let window = rows.prefix(limit)
        var entries: [TimelineEntry] = []
        var pastTheEnd = false
        for row in window {
            let t = clock.seconds(row.atMs)
            if t > to {
                pastTheEnd = true
                break
            }
            guard t >= from, let entry = Self.entry(row, t: t, thumbnails: thumbnails) else { continue }
            entries.append(entry)
        }
        var nextCursor: String?
        if !pastTheEnd, events.count == limit || chats.count == limit, let last = window.last {
            nextCursor = TimelineCursor(atMs: last.atMs, isChat: last.isChat, seq: last.seq).text
        }

        let features = try await store.events(
            roomId: roomId, fromMs: 0, toMs: WallClock.maxMs, after: nil, kinds: [TimelineKind.feature], limit: Self.maxChapters)
        let chapters: [TimelineChapter] = features.compactMap { event in
            guard let seq = event.seq, let product = try? JSONDecoder().decode(LiveProductView.self, from: Data(event.payload.utf8)) else { return nil }
            let id = "f\(seq)"
            return TimelineChapter(id: id, t: clock.seconds(event.atMs), productId: product.productId, productName: product.productName, thumbnailUrl: thumbnails[id])
        }
        return TimelinePage(
            roomId: roomId, durationSeconds: duration, recording: clock.recorded, events: entries, chapters: chapters, nextCursor: nextCursor)
    }

    struct Row {
        var atMs: Int64
        var isChat: Bool
        var seq: Int64
        var event: TimelineEventRecord?
        var chat: LiveChatRecord?
    }

    /// One entry; a stored event whose payload does not decode as its kind's is left out.
    static func entry(_ row: Row, t: Double, thumbnails: [String: String]) -> TimelineEntry? {
        let at = ISOTime.string(WallClock.date(row.atMs))
        if let chat = row.chat {
            return TimelineEntry(seq: "c\(row.seq)", t: t, at: at, type: "chat", data: .chat(LiveChatView(chat)), chapter: nil)
        }
        guard let event = row.event else { return nil }
        let payload = Data(event.payload.utf8)
        let decoder = JSONDecoder()
        let data: TimelineData
        var chapter: TimelineEntry.Chapter?
        switch event.kind {
        case TimelineKind.pin:
            guard let chat = try? decoder.decode(LiveChatView.self, from: payload) else { return nil }
            data = .chat(chat)
        case TimelineKind.feature:
            guard let product = try? decoder.decode(LiveProductView.self, from: payload) else { return nil }
            data = .product(product)
            let id = "f\(row.seq)"
            chapter = .init(id: id, thumbnailUrl: thumbnails[id])
        case TimelineKind.unfeature:
            guard let value = try? decoder.decode(TimelineUnfeature.self, from: payload) else { return nil }
            data = .unfeature(value)
        case TimelineKind.order:
            guard let value = try? decoder.decode(TimelineOrder.self, from: payload) else { return nil }
            data = .order(value)
        case TimelineKind.status:
            guard let value = try? decoder.decode(RoomStatusMessage.self, from: payload) else { return nil }
            data = .status(value)
        default:
            return nil
        }
        return TimelineEntry(seq: "e\(row.seq)", t: t, at: at, type: event.kind, data: data, chapter: chapter)
    }
}

/// The answer of `GET /rooms/{id}/timeline` (contract §2).
public struct TimelinePage: Encodable, Sendable {
    public var roomId: String
    public var durationSeconds: Double
    public var recording: Bool
    public var events: [TimelineEntry]
    public var chapters: [TimelineChapter]
    /// Null on the last page.
    public var nextCursor: String?

    private enum CodingKeys: String, CodingKey { case roomId, durationSeconds, recording, events, chapters, nextCursor }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(roomId, forKey: .roomId)
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(recording, forKey: .recording)
        try container.encode(events, forKey: .events)
        try container.encode(chapters, forKey: .chapters)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

public struct TimelineEntry: Encodable, Sendable {
    public struct Chapter: Encodable, Sendable {
        public var id: String
        public var thumbnailUrl: String?
    }

    /// `c<seq>` for a chat line, `e<seq>` for an event.
    public var seq: String
    public var t: Double
    public var at: String
    /// chat, pin, feature, unfeature, order or status.
    public var type: String
    public var data: TimelineData
    /// On `feature` events.
    public var chapter: Chapter?
}

public enum TimelineData: Encodable, Sendable {
    case chat(LiveChatView)
    case product(LiveProductView)
    case unfeature(TimelineUnfeature)
    case order(TimelineOrder)
    case status(RoomStatusMessage)

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .chat(let value): try value.encode(to: encoder)
        case .product(let value): try value.encode(to: encoder)
        case .unfeature(let value): try value.encode(to: encoder)
        case .order(let value): try value.encode(to: encoder)
        case .status(let value): try value.encode(to: encoder)
        }
    }
}

public struct TimelineChapter: Encodable, Sendable {
    public var id: String
    public var t: Double
    public var productId: String
    public var productName: String?
    public var thumbnailUrl: String?
}

/// The opaque `cursor` of the timeline: the last row a page scanned (its wall ms, stream, seq),
/// as base64url of `v1.<atMs>.<e|c>.<seq>`. Anything else is refused (`DomainError.malformed`,
/// HTTP 400), never trusted: every number is parsed and range-checked.
public struct TimelineCursor: Sendable, Equatable {
    public static let maxTextLength = 128
    public var atMs: Int64
    public var isChat: Bool
    public var seq: Int64

    public init(atMs: Int64, isChat: Bool, seq: Int64) {
        self.atMs = atMs
        self.isChat = isChat
        self.seq = seq
    }

    public var text: String {
        Data("v1.\(atMs).\(isChat ? "c" : "e").\(seq)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public init(parsing text: String) throws {
        let refusal = DomainError.malformed("cursor is not a cursor of this timeline (use nextCursor as given)")
        guard !text.isEmpty, text.utf8.count <= Self.maxTextLength,
            text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
        else { throw refusal }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let plain = String(data: data, encoding: .utf8) else { throw refusal }
        let parts = plain.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "v1", parts[2] == "c" || parts[2] == "e",
            let atMs = Int64(parts[1]), (0...WallClock.maxMs).contains(atMs),
            let seq = Int64(parts[3]), seq >= 0, seq < Int64.max
        else { throw refusal }
        self.init(atMs: atMs, isChat: parts[2] == "c", seq: seq)
    }
}

extension WallClock {
    /// A wall ms from a computed double, clamped to 0…`maxMs` (NaN → 0): never traps.
    static func clamped(_ ms: Double) -> Int64 {
        guard ms.isFinite else { return ms > 0 ? maxMs : 0 }
        return Int64(min(max(ms.rounded(), 0), Double(maxMs)))
    }
}
