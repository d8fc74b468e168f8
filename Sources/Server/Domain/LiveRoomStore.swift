import Foundation

/// Storage the live-room features need (products, chat, orders), declared by the domain.
public protocol LiveRoomStore: Sendable {
    func products(roomId: String) async throws -> [LiveProductRecord]
    /// Inserts `product` (display order defaulting to after the last one); throws
    /// `DomainError.conflict` when the room already offers that productId.
    func addProduct(_ product: LiveProductRecord, defaultOrder: Bool) async throws -> [LiveProductRecord]
    /// Makes `liveProductId` the only featured product of the room; nil when it is not in the room.
    func feature(liveProductId: String, roomId: String) async throws -> [LiveProductRecord]?
    /// Removes the product; nil when it is not in the room.
    func removeProduct(liveProductId: String, roomId: String) async throws -> [LiveProductRecord]?
    /// Inserts a batch of chat lines in one transaction (group commit) and returns them with `seq`.
    func insertChats(_ chats: [LiveChatRecord]) async throws -> [LiveChatRecord]
    /// Newest `limit` chats of a room older than `beforeSeq` (when given), returned oldest first.
    func chats(roomId: String, limit: Int, beforeSeq: Int64?) async throws -> [LiveChatRecord]
    func chat(id: String) async throws -> LiveChatRecord?
    /// The chat topic's log (issue 22 recovery): the room's rows of every type with `seq` above
    /// `afterSeq`, oldest first, at most `limit`.
    func chatLog(roomId: String, afterSeq: Int64, limit: Int) async throws -> [LiveChatRecord]
    /// A row of any type by id (a `PINNED` event's line, whatever it became).
    func chatRow(id: String) async throws -> LiveChatRecord?
    /// Pins `chatId` (and unpins any other pinned line of the room); nil when not in the room.
    func pin(chatId: String, roomId: String) async throws -> LiveChatRecord?
    /// Applies an order once: records the id, bumps room totals and the product's `soldCount`,
    /// stores the ORDER chat line — one transaction. Returns nil when the id was seen before.
    func applyOrder(_ order: ProcessedOrderRecord, productId: String?, chat: LiveChatRecord) async throws -> AppliedOrder?
}

public struct AppliedOrder: Sendable {
    public var room: RoomRecord
    public var chat: LiveChatRecord
    public var products: [LiveProductRecord]
}
