import Foundation
import Logging

/// `data` of an `unfeature` event (contract §2).
public struct TimelineUnfeature: Codable, Sendable, Equatable {
    public var liveProductId: String
    public var productId: String
}

/// `data` of an `order` event, the toast: as much as the order event had (contract §2).
public struct TimelineOrder: Codable, Sendable, Equatable {
    public var orderId: String?
    public var productId: String?
    public var productName: String?
    public var username: String?
    public var amount: Double
    public var quantity: Int?
}

/// Writes the replay timeline's events (issue 21 §3 "One timeline"): pins, products featured and
/// unfeatured, order toasts and status changes, each after the change is persisted (the domain's
/// event sinks call it: `RealtimeWiring`). A featured product opens a chapter of the recording
/// (`ReplayRecordings.startChapter`, id `f<seq>` of its event); the next feature, its removal or the
/// room's end closes it. A failed write is logged and never fails the request.
///
/// Memory: the featured product per room as last recorded (loaded from the store when first
/// needed, dropped when the room ends, at most `maxRoomsKept` rooms) and one task chain per room
/// with changes in flight, so that two product changes of one room are compared in order. In
/// cluster mode (`keepsFeaturedInMemory` false) another node may feature a product of the same
/// room, so the featured product is read from the store at every change instead.
public actor TimelineRecorder {
    public static let maxRoomsKept = 10_000

    struct Featured: Sendable, Equatable {
        var liveProductId: String
        var productId: String
        var chapterId: String
    }

    let store: any TimelineStore
    let recordings: (any ReplayRecordings)?
    let logger: Logger
    let nowMs: @Sendable () -> Int64
    let keepsFeaturedInMemory: Bool
    /// Room → its featured product as last recorded (`.some(nil)`: none).
    private var featured: [String: Featured?] = [:]
    private var tails: [String: Task<Void, Never>] = [:]

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public init(
        store: any TimelineStore, recordings: (any ReplayRecordings)?, logger: Logger, keepsFeaturedInMemory: Bool = true,
        nowMs: @escaping @Sendable () -> Int64 = { WallClock.nowMs }
    ) {
        self.keepsFeaturedInMemory = keepsFeaturedInMemory
        self.store = store
        self.recordings = recordings
        self.logger = logger
        self.nowMs = nowMs
    }

    /// Rooms whose featured product is kept in memory (tests).
    var keptRooms: Int { featured.count }

    // MARK: What the sinks call

    /// The product list of a room changed (added, featured, removed, sold): a `feature` and/or an
    /// `unfeature` when its featured product is not the one last recorded.
    public func productsChanged(roomId: String, products: [LiveProductView]) async {
        await serially(roomId) { await self.recordFeatured(roomId: roomId, products: products) }
    }

    /// A chat line was pinned.
    public func chatPinned(_ chat: LiveChatView) async {
        _ = await write(roomId: chat.liveRoomId, kind: TimelineKind.pin, chat)
    }

    /// An order was applied (the toast).
    public func orderApplied(_ event: LiveOrderEvent) async {
        let order = TimelineOrder(
            orderId: event.orderId?.value, productId: event.productId?.value, productName: event.productName,
            username: event.username, amount: event.amount, quantity: nil)
        _ = await write(roomId: event.roomId, kind: TimelineKind.order, order)
    }

    /// A status was announced; when the room ended, its open chapter closes and its memory goes.
    public func statusChanged(_ status: RoomStatusMessage) async {
        _ = await write(roomId: status.roomId, kind: TimelineKind.status, status)
        guard status.status == .ended else { return }
        await serially(status.roomId) { await self.closeRoom(status.roomId) }
    }

    // MARK: Inside

    private func recordFeatured(roomId: String, products: [LiveProductView]) async {
        let current = products.first(where: \.isFeatured)
        let previous: Featured?
        do {
            previous = try await lastFeatured(roomId)
        } catch {
            logger.error("timeline: the featured product could not be read", metadata: ["room": "\(roomId)", "error": "\(error)"])
            return
        }
        guard previous?.liveProductId != current?.id else { return }
        let now = nowMs()
        var complete = true
        if let previous {
            complete = await write(roomId: roomId, kind: TimelineKind.unfeature, TimelineUnfeature(
                liveProductId: previous.liveProductId, productId: previous.productId), at: now) != nil
            recordings?.endChapter(roomId: roomId, id: previous.chapterId, atMs: now)
        }
        var next: Featured?
        if let current {
            if let saved = await write(roomId: roomId, kind: TimelineKind.feature, current, at: now), let seq = saved.seq {
                let chapterId = "f\(seq)"
                recordings?.startChapter(roomId: roomId, id: chapterId, atMs: now, productId: current.productId, productName: current.productName)
                next = Featured(liveProductId: current.id, productId: current.productId, chapterId: chapterId)
            } else {
                complete = false
            }
        }
        // After a failed write the store is the truth: read it again next time.
        if complete { keep(roomId, next) } else { featured.removeValue(forKey: roomId) }
    }

    private func closeRoom(_ roomId: String) async {
        if let open = try? await lastFeatured(roomId) {
            recordings?.endChapter(roomId: roomId, id: open.chapterId, atMs: nowMs())
        }
        featured.removeValue(forKey: roomId)
    }

    /// The featured product as last recorded: from memory, else the room's last feature/unfeature event.
    private func lastFeatured(_ roomId: String) async throws -> Featured? {
        if keepsFeaturedInMemory, let known = featured[roomId] { return known }
        let last = try await store.lastEvent(roomId: roomId, kinds: [TimelineKind.feature, TimelineKind.unfeature])
        var loaded: Featured?
        if let last, last.kind == TimelineKind.feature, let seq = last.seq,
            let product = try? JSONDecoder().decode(LiveProductView.self, from: Data(last.payload.utf8)) {
            loaded = Featured(liveProductId: product.id, productId: product.productId, chapterId: "f\(seq)")
        }
        keep(roomId, loaded)
        return loaded
    }

    private func keep(_ roomId: String, _ value: Featured?) {
        guard keepsFeaturedInMemory else { return }
        if featured[roomId] == nil, featured.count >= Self.maxRoomsKept, let any = featured.keys.first {
            featured.removeValue(forKey: any)
        }
        featured[roomId] = .some(value)
    }

    /// Runs `body` after the room's earlier changes (an actor method may interleave at each `await`).
    private func serially(_ roomId: String, _ body: @escaping @Sendable () async -> Void) async {
        let previous = tails[roomId]
        let task = Task {
            await previous?.value
            await body()
        }
        tails[roomId] = task
        await task.value
        if tails[roomId] == task { tails.removeValue(forKey: roomId) }
    }

    /// Inserts one event (nil when it could not be written: logged).
    private func write(roomId: String, kind: String, _ data: some Encodable, at: Int64? = nil) async -> TimelineEventRecord? {
        do {
            let payload = String(decoding: try Self.encoder.encode(data), as: UTF8.self)
            return try await store.insert(TimelineEventRecord(liveRoomId: roomId, atMs: at ?? nowMs(), kind: kind, payload: payload))
        } catch {
            logger.error("timeline: an event could not be written", metadata: ["room": "\(roomId)", "kind": "\(kind)", "error": "\(error)"])
            return nil
        }
    }
}
