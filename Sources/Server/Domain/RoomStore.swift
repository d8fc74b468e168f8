import Foundation

/// What the room domain needs from storage (DESIGN.md: storage sits behind protocols declared by
/// the code that uses them). `SQLiteRoomStore` is the embedded implementation.
public protocol RoomStore: Sendable {
    func insert(_ room: RoomRecord) async throws
    func room(id: String) async throws -> RoomRecord?
    func room(streamKey: String) async throws -> RoomRecord?
    /// Rooms newest first; `status` nil = all.
    func rooms(status: RoomStatus?, offset: Int, limit: Int) async throws -> (rooms: [RoomRecord], total: Int)
    func rooms(ownerId: String) async throws -> [RoomRecord]
    func rooms(status: RoomStatus) async throws -> [RoomRecord]
    func countByStatus() async throws -> [RoomStatus: Int]
    /// Reads the room, lets `change` modify it (or throw to refuse), writes it back — one transaction.
    /// Returns nil when the room does not exist.
    func update(id: String, _ change: @Sendable (inout RoomRecord) throws -> Void) async throws -> RoomRecord?
}
