/// STOMP destinations of the live-room hub (DESIGN.md "Live room hub").
enum LiveDestination: Equatable {
    /// `/topic/live/{roomId}/{chat|product|status|viewers|deal|reactions}` — server → client.
    case topic(roomId: String, LiveTopic)
    /// `/app/live/{roomId}/{chat|join|leave|react}` — client → server.
    case app(roomId: String, LiveAction)

    enum LiveTopic: String { case chat, product, status, viewers, deal, reactions }
    enum LiveAction: String { case chat, join, leave, react }

    init?(_ destination: String) {
        let parts = destination.split(separator: "/", omittingEmptySubsequences: false)
        // "", "topic"|"app", "live", roomId, name
        guard parts.count == 5, parts[0].isEmpty, parts[2] == "live", Self.isRoomId(parts[3]) else { return nil }
        let roomId = String(parts[3])
        switch parts[1] {
        case "topic":
            guard let topic = LiveTopic(rawValue: String(parts[4])) else { return nil }
            self = .topic(roomId: roomId, topic)
        case "app":
            guard let action = LiveAction(rawValue: String(parts[4])) else { return nil }
            self = .app(roomId: roomId, action)
        default:
            return nil
        }
    }

    static func topic(_ roomId: String, _ topic: LiveTopic) -> String { "/topic/live/\(roomId)/\(topic.rawValue)" }

    static func isRoomId(_ text: Substring) -> Bool {
        !text.isEmpty && text.count <= 128 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}
