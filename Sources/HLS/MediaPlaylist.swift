/// A media playlist as data, rendered by a pure function (RFC 8216bis §4.4).
public struct MediaPlaylist: Sendable, Hashable {
    public struct Part: Sendable, Hashable {
        public var duration: Double
        public var uri: String
        public var independent: Bool
        public init(duration: Double, uri: String, independent: Bool) {
            self.duration = duration
            self.uri = uri
            self.independent = independent
        }
    }

    public struct Segment: Sendable, Hashable {
        /// nil for the open (still growing) segment, which is listed only through its parts.
        public var duration: Double?
        public var uri: String
        /// Parts to list before the segment (empty when parts are not listed for it).
        public var parts: [Part]
        /// `EXT-X-DISCONTINUITY` precedes the segment (RFC 8216bis §4.4.4.3).
        public var discontinuity: Bool
        /// URI of the segment's initialization section (`EXT-X-MAP`, §4.4.4.5).
        public var mapURI: String?
        /// `EXT-X-PROGRAM-DATE-TIME` (§4.4.4.6) in milliseconds since 1970.
        public var programDateTimeMs: Int64?

        public init(
            duration: Double?, uri: String, parts: [Part] = [], discontinuity: Bool = false,
            mapURI: String? = nil, programDateTimeMs: Int64? = nil
        ) {
            self.duration = duration
            self.uri = uri
            self.parts = parts
            self.discontinuity = discontinuity
            self.mapURI = mapURI
            self.programDateTimeMs = programDateTimeMs
        }
    }

    /// `EXT-X-SERVER-CONTROL` (§4.4.3.8).
    public struct ServerControl: Sendable, Hashable {
        public var canBlockReload: Bool
        public var partHoldBack: Double?
        public var holdBack: Double?
        public init(canBlockReload: Bool, partHoldBack: Double?, holdBack: Double?) {
            self.canBlockReload = canBlockReload
            self.partHoldBack = partHoldBack
            self.holdBack = holdBack
        }
    }

    /// `EXT-X-PLAYLIST-TYPE` (RFC 8216bis §4.4.3.5).
    public enum PlaylistType: String, Sendable, Hashable {
        /// Segments are only appended (the DVR playlist of a live recording).
        case event = "EVENT"
        /// The playlist never changes (a finished recording).
        case vod = "VOD"
    }

    public var version: Int
    public var targetDuration: Int
    public var mediaSequence: Int
    public var discontinuitySequence: Int
    public var playlistType: PlaylistType?
    public var independentSegments: Bool
    public var serverControl: ServerControl?
    /// `EXT-X-PART-INF:PART-TARGET` (§4.4.3.7); nil when the playlist has no parts.
    public var partTarget: Double?
    /// Complete segments, then (last, `duration == nil`) the open segment if it has parts.
    public var segments: [Segment]
    /// `EXT-X-PRELOAD-HINT:TYPE=PART` URI (§4.4.5.3).
    public var preloadHintURI: String?
    /// `EXT-X-DATERANGE` tags (§4.4.5.1), listed after the header (chapters).
    public var dateRanges: [DateRange]
    public var ended: Bool

    public init(
        version: Int, targetDuration: Int, mediaSequence: Int, discontinuitySequence: Int = 0,
        playlistType: PlaylistType? = nil,
        independentSegments: Bool = false, serverControl: ServerControl? = nil, partTarget: Double? = nil,
        segments: [Segment], dateRanges: [DateRange] = [], preloadHintURI: String? = nil, ended: Bool = false
    ) {
        self.playlistType = playlistType
        self.dateRanges = dateRanges
        self.version = version
        self.targetDuration = targetDuration
        self.mediaSequence = mediaSequence
        self.discontinuitySequence = discontinuitySequence
        self.independentSegments = independentSegments
        self.serverControl = serverControl
        self.partTarget = partTarget
        self.segments = segments
        self.preloadHintURI = preloadHintURI
        self.ended = ended
    }

    /// The playlist text (UTF-8, `\n` line ends, §4.1).
    public func render() -> String {
        var lines: [String] = ["#EXTM3U", "#EXT-X-VERSION:\(version)"]
        lines.append("#EXT-X-TARGETDURATION:\(targetDuration)")
        if let serverControl {
            var attributes: [String] = []
            if serverControl.canBlockReload { attributes.append("CAN-BLOCK-RELOAD=YES") }
            if let partHoldBack = serverControl.partHoldBack { attributes.append("PART-HOLD-BACK=\(decimal(partHoldBack))") }
            if let holdBack = serverControl.holdBack { attributes.append("HOLD-BACK=\(decimal(holdBack))") }
            lines.append("#EXT-X-SERVER-CONTROL:" + attributes.joined(separator: ","))
        }
        if let partTarget { lines.append("#EXT-X-PART-INF:PART-TARGET=\(decimal(partTarget))") }
        lines.append("#EXT-X-MEDIA-SEQUENCE:\(mediaSequence)")
        if discontinuitySequence > 0 { lines.append("#EXT-X-DISCONTINUITY-SEQUENCE:\(discontinuitySequence)") }
        if let playlistType { lines.append("#EXT-X-PLAYLIST-TYPE:" + playlistType.rawValue) }
        if independentSegments { lines.append("#EXT-X-INDEPENDENT-SEGMENTS") }
        for dateRange in dateRanges { lines.append(dateRange.rendered) }
        var currentMap: String?
        for segment in segments {
            if segment.discontinuity { lines.append("#EXT-X-DISCONTINUITY") }
            if let map = segment.mapURI, map != currentMap {
                lines.append("#EXT-X-MAP:URI=\"\(map)\"")
                currentMap = map
            }
            if let pdt = segment.programDateTimeMs {
                lines.append("#EXT-X-PROGRAM-DATE-TIME:" + ProgramDateTime.format(milliseconds: pdt))
            }
            for part in segment.parts {
                var line = "#EXT-X-PART:DURATION=\(decimal(part.duration)),URI=\"\(part.uri)\""
                if part.independent { line += ",INDEPENDENT=YES" }
                lines.append(line)
            }
            if let duration = segment.duration {
                lines.append("#EXTINF:\(decimal(duration)),")
                lines.append(segment.uri)
            }
        }
        if let preloadHintURI, !ended {
            lines.append("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"\(preloadHintURI)\"")
        }
        if ended { lines.append("#EXT-X-ENDLIST") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// An `EXT-X-DATERANGE` (RFC 8216bis §4.4.5.1): a chapter of the show. Everything an outsider
/// chose (the id, the class, the `X-` values) is sanitised here, where it is rendered: quoted-string
/// values lose `"`, CR and LF (§4.2) and are cut to 200 UTF-8 bytes; attribute names that are not
/// `X-[A-Z0-9-]+` are dropped.
public struct DateRange: Sendable, Hashable {
    public var id: String
    public var className: String
    public var startMs: Int64
    public var endMs: Int64?
    public var attributes: [String: String]

    public init(id: String, className: String, startMs: Int64, endMs: Int64?, attributes: [String: String]) {
        self.id = id
        self.className = className
        self.startMs = startMs
        self.endMs = endMs
        self.attributes = attributes
    }

    static let maxValueBytes = 200

    /// `X-` followed by 1…62 of `[A-Z0-9-]` (§4.4.5.1 client-defined attributes).
    public static func isValidAttributeName(_ name: String) -> Bool {
        let utf8 = name.utf8
        return name.hasPrefix("X-") && (3...64).contains(utf8.count)
            && utf8.dropFirst(2).allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }
    }

    /// A quoted-string value (§4.2): no `"`, CR, LF (other control characters go too), at most 200
    /// UTF-8 bytes, cut on a character boundary.
    public static func sanitized(_ value: String) -> String {
        var out = ""
        var bytes = 0
        for character in value {
            if character == "\"" || character.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { continue }
            let size = character.utf8.count
            if bytes + size > maxValueBytes { break }
            bytes += size
            out.append(character)
        }
        return out
    }

    /// The tag line.
    public var rendered: String {
        var line = "#EXT-X-DATERANGE:ID=\"\(Self.sanitized(id))\",CLASS=\"\(Self.sanitized(className))\""
        line += ",START-DATE=\"\(ProgramDateTime.format(milliseconds: startMs))\""
        if let endMs, endMs >= startMs {
            line += ",END-DATE=\"\(ProgramDateTime.format(milliseconds: endMs))\""
        }
        for (name, value) in attributes.sorted(by: { $0.key < $1.key }) where Self.isValidAttributeName(name) {
            line += ",\(name)=\"\(Self.sanitized(value))\""
        }
        return line
    }
}

/// A multivariant playlist with one variant (RFC 8216bis §4.4.6.2 EXT-X-STREAM-INF).
public struct MultivariantPlaylist: Sendable, Hashable {
    public var version: Int
    public var independentSegments: Bool
    /// Peak segment bit rate, bits per second.
    public var bandwidth: Int
    public var averageBandwidth: Int?
    public var codecs: [String]
    public var resolution: VideoDimensions?
    public var frameRate: Double?
    public var uri: String

    public init(
        version: Int, independentSegments: Bool, bandwidth: Int, averageBandwidth: Int?, codecs: [String],
        resolution: VideoDimensions?, frameRate: Double?, uri: String
    ) {
        self.version = version
        self.independentSegments = independentSegments
        self.bandwidth = bandwidth
        self.averageBandwidth = averageBandwidth
        self.codecs = codecs
        self.resolution = resolution
        self.frameRate = frameRate
        self.uri = uri
    }

    public func render() -> String {
        var lines = ["#EXTM3U", "#EXT-X-VERSION:\(version)"]
        if independentSegments { lines.append("#EXT-X-INDEPENDENT-SEGMENTS") }
        var attributes = ["BANDWIDTH=\(bandwidth)"]
        if let averageBandwidth { attributes.append("AVERAGE-BANDWIDTH=\(averageBandwidth)") }
        if !codecs.isEmpty { attributes.append("CODECS=\"\(codecs.joined(separator: ","))\"") }
        if let resolution { attributes.append("RESOLUTION=\(resolution.width)x\(resolution.height)") }
        if let frameRate { attributes.append("FRAME-RATE=\(decimal(frameRate))") }
        lines.append("#EXT-X-STREAM-INF:" + attributes.joined(separator: ","))
        lines.append(uri)
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A decimal-floating-point attribute value with three fractional digits (§4.2). Values are
/// clamped to ±10^12 (NaN → 0) so that no value, however it was derived, can trap the conversion.
func decimal(_ value: Double) -> String {
    let bounded = value.isNaN ? 0 : min(max(value, -1e12), 1e12)
    let thousandths = Int64((bounded * 1000).rounded())
    let sign = thousandths < 0 ? "-" : ""
    let magnitude = abs(thousandths)
    let fraction = magnitude % 1000
    let padded = fraction < 10 ? "00\(fraction)" : (fraction < 100 ? "0\(fraction)" : "\(fraction)")
    return "\(sign)\(magnitude / 1000).\(padded)"
}

/// ISO 8601 date-time with milliseconds in UTC, as `EXT-X-PROGRAM-DATE-TIME` wants (§4.4.4.6).
enum ProgramDateTime {
    static func format(milliseconds: Int64) -> String {
        let ms = Int(((milliseconds % 1000) + 1000) % 1000)
        let totalSeconds = (milliseconds - Int64(ms)) / 1000
        var days = Int(totalSeconds / 86400)
        var secondsOfDay = Int(totalSeconds % 86400)
        if secondsOfDay < 0 {
            secondsOfDay += 86400
            days -= 1
        }
        // Howard Hinnant's civil_from_days.
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = ms < 10 ? "00\(ms)" : (ms < 100 ? "0\(ms)" : "\(ms)")
        return "\(year)-\(two(month))-\(two(day))T\(two(secondsOfDay / 3600)):\(two(secondsOfDay / 60 % 60)):\(two(secondsOfDay % 60)).\(millis)Z"
    }
}
