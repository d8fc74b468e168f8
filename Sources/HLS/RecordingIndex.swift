import Foundation

/// One room's recording as a value: what `index.jsonl` says (issue 21 contract §1), validated line
/// by line. Pure: no disk, no clock — `RecordingIndex.parse` reads the file's bytes,
/// `RecordingIndex.Line.encoded` writes one line, `apply` folds a line in.
///
/// Every number read back is validated (the file may be edited or corrupt): a line that does not
/// decode, or whose values are out of range, is skipped — so a torn last line after a `kill -9` is
/// skipped and the recording plays up to the last sealed segment.
public struct RecordingIndex: Sendable, Hashable {
    public struct Segment: Sendable, Hashable {
        public var msn: Int
        public var duration: Double
        public var programDateTimeMs: Int64
        public var discontinuity: Bool
        public var initIndex: Int?
        public var bytes: Int64
        /// Seconds into the show where it starts (sum of the durations before it).
        public var mediaStart: Double
    }

    public struct Chapter: Sendable, Hashable {
        public var id: String
        public var startMs: Int64
        public var endMs: Int64?
        public var attributes: [String: String]
        public var className: String
        public var thumbnailFile: String?
    }

    public private(set) var variant: HLSVariant = .fmp4LowLatency
    public private(set) var targetDuration = 2
    public private(set) var startedAtMs: Int64?
    /// The `end` line's time when no segment follows it (a later publish session appends).
    public private(set) var endedAtMs: Int64?
    public private(set) var inits: [Int] = []
    public private(set) var segments: [Segment] = []
    public private(set) var chapters: [Chapter] = []
    public private(set) var bytes: Int64 = 0
    /// Bumped by every line folded in (the rendered playlists are cached per revision).
    public private(set) var revision = 0

    public init() {}

    public var durationSeconds: Double { segments.last.map { $0.mediaStart + $0.duration } ?? 0 }
    public var lastMSN: Int? { segments.last?.msn }
    /// The number the next chapter thumbnail file gets.
    public var nextThumbnailNumber: Int { chapters.filter { $0.thumbnailFile != nil }.count }
    public var nextInitNumber: Int { (inits.max() ?? -1) + 1 }

    // MARK: Limits (validation of every value read back)

    static let maxNumber = 999_999_999
    /// Wall clock: 1970 … year 2286 in milliseconds.
    static let wallClockRange: ClosedRange<Int64> = 0...10_000_000_000_000
    static let maxSegmentSeconds = 3600.0
    static let maxChapters = 10_000
    static let maxSegments = 2_000_000
    static let maxAttributes = 16
    static let maxValueBytes = 200
    /// The index files read at most this many bytes (2 million segment lines fit).
    public static let maxFileBytes = 512 << 20
    public static let chapterClass = "com.livehub.product"

    /// `[A-Za-z0-9_-]{1,64}`: a chapter id as the contract allows it.
    public static func isValidChapterId(_ id: String) -> Bool {
        let utf8 = id.utf8
        return (1...64).contains(utf8.count)
            && utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    }

    // MARK: Lines

    /// One line of `index.jsonl`.
    public enum Line: Sendable, Hashable {
        case start(ms: Int64, variant: HLSVariant, targetDuration: Int)
        case initSection(n: Int)
        case segment(msn: Int, duration: Double, programDateTimeMs: Int64, discontinuity: Bool, initIndex: Int?, bytes: Int64)
        case chapter(id: String, startMs: Int64, attributes: [String: String], className: String)
        case chapterEnd(id: String, endMs: Int64)
        case thumbnail(id: String, file: String)
        case end(ms: Int64)

        /// The line as written, `\n` included.
        public var encoded: String {
            switch self {
            case .start(let ms, let variant, let td):
                return "{\"k\":\"start\",\"ms\":\(ms),\"variant\":\"\(variant.rawValue)\",\"td\":\(td)}\n"
            case .initSection(let n):
                return "{\"k\":\"init\",\"n\":\(n)}\n"
            case .segment(let msn, let d, let pdt, let disc, let initIndex, let bytes):
                return "{\"k\":\"seg\",\"msn\":\(msn),\"d\":\(decimal(d)),\"pdt\":\(pdt),\"disc\":\(disc),\"init\":\(initIndex.map(String.init) ?? "null"),\"bytes\":\(bytes)}\n"
            case .chapter(let id, let start, let attributes, let className):
                let attrs = attributes.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",")
                return "{\"k\":\"chapter\",\"id\":\(jsonString(id)),\"start\":\(start),\"attrs\":{\(attrs)},\"class\":\(jsonString(className))}\n"
            case .chapterEnd(let id, let end):
                return "{\"k\":\"chapter-end\",\"id\":\(jsonString(id)),\"end\":\(end)}\n"
            case .thumbnail(let id, let file):
                return "{\"k\":\"thumb\",\"id\":\(jsonString(id)),\"file\":\(jsonString(file))}\n"
            case .end(let ms):
                return "{\"k\":\"end\",\"ms\":\(ms)}\n"
            }
        }

        private struct Raw: Decodable {
            var k: String
            var ms: Int64?
            var variant: String?
            var td: Int?
            var n: Int?
            var msn: Int?
            var d: Double?
            var pdt: Int64?
            var disc: Bool?
            var `init`: Int?
            var bytes: Int64?
            var id: String?
            var start: Int64?
            var attrs: [String: String]?
            var `class`: String?
            var end: Int64?
            var file: String?
        }

        /// A line read back, validated; nil when it does not decode or a value is out of range.
        public static func decode(_ text: Substring) -> Line? {
            guard let raw = try? JSONDecoder().decode(Raw.self, from: Data(text.utf8)) else { return nil }
            func wall(_ value: Int64?) -> Int64? { value.flatMap { wallClockRange.contains($0) ? $0 : nil } }
            func number(_ value: Int?) -> Int? { value.flatMap { (0...maxNumber).contains($0) ? $0 : nil } }
            switch raw.k {
            case "start":
                guard let ms = wall(raw.ms), let variant = raw.variant.flatMap(HLSVariant.init(rawValue:)),
                    let td = raw.td, (1...3600).contains(td)
                else { return nil }
                return .start(ms: ms, variant: variant, targetDuration: td)
            case "init":
                guard let n = number(raw.n) else { return nil }
                return .initSection(n: n)
            case "seg":
                guard let msn = number(raw.msn), let d = raw.d, d.isFinite, d >= 0, d <= maxSegmentSeconds,
                    let pdt = wall(raw.pdt), let bytes = raw.bytes, (0...(1 << 40)).contains(bytes)
                else { return nil }
                var initIndex: Int?
                if let value = raw.`init` {
                    guard let n = number(value) else { return nil }
                    initIndex = n
                }
                return .segment(msn: msn, duration: d, programDateTimeMs: pdt, discontinuity: raw.disc ?? false, initIndex: initIndex, bytes: bytes)
            case "chapter":
                guard let id = raw.id, isValidChapterId(id), let start = wall(raw.start) else { return nil }
                let attrs = raw.attrs ?? [:]
                guard attrs.count <= maxAttributes, attrs.keys.allSatisfy(DateRange.isValidAttributeName) else { return nil }
                let className = raw.`class` ?? chapterClass
                guard DateRange.sanitized(className) == className, !className.isEmpty else { return nil }
                return .chapter(id: id, startMs: start, attributes: attrs.mapValues(DateRange.sanitized), className: className)
            case "chapter-end":
                guard let id = raw.id, isValidChapterId(id), let end = wall(raw.end) else { return nil }
                return .chapterEnd(id: id, endMs: end)
            case "thumb":
                guard let id = raw.id, isValidChapterId(id), let file = raw.file,
                    case .chapterThumbnail = HLSFileName(file)
                else { return nil }
                return .thumbnail(id: id, file: file)
            case "end":
                guard let ms = wall(raw.ms) else { return nil }
                return .end(ms: ms)
            default:
                return nil
            }
        }
    }

    /// Folds one line in. Lines that contradict what came before (a segment number not above the
    /// last one, an init section or chapter seen twice, a thumbnail for no chapter) are ignored.
    public mutating func apply(_ line: Line) {
        revision &+= 1
        switch line {
        case .start(let ms, let variant, let td):
            if startedAtMs == nil {
                startedAtMs = ms
                self.variant = variant
                targetDuration = td
            }
            targetDuration = max(targetDuration, td)
        case .initSection(let n):
            if !inits.contains(n) { inits.append(n) }
        case .segment(let msn, let d, let pdt, let disc, let initIndex, let bytes):
            guard (segments.count < Self.maxSegments), msn > (lastMSN ?? -1) else { return }
            if let initIndex, !inits.contains(initIndex) { return }
            // Program date-times never go backwards here (a clock stepped back, or an edited file):
            // the media timeline's lookups search them in order.
            segments.append(Segment(
                msn: msn, duration: d, programDateTimeMs: max(pdt, segments.last?.programDateTimeMs ?? pdt), discontinuity: disc || (!segments.isEmpty && endedAtMs != nil),
                initIndex: initIndex, bytes: bytes, mediaStart: durationSeconds))
            self.bytes += bytes
            endedAtMs = nil
        case .chapter(let id, let start, let attributes, let className):
            guard chapters.count < Self.maxChapters, !chapters.contains(where: { $0.id == id }) else { return }
            chapters.append(Chapter(id: id, startMs: start, attributes: attributes, className: className))
        case .chapterEnd(let id, let end):
            guard let index = chapters.firstIndex(where: { $0.id == id }), chapters[index].endMs == nil else { return }
            chapters[index].endMs = max(end, chapters[index].startMs)
        case .thumbnail(let id, let file):
            guard let index = chapters.firstIndex(where: { $0.id == id }), chapters[index].thumbnailFile == nil else { return }
            chapters[index].thumbnailFile = file
        case .end(let ms):
            endedAtMs = ms
        }
    }

    /// The index from the bytes of `index.jsonl`: lines that do not decode are skipped (a torn last
    /// line after a crash among them).
    public static func parse(_ bytes: some Collection<UInt8>) -> RecordingIndex {
        var index = RecordingIndex()
        var line: [UInt8] = []
        func flush() {
            defer { line.removeAll(keepingCapacity: true) }
            guard !line.isEmpty, line.count <= 64 << 10, let text = String(validating: line, as: UTF8.self) else { return }
            if let decoded = Line.decode(Substring(text)) { index.apply(decoded) }
        }
        for byte in bytes.prefix(maxFileBytes) {
            if byte == 0x0A { flush() } else if line.count <= 64 << 10 { line.append(byte) }
        }
        // The last line counts only when it was terminated: a line without its `\n` is torn.
        return index
    }

    // MARK: The media timeline

    /// Seconds into the show for a wall-clock instant: inside a segment → its media start plus the
    /// offset; in a gap (a reconnect) → the next segment's start; before the first → 0; after the
    /// last → the duration.
    public func mediaSeconds(wallClockMs: Int64) -> Double {
        guard let first = segments.first else { return 0 }
        if wallClockMs <= first.programDateTimeMs { return 0 }
        // The last segment starting at or before the instant.
        var low = 0
        var high = segments.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if segments[mid].programDateTimeMs <= wallClockMs { low = mid } else { high = mid - 1 }
        }
        let segment = segments[low]
        let offset = Double(wallClockMs - segment.programDateTimeMs) / 1000
        if offset < segment.duration { return segment.mediaStart + offset }
        return segment.mediaStart + segment.duration  // the gap up to the next segment, or the end
    }

    /// The wall-clock instant at `mediaSeconds` (clamped to [0, duration]); nil without segments.
    public func wallClockMs(mediaSeconds: Double) -> Int64? {
        guard !segments.isEmpty else { return nil }
        let seconds = mediaSeconds.isNaN ? 0 : min(max(mediaSeconds, 0), durationSeconds)
        var low = 0
        var high = segments.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if segments[mid].mediaStart <= seconds { low = mid } else { high = mid - 1 }
        }
        let segment = segments[low]
        let offset = min(max(seconds - segment.mediaStart, 0), segment.duration)
        return segment.programDateTimeMs + Int64((offset * 1000).rounded())
    }

    // MARK: Playlists

    /// The recording as a media playlist: `EVENT` (DVR, `EXT-X-ENDLIST` once ended) or `VOD`
    /// (RFC 8216bis §4.4.3.5), every segment with its program date-time, chapters as DATERANGE.
    /// nil without segments.
    public func playlist(type: MediaPlaylist.PlaylistType) -> MediaPlaylist? {
        guard let first = segments.first else { return nil }
        let ext = variant.segmentExtension
        let longest = segments.map(\.duration).max() ?? 0
        let listed = segments.map { segment in
            MediaPlaylist.Segment(
                duration: segment.duration, uri: HLSFileName.recordedSegment(msn: segment.msn, ext: ext).description,
                discontinuity: segment.discontinuity && segment.msn != first.msn,
                mapURI: variant.usesFragmentedMP4 ? segment.initIndex.map { HLSFileName.recordedInit($0).description } : nil,
                programDateTimeMs: segment.programDateTimeMs)
        }
        return MediaPlaylist(
            version: variant == .mpegts ? 3 : 6,
            targetDuration: max(targetDuration, Int(min(longest, Self.maxSegmentSeconds).rounded())),
            mediaSequence: first.msn,
            playlistType: type,
            segments: listed,
            dateRanges: chapters.map(\.dateRange),
            ended: type == .vod || endedAtMs != nil)
    }
}

extension RecordingIndex.Chapter {
    var dateRange: DateRange {
        DateRange(id: id, className: className, startMs: startMs, endMs: endMs, attributes: attributes)
    }
}

/// A JSON string literal (RFC 8259 §7).
func jsonString(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
