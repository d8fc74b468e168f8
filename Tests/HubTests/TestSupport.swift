import Hub
import Logging
import NIOCore
import Synchronization

/// An encoder that counts how often it runs.
final class CountingEncoder: HubMessageEncoder {
    let count = Mutex(0)
    func encode(_ message: HubMessage, variant: String) -> HubOutboundFrame {
        self.count.withLock { $0 += 1 }
        return .text(ByteBuffer(string: "\(variant)|\(message.destination)|\(message.payloadString)"))
    }
    var calls: Int { self.count.withLock { $0 } }
}

extension HubConnection {
    /// Frames queued so far (closes excluded), as strings.
    func pendingStrings() -> [String] {
        self.takePendingOutbound().compactMap {
            if case .frame(let f) = $0 { return f.string }
            return nil
        }
    }
}

/// Authenticator accepting `good-<userId>` tokens, and `expired` as expired.
struct TestAuthenticator: HubAuthenticator {
    func authenticate(token: String) async -> HubAuthResult {
        if token.hasPrefix("good-") {
            let user = String(token.dropFirst(5))
            return .identity(HubIdentity(userId: user, username: "user \(user)"))
        }
        if token == "expired" { return .invalid(reason: "token expired") }
        return .invalid(reason: "bad signature")
    }
}

/// Live-room backend: unknown room 404 refused; guests may not chat; records calls.
final class TestLiveRoomBackend: LiveRoomBackend {
    struct Call: Sendable, Hashable {
        var destination: String
        var body: String
        var userId: String?
    }
    let sends = Mutex<[Call]>([])
    let closed = Mutex<[HubConnectionID]>([])

    func canSubscribe(destination: String, connection: HubConnectionContext) async -> SubscribeDecision {
        destination.hasPrefix("/topic/live/404/") ? .refuse(code: "unknown-room", message: "room 404 does not exist") : .allow
    }

    func handleSend(destination: String, body: ByteBuffer, contentType: String?, connection: HubConnectionContext) async -> SendOutcome {
        self.sends.withLock { $0.append(Call(destination: destination, body: String(buffer: body), userId: connection.identity?.userId)) }
        if destination.hasSuffix("/chat") && connection.identity == nil {
            return .refused(code: "unauthorized", message: "guests cannot chat")
        }
        return .accepted
    }

    func connectionClosed(_ connection: HubConnectionContext) async {
        self.closed.withLock { $0.append(connection.connectionId) }
    }
}

/// Bell backend: `notification:read` needs a string `notificationId`.
final class TestBellBackend: BellBackend {
    let events = Mutex<[String]>([])
    let connected = Mutex<[String]>([])
    let disconnected = Mutex<[String]>([])

    func handleEvent(name: String, payload: JSONValue, connection: HubConnectionContext, identity: HubIdentity) async -> BellEventResult {
        self.events.withLock { $0.append(name) }
        switch name {
        case "notification:read":
            guard let id = payload["notificationId"]?.stringValue else {
                return .error(code: "bad_payload", message: "notificationId required")
            }
            return .ack(["ok": true, "notificationId": .string(id)])
        default:
            return .ack(["ok": true])
        }
    }

    func userConnected(_ connection: HubConnectionContext, identity: HubIdentity, isFirstConnectionOfUser: Bool) async {
        self.connected.withLock { $0.append("\(identity.userId):\(isFirstConnectionOfUser)") }
    }

    func userDisconnected(_ connection: HubConnectionContext, identity: HubIdentity, wasLastConnectionOfUser: Bool) async {
        self.disconnected.withLock { $0.append("\(identity.userId):\(wasLastConnectionOfUser)") }
    }
}

/// Polls `condition` until true or 10 s have passed (a loaded machine can stall the test process's
/// tasks for seconds; a passing test returns as soon as the condition holds).
/// Waits up to 30 s (a loaded 2-core machine, with builds beside the tests, has needed more than 10).
func eventually(_ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

let testLogger = Logger(label: "hub-tests")
