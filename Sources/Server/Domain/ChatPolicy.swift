import Foundation

/// The pure rules of moderated chat (issue 22 §3), apart from any storage or cache: link
/// detection, blocked words, slow mode, mute expiry. `ModerationService` applies them in this
/// order: banned, muted, slow mode, links, blocked words.
enum ChatPolicy {
    /// Largest `slowModeSeconds`.
    static let maxSlowModeSeconds = 3600
    /// Blocked words per room, and characters (Unicode scalars) per word (documented constants: README "Moderation").
    static let maxBlockedWords = 200
    static let maxBlockedWordLength = 64
    /// Longest mute, in minutes (7 days).
    static let maxMuteMinutes = 10_080

    /// Whether `text` holds a link: `http://`, `https://`, `www.`, or a domain-like word
    /// (`shop.example`, `bit.ly/x`: labels of ASCII letters, digits and `-` joined by dots, the last
    /// one 2–24 letters). Numbers such as `3.50` and abbreviations such as `e.g.` are not links.
    /// Works on the UTF-8 bytes (a domain is ASCII; any other byte ends a word), ASCII case folded.
    static func containsLink(_ text: String) -> Bool {
        // Fast path: every link form has a dot or `://`; most lines have neither.
        guard text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: ":") }) else { return false }
        var bytes = Array(text.utf8)
        for index in bytes.indices where bytes[index] >= 0x41 && bytes[index] <= 0x5A { bytes[index] |= 0x20 }
        if has(bytes, "http://") || has(bytes, "https://") || has(bytes, "www.") { return true }
        var start = 0
        for index in 0...bytes.count {
            let ends = index == bytes.count || bytes[index] >= 0x80 || asciiWhitespace(bytes[index])
            guard ends else { continue }
            if index > start, isDomainLike(bytes[start..<index]) { return true }
            start = index + 1
        }
        return false
    }

    private static func has(_ bytes: [UInt8], _ pattern: String) -> Bool {
        let needle = Array(pattern.utf8)
        guard bytes.count >= needle.count else { return false }
        return (0...(bytes.count - needle.count)).contains { offset in needle.indices.allSatisfy { bytes[offset + $0] == needle[$0] } }
    }

    private static func asciiWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }

    private static func asciiLetter(_ byte: UInt8) -> Bool { byte >= 0x61 && byte <= 0x7A }

    private static func asciiPunctuationOrSymbol(_ byte: UInt8) -> Bool {
        (0x21...0x2F).contains(byte) || (0x3A...0x40).contains(byte) || (0x5B...0x60).contains(byte) || (0x7B...0x7E).contains(byte)
    }

    /// A word (lower-case ASCII bytes) up to its first `/`, `?`, `#` or `:`, trimmed of
    /// punctuation around it (`-` kept), is `label(.label)*.tld`.
    static func isDomainLike(_ word: ArraySlice<UInt8>) -> Bool {
        guard word.contains(UInt8(ascii: ".")) else { return false }
        var host = word.prefix { !"/?#:".utf8.contains($0) }
        while let first = host.first, first != UInt8(ascii: "-"), asciiPunctuationOrSymbol(first) { host.removeFirst() }
        while let last = host.last, last != UInt8(ascii: "-"), asciiPunctuationOrSymbol(last) { host.removeLast() }
        let labels = host.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2, let tld = labels.last, (2...24).contains(tld.count), tld.allSatisfy(asciiLetter) else { return false }
        return labels.dropLast().allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.allSatisfy { asciiLetter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") }
        }
    }

    /// The words of `text` as blocked words are compared: split at whitespace, trimmed of
    /// punctuation and symbols (Unicode categories P and S) at both ends, lowercased. One pass
    /// over the scalars (no Foundation trimming: this runs on every line of a room with words).
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        var index = start
        while index < scalars.endIndex {
            if isWhitespace(scalars[index]) {
                if start < index, let word = word(scalars[start..<index]) { words.append(word) }
                start = scalars.index(after: index)
            }
            index = scalars.index(after: index)
        }
        if start < scalars.endIndex, let word = word(scalars[start...]) { words.append(word) }
        return words
    }

    private static func word(_ scalars: Substring.UnicodeScalarView) -> String? {
        let core = trimmed(scalars, keepingHyphen: false)
        return core.isEmpty ? nil : String(Substring(core)).lowercased()
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII ? asciiWhitespace(UInt8(scalar.value)) : scalar.properties.isWhitespace
    }

    /// Punctuation, symbols and whitespace (what `words` and `normalize` trim); ASCII by table.
    static func isTrimmable(_ scalar: Unicode.Scalar, keepingHyphen: Bool) -> Bool {
        if keepingHyphen, scalar == "-" { return false }
        if scalar.isASCII {
            let byte = UInt8(scalar.value)
            return asciiWhitespace(byte) || asciiPunctuationOrSymbol(byte)
        }
        if scalar.properties.isWhitespace { return true }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation,
             .otherPunctuation, .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return true
        default:
            return false
        }
    }

    /// `scalars` without the trimmable ones at both ends (a slice: no copy).
    static func trimmed(_ scalars: Substring.UnicodeScalarView, keepingHyphen: Bool) -> Substring.UnicodeScalarView {
        var start = scalars.startIndex
        var end = scalars.endIndex
        while start < end, isTrimmable(scalars[start], keepingHyphen: keepingHyphen) { start = scalars.index(after: start) }
        while start < end {
            let before = scalars.index(before: end)
            guard isTrimmable(scalars[before], keepingHyphen: keepingHyphen) else { break }
            end = before
        }
        return scalars[start..<end]
    }

    /// A blocked word as it is stored and compared (as `words` makes each word).
    static func normalize(_ word: String) -> String {
        String(Substring(trimmed(Substring(word).unicodeScalars, keepingHyphen: false))).lowercased()
    }

    /// The first blocked word `text` holds as a whole word (case-insensitive), or nil.
    static func blockedWord(in text: String, blocked: Set<String>) -> String? {
        guard !blocked.isEmpty else { return nil }
        return words(text).first(where: blocked.contains)
    }

    /// Whether a mute that ends at `until` still holds at `now`.
    static func isMuted(until: Date?, now: Date) -> Bool {
        guard let until else { return false }
        return until > now
    }

    /// Seconds left before a user whose last line was at `last` may post again (nil = may post).
    static func slowModeWait(last: Date?, seconds: Int, now: Date) -> Int? {
        guard seconds > 0, let last else { return nil }
        let elapsed = now.timeIntervalSince(last)
        guard elapsed >= 0, elapsed < Double(seconds) else { return nil }
        return max(1, Int((Double(seconds) - elapsed).rounded(.up)))
    }

    /// Checks and normalizes settings from the outside (`DomainError.malformed`: HTTP 400).
    static func validated(_ settings: ChatSettings) throws -> ChatSettings {
        guard (0...maxSlowModeSeconds).contains(settings.slowModeSeconds) else {
            throw DomainError.malformed("slowModeSeconds must be in 0...\(maxSlowModeSeconds)")
        }
        guard settings.blockedWords.count <= maxBlockedWords else {
            throw DomainError.malformed("at most \(maxBlockedWords) blocked words")
        }
        var words: [String] = []
        for raw in settings.blockedWords {
            guard raw.unicodeScalars.count <= maxBlockedWordLength else {
                throw DomainError.malformed("a blocked word is at most \(maxBlockedWordLength) characters")
            }
            let word = normalize(raw)
            // Lower-casing may add scalars (`İ` → `i̇`): the stored word is bounded too.
            guard word.unicodeScalars.count <= maxBlockedWordLength else {
                throw DomainError.malformed("a blocked word is at most \(maxBlockedWordLength) characters")
            }
            guard !word.isEmpty, !word.contains(where: { $0.isWhitespace }),
                  !word.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw DomainError.malformed("a blocked word is one word of letters, digits or symbols (no spaces)")
            }
            if !words.contains(word) { words.append(word) }
        }
        var valid = settings
        valid.blockedWords = words
        return valid
    }
}
