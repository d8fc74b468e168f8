public import NIOCore

/// Where a message stands in its topic's stream (Centrifugo "History and recovery": a publication's
/// `offset`, increasing per channel, and the stream's `epoch`, which changes when the history it
/// counts in is lost). A client remembers the last position it saw and re-subscribes with it.
public struct HubStreamPosition: Sendable, Hashable {
    public var offset: UInt64
    public var epoch: String

    public init(offset: UInt64, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }
}

/// Limits of the per-topic history (every one an outsider can grow is bounded).
public struct HubHistoryConfiguration: Sendable {
    /// Messages kept per topic (`LIVEHUB_HUB_HISTORY_SIZE`, default 100); 0 turns the history off
    /// (offsets are still given; recovery then answers `recovered:false` for any gap).
    public var maxEntriesPerTopic: Int
    /// How long a message is kept (`LIVEHUB_HUB_HISTORY_TTL_SECONDS`, default 300 s).
    public var ttl: Duration
    /// Topics with a history at once (`LIVEHUB_HUB_HISTORY_MAX_TOPICS`, default 10 000); beyond it
    /// the topics published longest ago lose theirs.
    public var maxTopics: Int
    /// Payload bytes kept over all topics (`LIVEHUB_HUB_HISTORY_MAX_BYTES`, default 64 MiB).
    public var maxBytes: Int
    /// Messages a recovering subscription may buffer while its missed ones are read (the rest
    /// would be lost, so the recovery then ends with `recovered:false`). Default 1000.
    public var maxBufferedWhileRecovering: Int
    /// The stream's epoch: random per process by default (a restart loses the history, so its
    /// positions are not comparable with the new ones); a cluster gives one shared by every node.
    public var epoch: String

    public init(
        maxEntriesPerTopic: Int = 100, ttl: Duration = .seconds(300), maxTopics: Int = 10_000, maxBytes: Int = 64 << 20,
        maxBufferedWhileRecovering: Int = 1000, epoch: String = HubHistoryConfiguration.randomEpoch()
    ) {
        self.maxEntriesPerTopic = max(0, maxEntriesPerTopic)
        self.ttl = ttl
        self.maxTopics = max(1, maxTopics)
        self.maxBytes = max(0, maxBytes)
        self.maxBufferedWhileRecovering = max(1, maxBufferedWhileRecovering)
        self.epoch = epoch
    }

    /// 16 hex digits.
    public static func randomEpoch() -> String {
        let n = UInt64.random(in: 1...UInt64.max)
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// The history of every topic: a bounded ring per topic of what `Hub.publish` sent, with offsets,
/// plus the offset up to which each ring is complete (`floor`: every message of the topic with an
/// offset above it that this hub published is in the ring). A value the `Hub` keeps under its lock.
///
/// Offsets come from one of two domains:
/// - **implicit**: the hub's own counter (`Hub.publish` without an offset). One counter for all
///   topics, so a topic's offsets increase but skip;
/// - **explicit**: given by the publisher (the chat topic's `live_chat.seq`, a cluster broker's
///   outbox id), with the floor the publisher guarantees (`HubPublishOffset.completeAfter`).
/// A ring dropped to stay within the limits raises its domain's `evictedFloor` to its last offset:
/// a ring created later for that topic starts complete only above it, so a dropped ring never
/// makes a recovery claim messages it no longer has.
struct HubHistory {
    struct Entry {
        var offset: UInt64
        var payload: ByteBuffer
        var contentType: String?
        var at: Duration
    }

    struct Ring {
        var entries: [Entry] = []
        /// Index of the oldest entry in `entries` (entries before it were evicted; compacted lazily).
        var head = 0
        var floor: UInt64
        var last: UInt64
        var bytes = 0
        var explicit: Bool
        var lastPublishAt: Duration

        var live: ArraySlice<Entry> { entries[head...] }
        var count: Int { entries.count - head }

        mutating func dropFirst() -> Entry {
            let e = entries[head]
            head += 1
            floor = e.offset
            bytes -= e.payload.readableBytes
            if head > 64 && head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return e
        }
    }

    /// What the ring knows of a position: the messages after it, or that it cannot say.
    enum Lookup: Equatable {
        case missed([HubStreamPosition.Offset], top: UInt64)
        case incomplete(top: UInt64?)
    }

    let configuration: HubHistoryConfiguration
    private(set) var rings: [String: Ring] = [:]
    private(set) var totalBytes = 0
    /// The hub's counter (implicit offsets).
    private(set) var counter: UInt64 = 0
    private var implicitEvictedFloor: UInt64 = 0
    private var explicitEvictedFloor: UInt64 = 0

    private(set) var epoch: String

    init(configuration: HubHistoryConfiguration) {
        self.configuration = configuration
        self.epoch = configuration.epoch
    }

    /// Takes another epoch (a cluster's, shared by every node): what was kept is forgotten.
    mutating func adopt(epoch: String) {
        guard epoch != self.epoch else { return }
        self = HubHistory(configuration: configuration)
        self.epoch = epoch
    }

    /// Takes the next implicit offset.
    mutating func nextOffset() -> UInt64 {
        counter += 1
        return counter
    }

    /// Records a published message. `explicitFloor` is nil for an implicit offset.
    mutating func record(topic: String, offset: UInt64, explicitFloor: UInt64?, payload: ByteBuffer, contentType: String?, now: Duration) {
        let explicit = explicitFloor != nil
        if var ring = rings.removeValue(forKey: topic) {
            if offset <= ring.last && ring.explicit == explicit { rings[topic] = ring; return }  // a replay: keep the first
            if ring.explicit != explicit {
                // A topic whose publisher changed domain: its old offsets mean nothing any more.
                totalBytes -= ring.bytes
                ring = newRing(offset: offset, explicitFloor: explicitFloor, now: now)
            }
            ring.last = offset
            ring.lastPublishAt = now
            append(&ring, offset: offset, payload: payload, contentType: contentType, now: now)
            rings[topic] = ring
        } else {
            var ring = newRing(offset: offset, explicitFloor: explicitFloor, now: now)
            append(&ring, offset: offset, payload: payload, contentType: contentType, now: now)
            rings[topic] = ring
            if rings.count > configuration.maxTopics { evictOldestTopics(keeping: topic) }
        }
        if totalBytes > configuration.maxBytes { evictOldestTopics(keeping: topic) }
    }

    private func newRing(offset: UInt64, explicitFloor: UInt64?, now: Duration) -> Ring {
        let floor: UInt64
        if let explicitFloor {
            floor = max(explicitFloor, explicitEvictedFloor)
        } else {
            floor = implicitEvictedFloor
        }
        return Ring(floor: min(floor, offset &- 1), last: offset, explicit: explicitFloor != nil, lastPublishAt: now)
    }

    private mutating func append(_ ring: inout Ring, offset: UInt64, payload: ByteBuffer, contentType: String?, now: Duration) {
        guard configuration.maxEntriesPerTopic > 0, payload.readableBytes <= configuration.maxBytes else {
            ring.floor = offset
            return
        }
        ring.entries.append(Entry(offset: offset, payload: payload, contentType: contentType, at: now))
        ring.bytes += payload.readableBytes
        totalBytes += payload.readableBytes
        while ring.count > configuration.maxEntriesPerTopic {
            totalBytes -= ring.dropFirst().payload.readableBytes
        }
        expire(&ring, now: now)
    }

    private mutating func expire(_ ring: inout Ring, now: Duration) {
        while ring.count > 0, now - ring.entries[ring.head].at > configuration.ttl {
            totalBytes -= ring.dropFirst().payload.readableBytes
        }
    }

    /// Drops whole rings, least recently published first, until within `maxTopics` and
    /// `maxBytes`, and at least a tenth of the topics, so that a hub at a limit sorts its topics
    /// once per tenth of them rather than on every publish.
    private mutating func evictOldestTopics(keeping topic: String) {
        let order = rings.filter { $0.key != topic }.sorted { $0.value.lastPublishAt < $1.value.lastPublishAt }.map(\.key)
        var index = 0
        let minimum = max(1, rings.count / 10)
        var dropped = 0
        while index < order.count, rings.count > configuration.maxTopics || totalBytes > configuration.maxBytes || dropped < minimum {
            if let ring = rings.removeValue(forKey: order[index]) {
                totalBytes -= ring.bytes
                if ring.explicit {
                    explicitEvictedFloor = max(explicitEvictedFloor, ring.last)
                } else {
                    implicitEvictedFloor = max(implicitEvictedFloor, ring.last)
                }
                dropped += 1
            }
            index += 1
        }
        if totalBytes > configuration.maxBytes, var ring = rings.removeValue(forKey: topic) {
            while ring.count > 0, totalBytes > configuration.maxBytes { totalBytes -= ring.dropFirst().payload.readableBytes }
            rings[topic] = ring
        }
    }

    /// The messages of `topic` after `position`, when this history holds all of them.
    mutating func lookup(topic: String, after position: HubStreamPosition, now: Duration) -> Lookup {
        guard position.epoch == epoch else { return .incomplete(top: rings[topic]?.last) }
        guard var ring = rings.removeValue(forKey: topic) else {
            // No ring: nothing was published on it since the position, unless a ring was dropped
            // after such a publish (then the domain's evicted floor passed the position).
            // Implicit domain only: an explicit publisher's floor is unknown without a ring.
            if position.offset >= implicitEvictedFloor && position.offset <= counter { return .missed([], top: position.offset) }
            return .incomplete(top: nil)
        }
        expire(&ring, now: now)
        rings[topic] = ring
        if position.offset >= ring.last { return .missed([], top: ring.last) }
        guard position.offset >= ring.floor else { return .incomplete(top: ring.last) }
        let missed = ring.live.filter { $0.offset > position.offset }.map {
            HubStreamPosition.Offset(offset: $0.offset, payload: $0.payload, contentType: $0.contentType)
        }
        return .missed(missed, top: ring.last)
    }

    /// The last offset of `topic` this hub published (nil: none kept).
    func top(topic: String) -> UInt64? { rings[topic]?.last }
}

extension HubStreamPosition {
    /// One message of a topic's log (history ring or the publisher's own log, e.g. the database).
    public struct Offset: Sendable, Equatable {
        public var offset: UInt64
        public var payload: ByteBuffer
        public var contentType: String?

        public init(offset: UInt64, payload: ByteBuffer, contentType: String? = "application/json") {
            self.offset = offset
            self.payload = payload
            self.contentType = contentType
        }
    }
}

/// An offset the publisher gives (`Hub.publish(…, offset:)`): the chat topic's `live_chat.seq`, a
/// cluster broker's outbox id. `completeAfter`: every message of this topic with an offset above it
/// reaches this hub, in order (the broker's starting cursor; 0 when it never skips).
public struct HubPublishOffset: Sendable, Hashable {
    public var offset: UInt64
    public var completeAfter: UInt64

    public init(_ offset: UInt64, completeAfter: UInt64 = 0) {
        self.offset = offset
        self.completeAfter = completeAfter
    }
}

/// A topic's own durable log, when it has one (the chat topic: `live_chat` rows by `seq`):
/// recovery reads what was missed from it instead of the history ring.
public protocol HubTopicLog: Sendable {
    /// The messages with an offset above `offset`, in offset order, when there are at most `limit`.
    func messages(after offset: UInt64, limit: Int) async -> HubTopicLogRead
}

/// What a `HubTopicLog` read found; anything but `.messages` makes recovery answer `recovered:false`.
public enum HubTopicLogRead: Sendable {
    /// Every message after the offset (at most the limit), in offset order.
    case messages([HubStreamPosition.Offset])
    /// More than the limit were missed.
    case tooMany
    /// The log could not be read (e.g. the database failed).
    case unavailable
}
