import Foundation

/// Dev mode (`--dev`, `LIVEHUB_DEV=1`) without `LIVEHUB_JWT_SECRET` / `LIVEHUB_INTERNAL_TOKEN`:
/// secrets are generated once and kept in the data directory (mode 0600) so that printed tokens
/// survive a restart. 48 random bytes are 64 characters: long enough for HS512 (RFC 7518 §3.2).
enum DevSecrets {
    static func loadOrCreate(named name: String, in directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent(name)
        if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            let trimmed = existing.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.count >= 32 { return trimmed }
        }
        let secret = StreamKey.randomToken(byteCount: 48)
        FileManager.default.createFile(atPath: path, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
        return secret
    }
}
