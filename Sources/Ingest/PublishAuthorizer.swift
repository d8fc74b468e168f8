/// Why a publish was refused: by the ingest itself (`wrongApp`, `malformedURL`) or by the
/// authorizer (`unknownKey`, `roomEnded`; the Server's `RoomService.authorizePublish`, also behind the
/// nginx-rtmp callback). The raw value is the metric dimension and the log word.
public enum PublishRejection: String, Error, Sendable {
    case unknownKey, roomEnded, wrongApp, malformedURL
}

/// The authorizer's answer to a publish request.
public enum PublishDecision: Sendable {
    case accept(roomId: String)
    case reject(PublishRejection)
}

/// Why a publisher stopped. Reported exactly once per accepted publish.
public enum PublisherStopReason: String, Sendable {
    /// `limitExceeded`: a consumer of the stream refused it (`LiveStream.refusePublisher`), e.g.
    /// the HLS packager's per-segment byte limit.
    case closed, idle, takenOver, unpublished, endedByOwner, protocolError, limitExceeded, shutdown
}

/// Implemented by the server against its rooms table (Ingest knows nothing of rooms or SQL).
public protocol PublishAuthorizer: Sendable {
    /// Called for every `publish` with the connect `app` (query stripped) and the stream key
    /// (query stripped). Not called when the app is not the configured one.
    func authorizePublish(app: String, streamKey: String) async -> PublishDecision
    /// The publish of `roomId` started; `session` is `LiveStream.beginPublish()`'s value.
    func publisherStarted(roomId: String, session: Int) async
    /// The publisher of `roomId` went away (once per `publisherStarted`).
    func publisherStopped(roomId: String, reason: PublisherStopReason) async
}

/// The one way a stream key appears in a log line, anywhere in LiveHub: a short, non-reversible
/// tag (`key#1a2b3c4d`, 32 bits of FNV-1a), the same for the same key so lines can be correlated.
/// The key itself is a secret (DESIGN.md) and is never logged.
public func streamKeyTag(_ key: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in key.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x100_0000_01b3
    }
    let hex = String(hash & 0xFFFF_FFFF, radix: 16)
    return "key#" + String(repeating: "0", count: 8 - hex.count) + hex
}
