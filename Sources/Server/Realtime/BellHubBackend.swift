import Hub
import Logging
import NIOCore

/// The notification domain behind the Socket.IO endpoint (DESIGN.md "Notification bell").
/// Inbound events are validated, applied, and acked; the resulting pushes to every tab of the
/// user come from `NotificationService`'s events (wired in `RealtimeWiring`).
struct BellHubBackend: BellBackend {
    let notifications: NotificationService
    let broker: any HubBroker
    /// Notifications replayed to a reconnecting socket at most (`LIVEHUB_BELL_REPLAY_MAX`).
    var replayMax = 100
    let logger: Logger

    /// Recovery for the bell (issue 22 §4): the user's notifications newer than `lastNotificationId`,
    /// oldest first, each as `notification:new` (with the unread count of now), then
    /// `unreadCount:updated` with the exact count. The newest `replayMax + 1` are read: when the id is
    /// not among them (more than `replayMax` were missed, or it is not one of the user's), one
    /// `notification:resync` `{"reason":…,"unreadCount":N}` tells the client to reload by REST.
    /// A notification created while this runs may arrive twice (live and replayed): the client
    /// keys them by `notificationId`.
    func missedEvents(after lastNotificationId: String, identity: HubIdentity) async -> [BellReplayEvent] {
        do {
            let newest = try await notifications.list(userId: identity.userId, limit: replayMax + 1, cursor: nil).items
            let unread = try await notifications.unreadCount(userId: identity.userId)
            let count = BellReplayEvent(event: "unreadCount:updated", payload: ByteBuffer(string: #"{"count":\#(unread)}"#))
            guard let index = newest.firstIndex(where: { $0.id == lastNotificationId }) else {
                let reason = newest.count > replayMax ? "too-many-missed" : "unknown-notification"
                return [BellReplayEvent(event: "notification:resync", payload: RealtimeWiring.json(BellResyncMessage(reason: reason, unreadCount: unread))), count]
            }
            let missed = newest[..<index].reversed()
            return missed.map { BellReplayEvent(event: "notification:new", payload: RealtimeWiring.json(NewNotificationMessage($0, unreadCount: unread))) } + [count]
        } catch {
            logger.error("bell replay failed", metadata: ["error": "\(error)"])
            return []
        }
    }

    func handleEvent(name: String, payload: JSONValue, connection: HubConnectionContext, identity: HubIdentity) async -> BellEventResult {
        switch name {
        case "notification:read":
            let id = payload["notificationId"]?.stringValue ?? payload["notificationId"]?.intValue.map(String.init)
            guard let id, !id.isEmpty, id.count <= 200 else {
                return .error(code: "invalid-payload", message: "notification:read needs {\"notificationId\": \"…\"}")
            }
            do {
                let outcome = try await notifications.markRead(id: id, userId: identity.userId)
                return .ack(.object([("ok", .bool(true)), ("notificationId", .string(id)), ("unreadCount", .number(Double(outcome.unreadCount)))]))
            } catch let refusal as DomainError {
                if case .notFound = refusal { return .error(code: "not-found", message: refusal.message) }
                return .error(code: "invalid", message: refusal.message)
            } catch {
                logger.error("bell read failed", metadata: ["error": "\(error)"])
                return .error(code: "internal", message: "the notification could not be updated")
            }
        case "notification:read-all":
            do {
                let outcome = try await notifications.markAllRead(userId: identity.userId)
                return .ack(.object([("ok", .bool(true)), ("unreadCount", .number(Double(outcome.unreadCount)))]))
            } catch {
                logger.error("bell read-all failed", metadata: ["error": "\(error)"])
                return .error(code: "internal", message: "the notifications could not be updated")
            }
        default:
            return .error(code: "unknown-event", message: "unknown event \(name)")
        }
    }

    /// A new tab learns the current unread count at once.
    func userConnected(_ connection: HubConnectionContext, identity: HubIdentity, isFirstConnectionOfUser: Bool) async {
        guard let count = try? await notifications.unreadCount(userId: identity.userId) else { return }
        await broker.sendToUser(userId: identity.userId, event: "unreadCount:updated", json: #"{"count":\#(count)}"#)
    }
}

/// `notification:resync`: the client reloads its notifications and count by REST.
struct BellResyncMessage: Codable, Sendable {
    var reason: String
    var unreadCount: Int
}
