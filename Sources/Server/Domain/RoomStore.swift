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

extension RoomStore {
    /// The room, or `DomainError.notFound`.
    func existingRoom(id: String) async throws -> RoomRecord {
        guard let room = try await self.room(id: id) else { throw DomainError.notFound("no room with id \(id)") }
        return room
    }

    /// The room, checked to belong to `user` (`DomainError.forbidden` otherwise).
    func ownedRoom(id: String, by user: AuthUser) async throws -> RoomRecord {
        let room = try await existingRoom(id: id)
        guard room.shopOwnerId == user.userId else { throw DomainError.forbidden("only the room's owner may do this") }
        return room
    }
}
