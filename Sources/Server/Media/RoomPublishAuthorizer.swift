import Ingest
import Logging

/// The ingest's `PublishAuthorizer`, implemented against the rooms table: the key is looked up
/// directly in SQLite (no HTTP callback hop as with nginx-rtmp). Takeovers, owner ends and
/// shutdowns are not "publisher gone" events: only the others start the reconnect grace.
struct RoomPublishAuthorizer: PublishAuthorizer {
    let rooms: RoomService
    let logger: Logger

    func authorizePublish(app: String, streamKey: String) async -> PublishDecision {
        do {
            switch try await rooms.authorizePublish(streamKey: streamKey) {
            case .success(let roomId): return .accept(roomId: roomId)
            case .failure(let refusal): return .reject(refusal)
            }
        } catch {
            logger.error("publish authorisation failed", metadata: ["error": "\(error)"])
            return .reject(.unknownKey)
        }
    }

    func publisherStarted(roomId: String, session: Int) async {
        await rooms.publisherStarted(roomId: roomId, session: session)
    }

    func publisherStopped(roomId: String, reason: PublisherStopReason) async {
        switch reason {
        case .takenOver, .endedByOwner, .shutdown:
            return
        case .closed, .idle, .unpublished, .protocolError, .limitExceeded:
            logger.info("publisher gone", metadata: ["room": "\(roomId)", "reason": "\(reason.rawValue)"])
            await rooms.publisherGone(roomId: roomId)
        }
    }
}
