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
    /// (`shop.example`, `bit.ly/x`: labels of letters, digits and `-` joined by dots, the last one
    /// 2–24 letters). Numbers such as `3.50` and abbreviations such as `e.g.` are not links.
    static func containsLink(_ text: String) -> Bool {
        let lower = text.lowercased()
        if lower.contains("http://") || lower.contains("https://") || lower.contains("www.") { return true }
        for word in lower.split(whereSeparator: { $0.isWhitespace }) where word.contains(".") {
            if isDomainLike(word) { return true }
        }
        return false
    }

    /// `word` (lowercased) up to its first `/`, `?`, `#` or `:`, trimmed of punctuation around it,
    /// is `label(.label)*.tld`.
    static func isDomainLike(_ word: Substring) -> Bool {
        let host = word.prefix { !"/?#:".contains($0) }
            .trimmingCharacters(in: CharacterSet.punctuationCharacters.union(.symbols).subtracting(CharacterSet(charactersIn: "-")))
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, let tld = labels.last, (2...24).contains(tld.count), tld.allSatisfy({ $0.isASCII && $0.isLetter }) else {
            return false
        }
        return labels.dropLast().allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" }
        }
    }

    /// The words of `text` as blocked words are compared: split at whitespace, trimmed of
    /// punctuation and symbols at both ends, lowercased.
    static func words(_ text: String) -> [String] {
        text.split(whereSeparator: { $0.isWhitespace }).map { normalize(String($0)) }.filter { !$0.isEmpty }
    }

    /// A blocked word as it is stored and compared.
    static func normalize(_ word: String) -> String {
        word.trimmingCharacters(in: CharacterSet.punctuationCharacters.union(.symbols).union(.whitespacesAndNewlines)).lowercased()
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
