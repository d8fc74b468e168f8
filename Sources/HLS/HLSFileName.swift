/// The exact file names of a room's HLS output (the URL scheme in `HLSService.swift`): parsed from
/// request paths here, and formatted here for every URI the playlists list, so the two cannot drift.
enum HLSFileName: Sendable, Hashable, CustomStringConvertible {
    case multivariant
    case media
    case thumbnail
    case initSection(Int)
    case segment(msn: Int, ext: String)
    case part(msn: Int, index: Int)
    /// Issue 21: the recording's `EVENT` playlist (the whole show so far).
    case dvr
    /// Issue 21: the finished recording's `VOD` playlist.
    case vod
    /// A recorded init section (`init-{n}.mp4` on disk).
    case recordedInit(Int)
    /// A recorded segment (`seg-{msn}.m4s|ts` on disk).
    case recordedSegment(msn: Int, ext: String)
    /// A chapter's thumbnail (on disk).
    case chapterThumbnail(Int)

    /// The name as served and as listed in a playlist (`seg-12.m4s`, `part-12-3.m4s`, …).
    var description: String {
        switch self {
        case .multivariant: return "index.m3u8"
        case .media: return "media.m3u8"
        case .thumbnail: return "thumbnail.jpg"
        case .initSection(let index): return "init-\(index).mp4"
        case .segment(let msn, let ext): return "seg-\(msn).\(ext)"
        case .part(let msn, let index): return "part-\(msn)-\(index).m4s"
        case .dvr: return "dvr.m3u8"
        case .vod: return "vod.m3u8"
        case .recordedInit(let index): return "rec-init-\(index).mp4"
        case .recordedSegment(let msn, let ext): return "rec-\(msn).\(ext)"
        case .chapterThumbnail(let n): return "chapter-\(n).jpg"
        }
    }

    /// The name of a recorded file in the recording's directory (`nil` for names that are not).
    var fileNameOnDisk: String? {
        switch self {
        case .recordedInit(let index): return "init-\(index).mp4"
        case .recordedSegment(let msn, let ext): return "seg-\(msn).\(ext)"
        case .chapterThumbnail: return description
        default: return nil
        }
    }

    /// Exactly the names `description` produces (numbers without sign or leading zeros, at most 9
    /// digits); anything else, `..`, `/` and `%2F` included, is nil.
    init?(_ name: String) {
        switch name {
        case "index.m3u8": self = .multivariant
        case "media.m3u8": self = .media
        case "thumbnail.jpg": self = .thumbnail
        case "dvr.m3u8": self = .dvr
        case "vod.m3u8": self = .vod
        default:
            let s = Substring(name)
            if let middle = Self.strip(s, prefix: "rec-init-", suffix: ".mp4"), let n = Self.number(middle) {
                self = .recordedInit(n)
            } else if let middle = Self.strip(s, prefix: "rec-", suffix: ".m4s"), let n = Self.number(middle) {
                self = .recordedSegment(msn: n, ext: "m4s")
            } else if let middle = Self.strip(s, prefix: "rec-", suffix: ".ts"), let n = Self.number(middle) {
                self = .recordedSegment(msn: n, ext: "ts")
            } else if let middle = Self.strip(s, prefix: "chapter-", suffix: ".jpg"), let n = Self.number(middle) {
                self = .chapterThumbnail(n)
            } else if let middle = Self.strip(s, prefix: "init-", suffix: ".mp4"), let n = Self.number(middle) {
                self = .initSection(n)
            } else if let middle = Self.strip(s, prefix: "seg-", suffix: ".m4s"), let n = Self.number(middle) {
                self = .segment(msn: n, ext: "m4s")
            } else if let middle = Self.strip(s, prefix: "seg-", suffix: ".ts"), let n = Self.number(middle) {
                self = .segment(msn: n, ext: "ts")
            } else if let middle = Self.strip(s, prefix: "part-", suffix: ".m4s") {
                let pieces = middle.split(separator: "-", omittingEmptySubsequences: false)
                guard pieces.count == 2, let m = Self.number(pieces[0]), let i = Self.number(pieces[1]) else { return nil }
                self = .part(msn: m, index: i)
            } else {
                return nil
            }
        }
    }

    private static func strip(_ s: Substring, prefix: String, suffix: String) -> Substring? {
        guard s.hasPrefix(prefix), s.hasSuffix(suffix), s.count > prefix.count + suffix.count else { return nil }
        return s.dropFirst(prefix.count).dropLast(suffix.count)
    }

    /// A non-negative decimal without sign or leading zeros, at most 9 digits.
    static func number(_ s: Substring) -> Int? {
        let utf8 = s.utf8
        guard (1...9).contains(utf8.count), utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        if utf8.count > 1 && utf8.first == 0x30 { return nil }
        return Int(s)
    }
}
