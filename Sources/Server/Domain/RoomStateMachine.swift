/// Room lifecycle (DESIGN.md "Room state machine"):
///
/// `PENDING ──start──▶ WAITING_STREAM ──publish──▶ LIVE ──owner end / grace expired──▶ ENDED`
///
/// Publishing is also accepted in `PENDING` (OBS may go live before the owner presses start) and in
/// `LIVE` (a reconnect within the grace period, or a takeover). The owner may end a room in any
/// state but `ENDED`, which is terminal. This type is pure: it decides, the `RoomService` persists
/// first and broadcasts after.
public enum RoomStatus: String, Codable, Sendable, CaseIterable {
    case pending = "PENDING"
    case waitingStream = "WAITING_STREAM"
    case live = "LIVE"
    case ended = "ENDED"
}

public enum RoomEvent: String, Sendable, CaseIterable {
    /// The owner pressed start (`PUT /rooms/{id}/start`).
    case start
    /// A publisher with the room's key was accepted (first publish, reconnect or takeover).
    case publish
    /// The owner ended the room (`PUT /rooms/{id}/end`).
    case end
    /// The publisher stayed away longer than the reconnect grace.
    case graceExpired
}

public struct RoomTransitionError: Error, Equatable, Sendable, CustomStringConvertible {
    public var from: RoomStatus
    public var event: RoomEvent
    public var description: String {
        switch (from, event) {
        case (.ended, _): return "the room has ended; an ended room cannot \(event.verb)"
        case (.waitingStream, .start): return "the room is already started and waiting for the stream"
        case (.live, .start): return "the room is already live"
        default: return "a room in status \(from.rawValue) cannot \(event.verb)"
        }
    }
}

extension RoomEvent {
    var verb: String {
        switch self {
        case .start: return "be started"
        case .publish: return "accept a publisher"
        case .end: return "be ended"
        case .graceExpired: return "expire its reconnect grace"
        }
    }
}

public enum RoomStateMachine {
    /// The status after `event`, or a `RoomTransitionError` when the transition is refused.
    public static func next(from status: RoomStatus, on event: RoomEvent) throws(RoomTransitionError) -> RoomStatus {
        switch (status, event) {
        case (.pending, .start): return .waitingStream
        case (.pending, .publish), (.waitingStream, .publish), (.live, .publish): return .live
        case (.pending, .end), (.waitingStream, .end), (.live, .end): return .ended
        case (.live, .graceExpired): return .ended
        default: throw RoomTransitionError(from: status, event: event)
        }
    }
}
