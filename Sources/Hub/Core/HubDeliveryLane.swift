import CoreMetrics
import Synchronization

/// A connection's delivery lane, once its transport attached one: the server's WebSocket transport
/// has one lane per NIO event loop (`LoopDrainBatch`), and the connection's `ChannelDrain` is its
/// member there. Both types are concrete: the hub groups members per lane (`Hub.publish`) and the
/// lane writes to them, with no type erasure in between.
///
/// Why lanes: a chat into a 10k-viewer room used to be 10k enqueues on the publishing thread, each
/// a lock, a retain of the shared frame and a wake-up check, racing the event loops that write
/// those very frames for the same cache lines. With lanes the publisher hands each lane the frame
/// and the lane's members once, and the lane's thread enqueues or writes each one itself.
///
/// Order: once a connection is attached, everything for it — topic messages, replies, user
/// pushes, the close — goes through its lane, so it reaches the socket in the order it was handed
/// over (a lane runs its hand-overs first in, first out). Frames handed over after a close was
/// requested are refused (`HubConnection.isClosing` turns true at once), as with the queue alone.
/// Connections of other transports are not attached: the hub hands them frames one by one.
struct HubLaneAttachment: Sendable {
    let lane: LoopDrainBatch
    let member: ChannelDrain
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
