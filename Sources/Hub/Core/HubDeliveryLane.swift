import CoreMetrics
import Synchronization

/// A transport's ordered hand-over point for the connections it serves from one thread — the
/// server's is one per NIO event loop (`LoopDrainBatch`).
///
/// Why: a chat into a 10k-viewer room used to be 10k enqueues on the publishing thread, each a
/// lock, a retain of the shared frame and a wake-up check, racing the event loops that write those
/// very frames for the same cache lines. With lanes the publisher hands each lane the frame and
/// the lane's members once (`Hub.publish` keeps the members grouped per topic), and the lane's
/// thread enqueues or writes each one itself.
///
/// Order: once a connection is attached, everything for it — topic messages, replies, user
/// pushes, the close — goes through its lane, so it reaches the socket in the order it was handed
/// over (a lane runs its hand-overs first in, first out). Frames handed over after a close was
/// requested are refused (`HubConnection.isClosing` turns true at once), as with the queue alone.
protocol HubDeliveryLane: AnyObject, Sendable {
    /// Delivers `frame` to each of `members` (the transport's per-connection objects it attached,
    /// all of this lane), after everything handed to this lane before. Never waits.
    func deliver(_ frame: HubOutboundFrame, to members: [AnyObject])
    /// Closes `member`'s queue with `reason` after everything handed to this lane before.
    func close(_ member: AnyObject, reason: HubCloseReason)
}

/// A connection's lane and the transport's object for it there.
struct HubLaneAttachment: Sendable {
    let lane: any HubDeliveryLane
    /// Only ever read back by `lane` (its own type); the hub just carries it.
    nonisolated(unsafe) let member: AnyObject
}

/// Delivery counters a connection's queue reports into wherever its frames are enqueued (the
/// publishing thread, or a lane's).
final class HubDeliveryAccounting: Sendable {
    private let metrics: HubMetrics
    private let slowDrops = Atomic<Int>(0)

    init(metrics: HubMetrics) { self.metrics = metrics }

    /// Connections dropped as slow consumers so far.
    var slowDropCount: Int { self.slowDrops.load(ordering: .relaxed) }

    func slowDrop(_ protocolName: String) {
        self.metrics.slowDrop(protocolName)
        self.slowDrops.add(1, ordering: .relaxed)
    }
}
