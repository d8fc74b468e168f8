import Foundation
import Hummingbird

/// Moderation under `/v1/notifications/live` (issue 22 §3; README "Moderation"): moderators
/// (owner only), deleting lines, mutes, bans, chat settings, held lines and the audit log (owner
/// and moderators; a token with the `ADMIN` role may do what the owner does). Without a token: 401;
/// signed in without the right: 403; bad input: 400.
struct ModerationController {
    let live: LiveRoomService
    let moderation: ModerationService
    let auth: Authenticator
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<LiveHubRequestContext>) {
        group.get("rooms/:id/moderators", use: moderators)
        group.post("rooms/:id/moderators", use: addModerator)
        group.delete("rooms/:id/moderators", use: removeModeratorByBody)
        group.delete("rooms/:id/moderators/:userId", use: removeModerator)
        group.delete("rooms/:id/chats/:chatId", use: deleteChat)
        group.get("rooms/:id/mutes", use: mutes)
        group.post("rooms/:id/mutes", use: mute)
        group.delete("rooms/:id/mutes/:userId", use: unmute)
        group.get("rooms/:id/bans", use: bans)
        group.post("rooms/:id/bans", use: ban)
        group.delete("rooms/:id/bans/:userId", use: unban)
        group.get("rooms/:id/chat-settings", use: settings)
        group.put("rooms/:id/chat-settings", use: saveSettings)
        group.get("rooms/:id/held-chats", use: heldChats)
        group.post("rooms/:id/held-chats/:heldId/approve", use: approveHeld)
        group.delete("rooms/:id/held-chats/:heldId", use: dropHeld)
        group.get("rooms/:id/moderation-log", use: log)
    }

    struct UserBody: Decodable { var userId: FlexibleID }
    struct MuteBody: Decodable {
        var userId: FlexibleID
        var minutes: Int
    }
    /// Every field optional: what is left out keeps its default (off).
    struct SettingsBody: Decodable {
        var slowModeSeconds: Int?
        var blockedWords: [String]?
        var blockedWordAction: String?
        var linksOnlyFromModerators: Bool?
    }

    struct ModeratorsView: Encodable { var moderators: [String] }
    struct BansView: Encodable { var bans: [String] }
    struct DeletedView: Encodable { var id: String; var deleted = true }

    private func roomId(_ context: LiveHubRequestContext) throws -> String { try context.parameters.require("id") }

    private static func noContent() -> Response { Response(status: .noContent) }

    @Sendable func moderators(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        return try JSONBody.response(ModeratorsView(moderators: try await moderation.moderators(roomId: try roomId(context), by: user)))
    }

    @Sendable func addModerator(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let body = try await JSONBody.decode(UserBody.self, from: request, limit: maxBodyBytes)
        let list = try await moderation.addModerator(roomId: try roomId(context), userId: body.userId.value, by: user)
        return try JSONBody.response(ModeratorsView(moderators: list), status: .created)
    }

    @Sendable func removeModeratorByBody(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let body = try await JSONBody.decode(UserBody.self, from: request, limit: maxBodyBytes)
        let list = try await moderation.removeModerator(roomId: try roomId(context), userId: body.userId.value, by: user)
        return try JSONBody.response(ModeratorsView(moderators: list))
    }

    @Sendable func removeModerator(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let list = try await moderation.removeModerator(roomId: try roomId(context), userId: try context.parameters.require("userId"), by: user)
        return try JSONBody.response(ModeratorsView(moderators: list))
    }

    @Sendable func deleteChat(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let chatId = try context.parameters.require("chatId")
        try await live.deleteChat(roomId: try roomId(context), chatId: chatId, by: user)
        return try JSONBody.response(DeletedView(id: chatId))
    }

    @Sendable func mutes(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        return try JSONBody.response(try await moderation.mutes(roomId: try roomId(context), by: user))
    }

    @Sendable func mute(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let body = try await JSONBody.decode(MuteBody.self, from: request, limit: maxBodyBytes)
        let mute = try await moderation.mute(roomId: try roomId(context), userId: body.userId.value, minutes: body.minutes, by: user)
        return try JSONBody.response(mute, status: .created)
    }

    @Sendable func unmute(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        try await moderation.unmute(roomId: try roomId(context), userId: try context.parameters.require("userId"), by: user)
        return Self.noContent()
    }

    @Sendable func bans(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        return try JSONBody.response(BansView(bans: try await moderation.bans(roomId: try roomId(context), by: user)))
    }

    @Sendable func ban(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let body = try await JSONBody.decode(UserBody.self, from: request, limit: maxBodyBytes)
        let bans = try await moderation.ban(roomId: try roomId(context), userId: body.userId.value, by: user)
        return try JSONBody.response(BansView(bans: bans), status: .created)
    }

    @Sendable func unban(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        try await moderation.unban(roomId: try roomId(context), userId: try context.parameters.require("userId"), by: user)
        return Self.noContent()
    }

    @Sendable func settings(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        return try JSONBody.response(try await moderation.settings(roomId: try roomId(context), by: user))
    }

    @Sendable func saveSettings(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let body = try await JSONBody.decode(SettingsBody.self, from: request, limit: maxBodyBytes)
        var settings = ChatSettings()
        settings.slowModeSeconds = body.slowModeSeconds ?? 0
        settings.blockedWords = body.blockedWords ?? []
        if let action = body.blockedWordAction {
            guard let parsed = ChatSettings.BlockedWordAction(rawValue: action) else {
                throw APIError.badRequest("blockedWordAction must be \"hold\" or \"drop\"")
            }
            settings.blockedWordAction = parsed
        }
        settings.linksOnlyFromModerators = body.linksOnlyFromModerators ?? false
        return try JSONBody.response(try await moderation.saveSettings(roomId: try roomId(context), settings, by: user))
    }

    @Sendable func heldChats(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        return try JSONBody.response(try await moderation.heldChats(roomId: try roomId(context), by: user))
    }

    @Sendable func approveHeld(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let line = try await live.approveHeld(roomId: try roomId(context), heldId: try context.parameters.require("heldId"), by: user)
        return try JSONBody.response(line, status: .created)
    }

    @Sendable func dropHeld(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        try await moderation.dropHeld(roomId: try roomId(context), heldId: try context.parameters.require("heldId"), by: user)
        return Self.noContent()
    }

    @Sendable func log(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.requireUser(request, context: context)
        let query = request.uri.queryParameters
        let limit = try RoomController.integer(query["limit"].map(String.init), name: "limit", default: 50, range: 1...200)
        var before: Int64?
        if let raw = query["before"].map(String.init), !raw.isEmpty {
            guard let parsed = Int64(raw), parsed > 0 else { throw APIError.badRequest("before must be the id of a log entry (a positive integer)") }
            before = parsed
        }
        return try JSONBody.response(try await moderation.log(roomId: try roomId(context), limit: limit, beforeId: before, by: user))
    }
}
