import HLS
import Hummingbird
import Logging
import ServiceLifecycle

extension RecordingConfiguration {
    /// The recording settings (issue 21) from `LIVEHUB_RECORDINGS_DIR`, `…_RETENTION_DAYS`,
    /// `…_MAX_BYTES`, `…_MIN_FREE_BYTES`, `…_MAX_BACKLOG_BYTES`.
    init(_ configuration: LiveHubConfiguration) {
        self.init(
            directory: configuration.recordingsDirectory,
            retention: configuration.recordingRetentionDays > 0 ? .seconds(Int64(configuration.recordingRetentionDays) * 86_400) : nil,
            maxBytes: configuration.recordingsMaxBytes, minFreeBytes: configuration.recordingsMinFreeBytes,
            maxBacklogBytes: configuration.recordingMaxBacklogBytes)
    }
}

/// Enforces the recordings' retention and quota at start, then every `LIVEHUB_RECORDING_SWEEP_SECONDS`
/// (each live's end enforces them too). The disk work runs off the cooperative pool's hot path in a
/// detached task per sweep.
struct RecordingSweepService: Service {
    let library: RecordingLibrary
    let interval: Duration

    func run() async throws {
        let (library, interval) = (library, interval)
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = await Task.detached(priority: .utility) { library.enforceLimits() }.value
                try await Task.sleep(for: interval)
            }
        }
    }
}

/// `DELETE /v1/notifications/live/rooms/{id}/recording` (issue 21): the owner (or an admin, as for
/// `PUT …/end`) removes the room's recording. 204; 404 `NOT_FOUND` without one; 409 `CONFLICT`
/// while it is still being written.
struct RecordingController {
    let rooms: RoomService
    let auth: Authenticator
    let library: RecordingLibrary?

    func addRoutes(to group: RouterGroup<LiveHubRequestContext>) {
        group.delete("rooms/:id/recording", use: delete)
    }

    @Sendable func delete(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let room = try await rooms.ownedRoom(id: try context.parameters.require("id"), by: user)
        guard let library else { throw APIError.notFound("the room has no recording") }
        let roomId = room.id
        let outcome = await Task.detached(priority: .utility) { library.delete(roomId: roomId) }.value
        switch outcome {
        case .deleted: return Response(status: .noContent)
        case .notFound: throw APIError.notFound("the room has no recording")
        case .recording: throw APIError.conflict("the recording is still being written (the room is live)")
        }
    }
}
