import Foundation
import HTTPTypes
import Hub
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Server

/// Issue 17 §3: limits on what an outsider can make the server hold (HTTP, chat, caches). The hub's
/// own limits are tested in HubTests; every limit end to end in e2e/test_limits_e2e.py.
@Suite struct LimitsTests {
    // MARK: Configuration

    @Test func theLimitsAreReadFromTheEnvironmentAndBadValuesAreRefused() throws {
        let defaults = LiveHubConfiguration()
        #expect(defaults.httpIdleTimeout == .seconds(60))
        #expect(defaults.httpMaxHeaderBytes == 16_384)
        #expect(defaults.httpMaxConnectionsPerIP == 1000 && defaults.wsMaxConnectionsPerIP == 1000)
        #expect(defaults.wsMaxConnectionsPerUser == 20 && defaults.wsMaxSubscriptions == 64)
        #expect(defaults.wsMaxInboundBytes == 262_144 && defaults.stompConnectTimeout == .seconds(10))
        #expect(defaults.chatMaxBytes == 2000)
        #expect(defaults.idempotencyKeysPerUser == 100 && defaults.idempotencyKeysTotal == 10_000)
        let c = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_HTTP_IDLE_TIMEOUT": "2.5", "LIVEHUB_HTTP_MAX_HEADER_BYTES": "4096", "LIVEHUB_HTTP_MAX_CONNECTIONS_PER_IP": "0",
            "LIVEHUB_WS_MAX_CONNECTIONS_PER_IP": "7", "LIVEHUB_WS_MAX_CONNECTIONS_PER_USER": "3", "LIVEHUB_WS_MAX_SUBSCRIPTIONS": "8",
            "LIVEHUB_WS_MAX_INBOUND_BYTES": "65536", "LIVEHUB_STOMP_CONNECT_TIMEOUT": "1", "LIVEHUB_CHAT_MAX_BYTES": "100",
            "LIVEHUB_IDEMPOTENCY_KEYS_PER_USER": "5", "LIVEHUB_IDEMPOTENCY_KEYS_TOTAL": "50",
        ])
        #expect(c.httpIdleTimeout == .milliseconds(2500))
        #expect(c.httpMaxHeaderBytes == 4096 && c.httpMaxConnectionsPerIP == 0 && c.wsMaxConnectionsPerIP == 7)
        #expect(c.wsMaxConnectionsPerUser == 3 && c.wsMaxSubscriptions == 8 && c.wsMaxInboundBytes == 65536)
        #expect(c.stompConnectTimeout == .seconds(1) && c.chatMaxBytes == 100)
        #expect(c.idempotencyKeysPerUser == 5 && c.idempotencyKeysTotal == 50)
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_HTTP_IDLE_TIMEOUT": "0"]).httpIdleTimeout == nil)
        for (name, value) in [
            ("LIVEHUB_HTTP_IDLE_TIMEOUT", "1e300"), ("LIVEHUB_HTTP_IDLE_TIMEOUT", "-1"), ("LIVEHUB_HTTP_MAX_HEADER_BYTES", "10"),
            ("LIVEHUB_HTTP_MAX_CONNECTIONS_PER_IP", "-1"), ("LIVEHUB_WS_MAX_SUBSCRIPTIONS", "0"), ("LIVEHUB_WS_MAX_INBOUND_BYTES", "lots"),
            ("LIVEHUB_STOMP_CONNECT_TIMEOUT", "0"), ("LIVEHUB_CHAT_MAX_BYTES", "99999999999999999999"),
            ("LIVEHUB_IDEMPOTENCY_KEYS_PER_USER", "0"),
        ] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
    }

    // MARK: Chat

    @Test func chatTextLosesControlCharactersButKeepsNewlinesAndEmoji() {
        #expect(ChatText.clean("hi\u{7}\u{0} there") == "hi there")
        #expect(ChatText.clean("\u{1B}[31mred\u{1B}[0m") == "[31mred[0m")
        #expect(ChatText.clean("a\r\nb\rc\nd") == "a\nb\nc\nd")
        #expect(ChatText.clean("tab\there\u{7F}\u{85}\u{9F}") == "tabhere")
        #expect(ChatText.clean("👩‍👩‍👧 family, e\u{301}t\u{e9}") == "👩‍👩‍👧 family, e\u{301}t\u{e9}", "format characters (ZWJ) and combining marks stay")
        #expect(ChatText.clean("\u{1}\u{2}\n\u{3}") == "")
        #expect(ChatText.clean("  x\u{200B}y  ") == "x\u{200B}y", "a zero-width space is a format character, not a control")
    }

    @Test func aChatLineIsRefusedOverTheByteCapAndStoredWithoutControlCharacters() async throws {
        let t = try await TestHub.make { $0.chatMaxBytes = 300 }
        let room = try await t.hub.rooms.create(CreateRoomRequest(title: "r"), owner: AuthUser(userId: "owner-1", username: "O", roles: ["SHOP_OWNER"]))
        let user = AuthUser(userId: "u", username: "U")
        // 100 characters, each "a" with 10 combining marks (21 bytes): within 500 characters, 2,100 bytes.
        let zalgo = String(repeating: "a" + String(repeating: "\u{301}", count: 10), count: 100)
        #expect(zalgo.count == 100)
        await #expect(throws: ChatRefusal.tooLarge(limitBytes: 300)) { try await t.hub.live.postChat(roomId: room.id, user: user, message: zalgo) }
        #expect(ChatRefusal.tooLarge(limitBytes: 300).code == "MESSAGE_TOO_LARGE")
        await #expect(throws: ChatRefusal.tooLong(limit: 500)) {
            try await t.hub.live.postChat(roomId: room.id, user: user, message: String(repeating: "x", count: 501))
        }
        await #expect(throws: ChatRefusal.empty) { try await t.hub.live.postChat(roomId: room.id, user: user, message: "\u{7}\u{0}\r\n") }
        let exactly = String(repeating: "é", count: 150)  // 300 bytes
        #expect(try await t.hub.live.postChat(roomId: room.id, user: user, message: exactly).message == exactly)
        let saved = try await t.hub.live.postChat(roomId: room.id, user: user, message: "\u{1B}[2Jhello\u{0}\r\nworld\u{7}")
        #expect(saved.message == "[2Jhello\nworld")
        let history = try await t.hub.live.history(roomId: room.id, limit: 10, before: nil)
        #expect(history.map(\.message) == [exactly, "[2Jhello\nworld"])
    }

    // MARK: Idempotency keys

    @Test func idempotencyKeysAreScopedToUserAndNotificationAndBounded() {
        let start = Date(timeIntervalSince1970: 1_000_000)
        var cache = IdempotencyCache<Int>(limits: .init(perUser: 3, total: 10))
        cache.remember(1, user: "u", scope: "n1", key: "k", now: start)
        #expect(cache.answer(user: "u", scope: "n1", key: "k", now: start) == 1)
        #expect(cache.answer(user: "u", scope: "n2", key: "k", now: start) == nil, "the same key on another notification is a new request")
        #expect(cache.answer(user: "v", scope: "n1", key: "k", now: start) == nil, "and for another user")
        #expect(cache.answer(user: "u", scope: "n1", key: "k", now: start + 86_400) == nil, "forgotten after a day")
        // Per user: the oldest goes first.
        for i in 2...4 { cache.remember(i, user: "u", scope: "n\(i)", key: "k", now: start + Double(i)) }
        #expect(cache.count == 3)
        #expect(cache.answer(user: "u", scope: "n1", key: "k", now: start + 5) == nil)
        #expect(cache.answer(user: "u", scope: "n4", key: "k", now: start + 5) == 4)
        // In all: beyond 10, the least recently active users go, down to 9.
        for user in 0..<5 {
            for i in 0..<2 { cache.remember(i, user: "user\(user)", scope: "n\(i)", key: "k", now: start + 10) }
        }
        #expect(cache.count <= 10)
        #expect(cache.answer(user: "user4", scope: "n1", key: "k", now: start + 10) == 1, "the latest user is kept")
        #expect(cache.answer(user: "u", scope: "n4", key: "k", now: start + 10) == nil, "the least recently active user went")
        // 100,000 keys from 10,000 users leave at most `total`.
        for i in 0..<100_000 { cache.remember(i, user: "flood\(i % 10_000)", scope: "n", key: "k\(i)", now: start + 20) }
        #expect(cache.count <= 10)
        #expect(cache.userCount <= 10)
    }

    @Test func aKeyReusedForAnotherNotificationIsANewRequest() async throws {
        let t = try await TestHub.make { $0.idempotencyKeysPerUser = 2 }
        let a = try await t.hub.notifications.notify(userId: "viewer-1", type: "T", title: "a", body: nil)
        let b = try await t.hub.notifications.notify(userId: "viewer-1", type: "T", title: "b", body: nil)
        let first = try await t.hub.notifications.markRead(id: a.id, userId: "viewer-1", idempotencyKey: "same")
        #expect(first.notificationId == a.id && first.changed == 1 && first.unreadCount == 1)
        let other = try await t.hub.notifications.markRead(id: b.id, userId: "viewer-1", idempotencyKey: "same")
        #expect(other.notificationId == b.id && other.changed == 1 && other.unreadCount == 0, "not the answer for \(a.id)")
        #expect(try await t.hub.notifications.markRead(id: a.id, userId: "viewer-1", idempotencyKey: "same") == first)
        for i in 0..<50 { _ = try await t.hub.notifications.markRead(id: a.id, userId: "viewer-1", idempotencyKey: "k\(i)") }
        #expect(await t.hub.notifications.rememberedIdempotencyKeys == 2)
    }

    // MARK: Per-room caches

    @Test func anEndedRoomLeavesNoViewerSetBehind() async throws {
        let tracker = ViewerTracker(store: try noRooms(), minimumInterval: .zero) { _, _, _ in }
        for i in 0..<100 { await tracker.join(roomId: "ended", connection: HubConnectionID(rawValue: UInt64(i))) }
        await tracker.join(roomId: "live", connection: HubConnectionID(rawValue: 1))
        await tracker.roomEnded("ended")
        #expect(await tracker.count(roomId: "ended") == 0)
        #expect(await tracker.count(roomId: "live") == 1)
        #expect(await tracker.trackedRooms == 1)
        #expect(await tracker.trackedConnections == 1, "only connection 1, for the live room")
        await tracker.leaveAll(connection: HubConnectionID(rawValue: 2))
        await tracker.leaveAll(connection: HubConnectionID(rawValue: 1))
        #expect(await tracker.trackedRooms == 0)
        #expect(await tracker.trackedConnections == 0)
    }

    @Test func anEndedRoomsViewerCountsAndChatHistoryAreDropped() async throws {
        let t = try await TestHub.make()
        let owner = AuthUser(userId: "owner-1", username: "O", roles: ["SHOP_OWNER"])
        let room = try await t.hub.rooms.create(CreateRoomRequest(title: "r"), owner: owner)
        _ = try await t.hub.rooms.start(id: room.id, by: owner)
        _ = try await t.hub.live.postChat(roomId: room.id, user: AuthUser(userId: "u", username: "U"), message: "hi")
        let viewers = t.hub.rooms.viewers
        for i in 0..<3 { await viewers.join(roomId: room.id, connection: HubConnectionID(rawValue: UInt64(i))) }
        #expect(await viewers.trackedRooms == 1)
        try await eventually("the peak is persisted") { try await t.hub.rooms.room(id: room.id).peakViewers == 3 }
        #expect(await t.hub.live.cachedRooms == 1)
        _ = try await t.hub.rooms.end(id: room.id, by: owner)
        try await eventually("the ended room's trailing announcement is done") { await viewers.trackedRooms == 0 }
        #expect(await t.hub.live.cachedRooms == 0)
        // Late viewer counts and history reads of the ended room keep nothing either.
        await viewers.join(roomId: room.id, connection: HubConnectionID(rawValue: 9))
        try await eventually("a join that raced the end is dropped when the store says ended") { await viewers.trackedRooms == 0 }
        #expect(try await t.hub.live.history(roomId: room.id, limit: 10, before: nil).map(\.message) == ["hi"])
        #expect(await t.hub.live.cachedRooms == 0)
        #expect(try t.snapshot().first?["peakViewers"] == "3")
    }

    // MARK: HTTP

    @Test func anIdleConnectionIsClosedAfterTheTimeoutAndActivityPostponesIt() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: HTTPIdleTimeoutHandler(timeout: .seconds(60)), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        loop.advanceTime(by: .seconds(30))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        loop.advanceTime(by: .seconds(45))
        #expect(channel.isActive, "75 s after connecting, 45 s after the last byte")
        try channel.writeOutbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n"))
        loop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive, "60 s without a byte either way")
        _ = try? channel.finish()
    }

    @Test func aRequestWaitingForItsAnswerIsNotIdle() throws {
        let loop = EmbeddedEventLoop()
        let exchange = HTTPExchangeState()
        let channel = EmbeddedChannel(handler: HTTPIdleTimeoutHandler(timeout: .seconds(60), exchange: exchange), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        exchange.requestsReceived = 1  // a whole request, the router still working on it (a blocking reload)
        loop.advanceTime(by: .seconds(150))
        #expect(channel.isActive, "the server is the slow one")
        exchange.responsesEnded = 1
        try channel.writeOutbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n"))
        loop.advanceTime(by: .seconds(60))
        #expect(!channel.isActive, "idle again once answered")
        _ = try? channel.finish()
    }

    @Test func aRequestHeadOverTheLimitIsAnswered431() throws {
        let channel = EmbeddedChannel()
        let encoder = HTTPResponseEncoder()
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = 1024
        limits.maxHeaderFieldSize = 1024
        try channel.pipeline.syncOperations.addHandler(encoder)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(limitConfiguration: limits)))
        try channel.pipeline.syncOperations.addHandler(HTTPHeaderLimitHandler(maxHeaderBytes: 1024))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\nX-Small: 1\r\n\r\n"))
        guard case .head(let head) = try channel.readInbound(as: HTTPServerRequestPart.self) else {
            Issue.record("a small request passes")
            return
        }
        #expect(head.headers["X-Small"] == ["1"])
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
        // Answered here, not passed on (Hummingbird would answer a bare 400 on top).
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n"))
        var written = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&part) }
        let text = String(buffer: written)
        #expect(text.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        #expect(text.contains("Connection: close"))
        #expect(text.hasSuffix(#"{"error":"HEADERS_TOO_LARGE","message":"the request line and header fields exceed 1024 bytes"}"#))
        #expect(!channel.isActive)
    }

    @Test func connectionsAreCountedPerAddressAndReleased() {
        let counter = ConnectionsPerAddress(limit: 2, what: "HTTP connections", logger: Logger(label: "test"))
        #expect(ConnectionsPerAddress.key(for: try? SocketAddress(ipAddress: "::ffff:10.0.0.1", port: 5)) == "10.0.0.1")
        #expect(ConnectionsPerAddress.key(for: try? SocketAddress(ipAddress: "2001:db8::1", port: 5)) == "2001:db8::1")
        #expect(counter.acquire("10.0.0.1") && counter.acquire("10.0.0.1"))
        #expect(!counter.acquire("10.0.0.1"), "a third from the same address")
        #expect(counter.acquire("10.0.0.2"), "another address is not affected")
        counter.release("10.0.0.1")
        #expect(counter.acquire("10.0.0.1"))
        for _ in 0..<2 { counter.release("10.0.0.1") }
        counter.release("10.0.0.2")
        #expect(counter.addresses == 0, "nothing is kept for addresses that left")
        // A connection that upgrades moves from one count to the other.
        let webSockets = ConnectionsPerAddress(limit: 1, what: "WebSockets", logger: Logger(label: "test"))
        let slot = ConnectionSlot(key: "10.0.0.3", held: counter)
        #expect(counter.acquire("10.0.0.3"))
        #expect(slot.move(to: webSockets))
        #expect(counter.count("10.0.0.3") == 0 && webSockets.count("10.0.0.3") == 1)
        let second = ConnectionSlot(key: "10.0.0.3", held: nil)
        #expect(!second.move(to: webSockets), "the address already holds its one WebSocket")
        slot.release()
        #expect(webSockets.addresses == 0)
    }

    @Test func aConnectionOverTheLimitIsAnswered429() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(TooManyConnectionsResponder(limit: 1000, what: "HTTP connections"))
        try channel.writeInbound(ByteBuffer(string: "GET /hls/x/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n"))
        var written = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&part) }
        let text = String(buffer: written)
        #expect(text.hasPrefix("HTTP/1.1 429 Too Many Requests\r\n"))
        #expect(text.hasSuffix(#"{"error":"TOO_MANY_CONNECTIONS","message":"this address already has 1000 open HTTP connections; close one first"}"#))
        #expect(!channel.isActive)
    }
}
