import Hub
import Logging

/// The notification domain behind the Socket.IO endpoint (DESIGN.md "Notification bell").
/// Inbound events are validated, applied, and acked; the resulting pushes to every tab of the
/// user come from `NotificationService`'s events (wired in `RealtimeWiring`).
struct BellHubBackend: BellBackend {
    let notifications: NotificationService
    let broker: any HubBroker
    let logger: Logger

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
