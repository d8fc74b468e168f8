import Foundation
import FuzzSupport
@testable import Server

/// Issue 22 §3: the same bytes as a chat line checked by moderation (`ChatPolicy`: links, whole
/// words) and as the JSON bodies of `PUT /chat-settings` and `POST /mutes`.
///
/// Invariants: a word `ChatPolicy.words` yields is normalized (normalizing again changes nothing)
/// and is found as a blocked word in its own text; settings that pass `ChatPolicy.validated` are
/// within the documented bounds (≤ 200 words of 1–64 scalars without whitespace, slow mode
/// 0–3600 s) and validating them again changes nothing.
func fuzzModeration(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    _ = ChatPolicy.containsLink(text)
    let words = ChatPolicy.words(text)
    if let word = words.first {
        fuzzCheck(ChatPolicy.normalize(word) == word, "a word of the text is not normalized: \(word)")
        fuzzCheck(ChatPolicy.blockedWord(in: text, blocked: [word]) == word, "a word of the text is not found in it: \(word)")
    }
    if let body = try? JSONDecoder().decode(ModerationController.SettingsBody.self, from: Data(bytes)) {
        let settings = ChatSettings(
            slowModeSeconds: body.slowModeSeconds ?? 0, blockedWords: body.blockedWords ?? [],
            linksOnlyFromModerators: body.linksOnlyFromModerators ?? false)
        if let valid = try? ChatPolicy.validated(settings) {
            fuzzCheck((0...ChatPolicy.maxSlowModeSeconds).contains(valid.slowModeSeconds), "slow mode out of bounds")
            fuzzCheck(valid.blockedWords.count <= ChatPolicy.maxBlockedWords, "too many blocked words kept")
            for word in valid.blockedWords {
                fuzzCheck(!word.isEmpty && word.unicodeScalars.count <= ChatPolicy.maxBlockedWordLength && !word.contains(where: \.isWhitespace),
                          "blocked word out of bounds: \(word)")
            }
            fuzzCheck((try? ChatPolicy.validated(valid)) == valid, "validating valid settings changed them")
        }
    }
    if let mute = try? JSONDecoder().decode(ModerationController.MuteBody.self, from: Data(bytes)) {
        _ = (1...ChatPolicy.maxMuteMinutes).contains(mute.minutes)
        _ = try? ModerationService.validUserId(mute.userId.value)
    }
}
