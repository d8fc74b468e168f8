import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let base = "/v1/notifications/live"

/// Issue 22 §3: the pure rules of moderated chat.
@Suite struct ChatPolicyTests {
    @Test func linksAreFoundInTheirUsualShapesAndNumbersOrAbbreviationsAreNot() {
        for text in [
            "see http://x.io", "HTTPS://SHOP.EXAMPLE/deal", "go to www.example", "buy at shop.example.com now", "bit.ly/abc",
            "(cheap.store)", "mail me at deals.shop:8080/x", "sub-domain.my-shop.co.uk",
        ] {
            #expect(ChatPolicy.containsLink(text), "\(text)")
        }
        for text in ["price is 3.50 today", "e.g. this one", "hello world", "wow... nice", "version 1.2.3", "", "end. Next", "a.b"] {
            #expect(!ChatPolicy.containsLink(text), "\(text)")
        }
    }

    @Test func blockedWordsMatchWholeWordsCaseInsensitively() {
        let blocked: Set<String> = ["spam", "scam"]
        #expect(ChatPolicy.blockedWord(in: "this is SPAM!", blocked: blocked) == "spam")
        #expect(ChatPolicy.blockedWord(in: "a (Scam), really", blocked: blocked) == "scam")
        #expect(ChatPolicy.blockedWord(in: "spammer and scampi are fine", blocked: blocked) == nil)
        #expect(ChatPolicy.blockedWord(in: "anything", blocked: []) == nil)
    }

    @Test func slowModeWaitsTheRestOfTheWindowAndMutesExpire() {
        let now = Date(timeIntervalSince1970: 1000)
        #expect(ChatPolicy.slowModeWait(last: nil, seconds: 10, now: now) == nil)
        #expect(ChatPolicy.slowModeWait(last: now.addingTimeInterval(-3), seconds: 10, now: now) == 7)
        #expect(ChatPolicy.slowModeWait(last: now.addingTimeInterval(-9.5), seconds: 10, now: now) == 1)
        #expect(ChatPolicy.slowModeWait(last: now.addingTimeInterval(-10), seconds: 10, now: now) == nil)
        #expect(ChatPolicy.slowModeWait(last: now.addingTimeInterval(-3), seconds: 0, now: now) == nil)
        #expect(ChatPolicy.isMuted(until: now.addingTimeInterval(1), now: now))
        #expect(!ChatPolicy.isMuted(until: now, now: now))
        #expect(!ChatPolicy.isMuted(until: nil, now: now))
    }

    @Test func settingsAreValidatedAndNormalized() throws {
        let valid = try ChatPolicy.validated(ChatSettings(slowModeSeconds: 30, blockedWords: ["Spam!", "spam", "Scam"]))
        #expect(valid.blockedWords == ["spam", "scam"])
        let bad: [ChatSettings] = [
            ChatSettings(slowModeSeconds: -1), ChatSettings(slowModeSeconds: 3601),
            ChatSettings(blockedWords: Array(repeating: "w", count: 201)), ChatSettings(blockedWords: [String(repeating: "x", count: 65)]),
            ChatSettings(blockedWords: ["two words"]), ChatSettings(blockedWords: ["!!!"]),
        ]
        for settings in bad {
            #expect(throws: DomainError.self) { try ChatPolicy.validated(settings) }
        }
        #expect(try ChatPolicy.validated(ChatSettings(blockedWords: (0..<200).map { "w\($0)" })).blockedWords.count == 200)
    }
}

private let t0 = Date(timeIntervalSince1970: 1_800_000_000.123)

private func logEntry(_ action: ModerationAction, room: String, target: String? = nil) -> ModerationLogRecord {
    ModerationLogRecord(id: nil, liveRoomId: room, actorId: "owner-1", action: action, targetUserId: target, targetChatId: nil, detail: "{}", createdAt: t0)
}

/// The `ModerationStore` contract on both backends (SQLite in memory; PostgreSQL with
/// `LIVEHUB_TEST_DATABASE_URL`).
@Suite("Moderation store contract (SQLite and PostgreSQL)")
struct ModerationStoreContractTests {
    struct Stores: Sendable {
        var rooms: any RoomStore
        var live: any LiveRoomStore
        var moderation: any ModerationStore
    }

    func withStores(_ backend: StoreBackend, _ body: (Stores) async throws -> Void) async throws {
        switch backend {
        case .sqlite:
            let database = try AppDatabase.inMemory()
            try await body(Stores(rooms: SQLiteRoomStore(database: database), live: SQLiteLiveRoomStore(database: database), moderation: SQLiteModerationStore(database: database)))
        case .postgres:
            try await TestPostgres.withDatabase { database in
                try await body(Stores(
                    rooms: PostgresRoomStore(database: database), live: PostgresLiveRoomStore(database: database),
                    moderation: PostgresModerationStore(database: database)))
            }
        }
    }

    func room(_ id: String) -> RoomRecord {
        RoomRecord(
            id: id, shopOwnerId: "owner-1", shopOwnerName: nil, title: "t", description: nil, thumbnailUrl: nil, streamKey: "key-\(id)", status: .live,
            peakViewers: 0, totalOrders: 0, totalRevenue: 0, createdAt: t0, updatedAt: t0, startedAt: nil, endedAt: nil)
    }

    @Test(arguments: StoreBackend.available)
    func moderatorsMutesBansAndSettingsAreKeptWithinTheirLimitsAndLogged(_ backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            try await stores.rooms.insert(room("r1"))
            try await stores.rooms.insert(room("r2"))
            let m = stores.moderation
            #expect(try await m.addModerator(roomId: "r1", userId: "mod-a", limit: 2, log: logEntry(.moderatorAdded, room: "r1", target: "mod-a")))
            #expect(try await !m.addModerator(roomId: "r1", userId: "mod-a", limit: 2, log: logEntry(.moderatorAdded, room: "r1")), "twice = once")
            #expect(try await m.addModerator(roomId: "r1", userId: "mod-b", limit: 2, log: logEntry(.moderatorAdded, room: "r1")))
            await #expect(throws: DomainError.self) { _ = try await m.addModerator(roomId: "r1", userId: "mod-c", limit: 2, log: logEntry(.moderatorAdded, room: "r1")) }
            #expect(try await m.removeModerator(roomId: "r1", userId: "mod-b", log: logEntry(.moderatorRemoved, room: "r1")))
            #expect(try await !m.removeModerator(roomId: "r1", userId: "mod-b", log: logEntry(.moderatorRemoved, room: "r1")))

            try await m.mute(roomId: "r1", userId: "loud", until: t0.addingTimeInterval(600), now: t0, limit: 1, log: logEntry(.userMuted, room: "r1"))
            try await m.mute(roomId: "r1", userId: "loud", until: t0.addingTimeInterval(60), now: t0, limit: 1, log: logEntry(.userMuted, room: "r1"))
            await #expect(throws: DomainError.self) {
                try await m.mute(roomId: "r1", userId: "other", until: t0.addingTimeInterval(60), now: t0, limit: 1, log: logEntry(.userMuted, room: "r1"))
            }
            // Once the first mute expired, it no longer counts.
            try await m.mute(roomId: "r1", userId: "other", until: t0.addingTimeInterval(600), now: t0.addingTimeInterval(61), limit: 1, log: logEntry(.userMuted, room: "r1"))
            try await m.ban(roomId: "r1", userId: "troll", limit: 1, log: logEntry(.userBanned, room: "r1"))
            try await m.ban(roomId: "r1", userId: "troll", limit: 1, log: logEntry(.userBanned, room: "r1"))
            await #expect(throws: DomainError.self) { try await m.ban(roomId: "r1", userId: "troll-2", limit: 1, log: logEntry(.userBanned, room: "r1")) }
            let settings = ChatSettings(slowModeSeconds: 5, blockedWords: ["spam", "ünï"], blockedWordAction: .drop, linksOnlyFromModerators: true)
            try await m.saveSettings(roomId: "r1", settings, log: logEntry(.settingsChanged, room: "r1"))

            let state = try await m.state(roomId: "r1", now: t0.addingTimeInterval(62))
            #expect(state.moderators == ["mod-a"] && state.bans == ["troll"] && state.settings == settings)
            #expect(state.mutes.keys.sorted() == ["other"])
            #expect(try await m.state(roomId: "r2", now: t0) == RoomModerationState(), "rooms are separate")
            #expect(try await m.unban(roomId: "r1", userId: "troll", log: logEntry(.userUnbanned, room: "r1")))
            #expect(try await !m.unban(roomId: "r1", userId: "troll", log: logEntry(.userUnbanned, room: "r1")))
            #expect(try await m.unmute(roomId: "r1", userId: "other", log: logEntry(.userUnmuted, room: "r1")))

            let log = try await m.log(roomId: "r1", limit: 100, beforeId: nil)
            #expect(log.map(\.action) == [
                .userUnmuted, .userUnbanned, .settingsChanged, .userBanned, .userMuted, .userMuted, .userMuted, .moderatorRemoved, .moderatorAdded, .moderatorAdded,
            ])
            #expect(log.first?.actorId == "owner-1" && log.last?.targetUserId == "mod-a")
            let older = try await m.log(roomId: "r1", limit: 2, beforeId: log[2].id)
            #expect(older.map(\.id) == [log[3].id, log[4].id])
            #expect(try await m.log(roomId: "r2", limit: 10, beforeId: nil).isEmpty)
        }
    }

    @Test(arguments: StoreBackend.available)
    func aDeleteLeavesATombstoneAndHeldLinesAreApprovedOrDropped(_ backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            try await stores.rooms.insert(room("r1"))
            let m = stores.moderation
            let lines = try await stores.live.insertChats((1...3).map { index in
                LiveChatRecord(
                    seq: nil, id: "c\(index)", liveRoomId: "r1", userId: "u", username: "U", avatarUrl: nil, message: "line \(index)", type: "CHAT",
                    isPinned: false, productId: nil, productName: nil, createdAt: t0)
            })
            let tombstone = LiveChatRecord(
                seq: nil, id: "t1", liveRoomId: "r1", userId: "owner-1", username: nil, avatarUrl: nil, message: "c2", type: "DELETED", isPinned: false,
                productId: nil, productName: nil, createdAt: t0)
            let deleted = try #require(try await m.deleteChat(chatId: "c2", roomId: "r1", tombstone: tombstone, log: logEntry(.chatDeleted, room: "r1")))
            #expect(deleted.removed.message == "line 2")
            #expect((deleted.tombstone.seq ?? 0) > (lines.last?.seq ?? .max), "the tombstone takes the next offset")
            #expect(try await stores.live.chats(roomId: "r1", limit: 10, beforeSeq: nil).map(\.id) == ["c1", "c3"])
            #expect(try await stores.live.chat(id: "c2") == nil)
            var again = tombstone
            again.id = "t2"
            #expect(try await m.deleteChat(chatId: "c2", roomId: "r1", tombstone: again, log: logEntry(.chatDeleted, room: "r1")) == nil)
            again.id = "t3"
            again.message = "t1"
            #expect(try await m.deleteChat(chatId: "t1", roomId: "r1", tombstone: again, log: logEntry(.chatDeleted, room: "r1")) == nil, "a tombstone is no line")

            let held = (1...3).map { index in
                HeldChatRecord(id: "h\(index)", liveRoomId: "r1", userId: "u\(index)", username: "U", avatarUrl: nil, message: "spam \(index)", createdAt: t0.addingTimeInterval(Double(index)))
            }
            #expect(try await m.hold(held[0], limit: 2))
            #expect(try await m.hold(held[1], limit: 2))
            #expect(try await !m.hold(held[2], limit: 2), "the room's held lines are bounded")
            #expect(try await m.heldChats(roomId: "r1").map(\.id) == ["h1", "h2"])
            let line = LiveChatRecord(
                seq: nil, id: "approved", liveRoomId: "r1", userId: "u1", username: "U", avatarUrl: nil, message: "spam 1", type: "CHAT", isPinned: false,
                productId: nil, productName: nil, createdAt: t0)
            let approved = try #require(try await m.approveHeld(id: "h1", roomId: "r1", line: line, log: logEntry(.heldApproved, room: "r1")))
            #expect(approved.seq != nil)
            #expect(try await m.approveHeld(id: "h1", roomId: "r1", line: line, log: logEntry(.heldApproved, room: "r1")) == nil)
            #expect(try await m.dropHeld(id: "h2", roomId: "r1", log: logEntry(.heldDropped, room: "r1"))?.message == "spam 2")
            #expect(try await m.heldChats(roomId: "r1").isEmpty)
            #expect(try await stores.live.chats(roomId: "r1", limit: 10, beforeSeq: nil).map(\.id) == ["c1", "c3", "approved"])
            let log = try await m.log(roomId: "r1", limit: 10, beforeId: nil)
            #expect(log.map(\.action) == [.heldDropped, .heldApproved, .chatDeleted])
            #expect(log.first?.targetUserId == "u2", "a drop names whose line it was")
        }
    }
}

/// REST and the chat path end to end in one process (SQLite).
@Suite struct ModerationAPITests {
    func room(_ client: some TestClientProtocol, _ t: TestHub) async throws -> RoomView {
        try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"shop"}"#)) { try decode(RoomView.self, $0) }
    }

    @Test func thePermissionMatrixHolds() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let moderator = try await t.token("mod-1")
            let admin = try await t.token("admin-1", roles: ["ADMIN"])
            let path = "\(base)/rooms/\(r.id)"
            // Only the owner (or an admin) appoints moderators.
            try await client.execute(uri: "\(path)/moderators", method: .post, headers: bearer(t.viewerToken), body: json(#"{"userId":"mod-1"}"#)) { try expectError($0, .forbidden) }
            try await client.execute(uri: "\(path)/moderators", method: .post, body: json(#"{"userId":"mod-1"}"#)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "\(path)/moderators", method: .post, headers: bearer(t.ownerToken), body: json(#"{"userId":"mod-1"}"#)) { response in
                #expect(response.status == .created)
                let body = try object(response)
                #expect(body["moderators"] as? [String] == ["mod-1"])
            }
            try await client.execute(uri: "\(path)/moderators", method: .post, headers: bearer(moderator), body: json(#"{"userId":"mod-2"}"#)) { try expectError($0, .forbidden) }
            try await client.execute(uri: "\(path)/moderators", method: .post, headers: bearer(admin), body: json(#"{"userId":"mod-2"}"#)) { #expect($0.status == .created) }
            try await client.execute(uri: "\(path)/moderators/mod-2", method: .delete, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
            // Owner-and-moderator actions: owner yes, moderator yes, another owner/viewer 403, guest 401.
            let actions: [(String, HTTPRequest.Method, String?)] = [
                ("mutes", .post, #"{"userId":"v9","minutes":10}"#), ("mutes", .get, nil), ("bans", .post, #"{"userId":"v9"}"#), ("bans", .get, nil),
                ("chat-settings", .put, #"{"slowModeSeconds":0}"#), ("chat-settings", .get, nil), ("held-chats", .get, nil),
                ("moderation-log", .get, nil), ("moderators", .get, nil),
            ]
            for (resource, method, body) in actions {
                for token in [t.viewerToken, t.otherOwnerToken] {
                    try await client.execute(uri: "\(path)/\(resource)", method: method, headers: bearer(token), body: body.map(json)) { try expectError($0, .forbidden) }
                }
                try await client.execute(uri: "\(path)/\(resource)", method: method, body: body.map(json)) { #expect($0.status == .unauthorized, "\(resource)") }
                for token in [t.ownerToken, moderator] {
                    try await client.execute(uri: "\(path)/\(resource)", method: method, headers: bearer(token), body: body.map(json)) { response in
                        #expect([.ok, .created].contains(response.status), "\(method) \(resource): \(response.status)")
                    }
                }
            }
            for (resource, token) in [("mutes/v9", t.viewerToken), ("bans/v9", t.viewerToken)] {
                try await client.execute(uri: "\(path)/\(resource)", method: .delete, headers: bearer(token)) { try expectError($0, .forbidden) }
            }
            try await client.execute(uri: "\(path)/mutes/v9", method: .delete, headers: bearer(moderator)) { #expect($0.status == .noContent) }
            try await client.execute(uri: "\(path)/bans/v9", method: .delete, headers: bearer(moderator)) { #expect($0.status == .noContent) }
            try await client.execute(uri: "\(path)/bans/v9", method: .delete, headers: bearer(moderator)) { try expectError($0, .notFound) }
            try await client.execute(uri: "\(base)/rooms/nope/bans", method: .post, headers: bearer(t.ownerToken), body: json(#"{"userId":"v9"}"#)) { try expectError($0, .notFound) }
            // The owner and moderators cannot be muted or banned.
            try await client.execute(uri: "\(path)/bans", method: .post, headers: bearer(moderator), body: json(#"{"userId":"owner-1"}"#)) { try expectError($0, .conflict) }
            try await client.execute(uri: "\(path)/mutes", method: .post, headers: bearer(t.ownerToken), body: json(#"{"userId":"mod-1","minutes":5}"#)) { try expectError($0, .conflict) }
        }
    }

    @Test func hostileInputsAreRefusedWith400AndTheRoomStaysHealthy() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let path = "\(base)/rooms/\(r.id)"
            let longWord = String(repeating: "x", count: 65)
            let tooMany = "[" + (0...200).map { "\"w\($0)\"" }.joined(separator: ",") + "]"
            let cases: [(String, HTTPRequest.Method, String)] = [
                ("mutes", .post, #"{"userId":"v","minutes":100000}"#), ("mutes", .post, #"{"userId":"v","minutes":1e300}"#),
                ("mutes", .post, #"{"userId":"v","minutes":NaN}"#), ("mutes", .post, #"{"userId":"v","minutes":0}"#),
                ("mutes", .post, #"{"userId":"v","minutes":-5}"#), ("mutes", .post, #"{"userId":"v","minutes":2.5}"#),
                ("mutes", .post, #"{"userId":"v","minutes":"10"}"#), ("mutes", .post, #"{"userId":"","minutes":10}"#),
                ("bans", .post, #"{"userId":"\#(String(repeating: "u", count: 129))"}"#), ("bans", .post, #"{}"#), ("moderators", .post, "[1]"),
                ("chat-settings", .put, #"{"slowModeSeconds":3601}"#), ("chat-settings", .put, #"{"slowModeSeconds":1e20}"#),
                ("chat-settings", .put, #"{"slowModeSeconds":-1}"#), ("chat-settings", .put, #"{"blockedWords":["\#(longWord)"]}"#),
                ("chat-settings", .put, #"{"blockedWords":\#(tooMany)}"#), ("chat-settings", .put, #"{"blockedWordAction":"shout"}"#),
                ("chat-settings", .put, #"{"blockedWords":"spam"}"#), ("chat-settings", .put, #"{"blockedWords":["two words"]}"#),
            ]
            for (resource, method, body) in cases {
                try await client.execute(uri: "\(path)/\(resource)", method: method, headers: bearer(t.ownerToken), body: json(body)) { response in
                    #expect(response.status == .badRequest, "\(resource) \(body): \(response.status)")
                }
            }
            for query in ["limit=0", "limit=100000", "limit=x", "before=-1", "before=99999999999999999999"] {
                try await client.execute(uri: "\(path)/moderation-log?\(query)", method: .get, headers: bearer(t.ownerToken)) { try expectError($0, .badRequest) }
            }
            // Nothing was stored, and the room still takes good requests.
            try await client.execute(uri: "\(path)/moderation-log", method: .get, headers: bearer(t.ownerToken)) { response in
                let entries = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [Any]
                #expect(entries?.isEmpty == true, "the log is empty")
            }
            try await client.execute(uri: "\(path)/mutes", method: .post, headers: bearer(t.ownerToken), body: json(#"{"userId":"v","minutes":10080}"#)) { #expect($0.status == .created) }
            let words = "[" + (0..<200).map { "\"w\($0)\"" }.joined(separator: ",") + "]"
            try await client.execute(uri: "\(path)/chat-settings", method: .put, headers: bearer(t.ownerToken), body: json(#"{"blockedWords":\#(words),"slowModeSeconds":3600}"#)) { response in
                #expect(response.status == .ok)
                let body = try object(response)
                #expect((body["blockedWords"] as? [String])?.count == 200)
            }
        }
    }

    @Test func everyRuleIsEnforcedOnTheChatPathAndEveryActionIsLogged() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            let path = "\(base)/rooms/\(r.id)"
            let live = t.hub.live
            let owner = AuthUser(userId: "owner-1", username: "Owner")
            let mod = AuthUser(userId: "mod-1", username: "Mod")
            let viewer = AuthUser(userId: "v1", username: "V")
            let other = AuthUser(userId: "v2", username: "W")
            _ = try await t.hub.moderation.addModerator(roomId: r.id, userId: "mod-1", by: owner)
            let first = try await live.postChat(roomId: r.id, user: viewer, message: "hello")
            // Delete: gone from the history (ring and store).
            try await live.deleteChat(roomId: r.id, chatId: first.id, by: mod)
            #expect(try await live.history(roomId: r.id, limit: 50, before: nil).isEmpty)
            #expect(try await live.history(roomId: r.id, limit: 500, before: nil).isEmpty)
            await #expect(throws: DomainError.self) { try await live.deleteChat(roomId: r.id, chatId: first.id, by: mod) }
            await #expect(throws: DomainError.self) { try await live.deleteChat(roomId: r.id, chatId: "x", by: viewer) }
            // Mute, then ban.
            _ = try await t.hub.moderation.mute(roomId: r.id, userId: "v1", minutes: 10, by: mod)
            let refusal = await #expect(throws: ChatRefusal.self) { try await live.postChat(roomId: r.id, user: viewer, message: "hi") }
            guard case .muted(let until)? = refusal else { Issue.record("not MUTED: \(String(describing: refusal))"); return }
            #expect(until > Date().addingTimeInterval(590))
            // A mute that has run out no longer holds.
            _ = try await live.postChat(roomId: r.id, user: viewer, message: "later", now: Date().addingTimeInterval(601))
            try await t.hub.moderation.unmute(roomId: r.id, userId: "v1", by: mod)
            _ = try await t.hub.moderation.ban(roomId: r.id, userId: "v1", by: mod)
            await #expect(throws: ChatRefusal.banned) { try await live.postChat(roomId: r.id, user: viewer, message: "hi") }
            try await t.hub.moderation.unban(roomId: r.id, userId: "v1", by: owner)
            _ = try await live.postChat(roomId: r.id, user: viewer, message: "back")
            // Slow mode, links, blocked words (hold, then drop); the owner and moderators are exempt.
            _ = try await t.hub.moderation.saveSettings(
                roomId: r.id, ChatSettings(slowModeSeconds: 30, blockedWords: ["spam"], blockedWordAction: .hold, linksOnlyFromModerators: true), by: owner)
            _ = try await live.postChat(roomId: r.id, user: other, message: "one")
            await #expect(throws: ChatRefusal.slowMode(waitSeconds: 30)) { try await live.postChat(roomId: r.id, user: other, message: "two") }
            _ = try await live.postChat(roomId: r.id, user: mod, message: "a"); _ = try await live.postChat(roomId: r.id, user: mod, message: "b")
            _ = try await live.postChat(roomId: r.id, user: owner, message: "see https://shop.example/deal")
            await #expect(throws: ChatRefusal.linksNotAllowed) { try await live.postChat(roomId: r.id, user: viewer, message: "cheap at shop.example") }
            await #expect(throws: ChatRefusal.heldForReview) { try await live.postChat(roomId: r.id, user: viewer, message: "buy SPAM now") }
            let held = try await t.hub.moderation.heldChats(roomId: r.id, by: mod)
            #expect(held.map(\.message) == ["buy SPAM now"])
            let approved = try await live.approveHeld(roomId: r.id, heldId: held[0].id, by: mod)
            #expect(approved.userId == "v1" && approved.type == "CHAT")
            _ = try await t.hub.moderation.saveSettings(roomId: r.id, ChatSettings(blockedWords: ["spam"], blockedWordAction: .drop), by: owner)
            await #expect(throws: ChatRefusal.blockedWord) { try await live.postChat(roomId: r.id, user: viewer, message: "spam again") }
            #expect(try await t.hub.moderation.heldChats(roomId: r.id, by: mod).isEmpty)
            _ = try await t.hub.moderation.saveSettings(roomId: r.id, ChatSettings(blockedWords: ["spam"]), by: owner)
            await #expect(throws: ChatRefusal.heldForReview) { try await live.postChat(roomId: r.id, user: viewer, message: "spam 3") }
            try await t.hub.moderation.dropHeld(roomId: r.id, heldId: try #require(try await t.hub.moderation.heldChats(roomId: r.id, by: mod).first).id, by: mod)
            _ = try await t.hub.moderation.removeModerator(roomId: r.id, userId: "mod-1", by: owner)
            #expect(try await live.history(roomId: r.id, limit: 50, before: nil).map(\.message) == [
                "later", "back", "one", "a", "b", "see https://shop.example/deal", "buy SPAM now",
            ])
            try await client.execute(uri: "\(path)/moderation-log?limit=200", method: .get, headers: bearer(t.ownerToken)) { response in
                let entries = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]])
                #expect(entries.compactMap { $0["action"] as? String }.reversed() == [
                    "MODERATOR_ADDED", "CHAT_DELETED", "USER_MUTED", "USER_UNMUTED", "USER_BANNED", "USER_UNBANNED", "SETTINGS_CHANGED",
                    "HELD_APPROVED", "SETTINGS_CHANGED", "SETTINGS_CHANGED", "HELD_DROPPED", "MODERATOR_REMOVED",
                ])
                let deleted = try #require(entries.first { $0["action"] as? String == "CHAT_DELETED" })
                #expect((deleted["detail"] as? [String: Any])?["message"] as? String == "hello")
                #expect(deleted["targetChatId"] as? String == first.id && deleted["actorId"] as? String == "mod-1")
            }
            // The DELETED tombstone is in live_chat (the chat topic's log), not in the history.
            #expect(try t.count("live_chat") == 8)
        }
    }

    @Test func theCacheKeepsAtMostItsRoomsAndChangesFromElsewhereShowAfterTheTTL() async throws {
        let t = try await TestHub.make { configuration in
            configuration.moderation.cachedRooms = 2
            configuration.moderation.cacheTTL = .milliseconds(200)
        }
        try await t.hub.application.test(.router) { client in
            var rooms: [RoomView] = []
            for _ in 0..<3 { rooms.append(try await room(client, t)) }
            let viewer = AuthUser(userId: "v1", username: "V")
            for r in rooms { _ = try await t.hub.live.postChat(roomId: r.id, user: viewer, message: "hi") }
            #expect(await t.hub.moderation.cachedRoomCount == 2)
            // A ban written straight to the store (as another node would) holds once the TTL passed.
            let store = SQLiteModerationStore(database: try #require(t.hub.database))
            try await store.ban(roomId: rooms[2].id, userId: "v1", limit: 10, log: logEntry(.userBanned, room: rooms[2].id))
            try await Task.sleep(for: .milliseconds(250))
            await #expect(throws: ChatRefusal.banned) { try await t.hub.live.postChat(roomId: rooms[2].id, user: viewer, message: "hi") }
        }
    }

    @Test func moderationLimitsAreReadFromTheEnvironment() throws {
        let configuration = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_MODERATION_MAX_MODERATORS": "3", "LIVEHUB_MODERATION_MAX_MUTES": "4", "LIVEHUB_MODERATION_MAX_BANS": "5",
            "LIVEHUB_MODERATION_MAX_HELD": "6", "LIVEHUB_MODERATION_CACHE_ROOMS": "7", "LIVEHUB_MODERATION_CACHE_TTL_MS": "250",
        ])
        #expect(configuration.moderation.moderatorsPerRoom == 3 && configuration.moderation.mutesPerRoom == 4)
        #expect(configuration.moderation.bansPerRoom == 5 && configuration.moderation.heldPerRoom == 6)
        #expect(configuration.moderation.cachedRooms == 7 && configuration.moderation.cacheTTL == .milliseconds(250))
        #expect(throws: (any Error).self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_MODERATION_MAX_BANS": "0"]) }
        #expect(throws: (any Error).self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_MODERATION_CACHE_TTL_MS": "99999999999999999999"]) }
    }

    @Test func theModeratorLimitHolds() async throws {
        let t = try await TestHub.make { $0.moderation.moderatorsPerRoom = 2 }
        try await t.hub.application.test(.router) { client in
            let r = try await room(client, t)
            for (userId, status) in [("a", HTTPResponse.Status.created), ("b", .created), ("c", .conflict)] {
                try await client.execute(uri: "\(base)/rooms/\(r.id)/moderators", method: .post, headers: bearer(t.ownerToken), body: json(#"{"userId":"\#(userId)"}"#)) {
                    #expect($0.status == status)
                }
            }
        }
    }
}
