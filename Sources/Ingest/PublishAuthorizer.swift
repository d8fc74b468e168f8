/// Why a publish was refused. The raw value is the metric dimension and the log word.
public enum PublishRejection: String, Sendable {
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
