import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

private let base = "/v1/notifications/live"

/// What the stock and user services of these tests saw.
private actor Seen {
    var authorizations: [String?] = []
    var paths: [String] = []
    func record(_ request: Request) {
        authorizations.append(request.headers[.authorization])
        paths.append(request.uri.path)
    }
}

/// A real HTTP server standing in for the site's stock and user services (issue 19 item 4): the
/// answers each product or user id gets are below.
private func serviceApp(_ seen: Seen) -> some ApplicationProtocol {
    @Sendable func answer(_ text: String, _ status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    let router = Router()
    router.get("v1/products/:id") { request, context -> Response in
        await seen.record(request)
        switch (context.parameters.get("id") ?? "").removingPercentEncoding ?? "" {
        case "tea": return answer(#"{"id": 7, "name": "Green tea", "price": 299000, "imageUrl": "https://img.example/tea.png", "stock": 12}"#)
        case "cup":
            return answer(#"{"data": {"productName": "Cup", "originalPrice": "1000.50", "productImageUrl": "javascript:alert(1)", "stockQuantity": -3, "name": null}}"#)
        case "a/b c": return answer(#"{"name": "Escaped id", "price": 1}"#)
        case "missing": return answer(#"{"message": "no such product"}"#, .notFound)
        case "broken": return answer(#"{"message": "boom"}"#, .internalServerError)
        case "html": return answer("<html>busy</html>")
        case "negative": return answer(#"{"name": "Odd", "price": -5}"#)
        case "huge": return answer(#"{"name": "\#(String(repeating: "x", count: 200_000))"}"#)
        case "slow":
            try await Task.sleep(for: .seconds(3))
            return answer(#"{"name": "Late"}"#)
        default: return answer("{}", .notFound)
        }
    }
    router.get("v1/users/:id") { request, context -> Response in
        await seen.record(request)
        switch context.parameters.get("id") ?? "" {
        case "u-1": return answer(#"{"id": 1, "username": "Kim", "avatarUrl": "https://img.example/kim.png"}"#)
        case "u-2": return answer(#"{"data": {"nickname": "Lee\u0007", "profileImageUrl": "https://img.example/lee.png"}}"#)
        case "u-slow":
            try await Task.sleep(for: .seconds(2))
            return answer(#"{"username": "Slow"}"#)
        default: return answer("{}", .notFound)
        }
    }
    return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
}

/// Runs `body` with a LiveHub whose stock and user services are `serviceApp`, on a real port.
private func withServices(
    configure: @escaping @Sendable (inout LiveHubConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (TestHub, Seen, any TestClientProtocol) async throws -> Void
) async throws {
    let seen = Seen()
    try await serviceApp(seen).test(.live) { services in
        let port = try #require(services.port)
        let t = try await TestHub.make {
            $0.stockServiceURL = "http://127.0.0.1:\(port)"
            $0.userServiceURL = "http://127.0.0.1:\(port)"
            $0.serviceToken = "service-token-1"
            $0.lookupTimeout = .seconds(5)  // a loaded machine; the timeout tests set theirs
            configure(&$0)
        }
        try await t.hub.application.test(.router) { client in try await body(t, seen, client) }
    }
}

@Suite struct StockLookupTests {
    func room(_ client: some TestClientProtocol, _ t: TestHub) async throws -> RoomView {
        try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"shop"}"#)) { try decode(RoomView.self, $0) }
    }

    @Test func missingDetailsComeFromTheStockServiceAndGivenOnesWin() async throws {
        try await withServices { t, seen, client in
            let r = try await room(client, t)
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId": "tea", "livePrice": 149000}"#)) { response in
                #expect(response.status == .created)
                let product = try decode(LiveProductView.self, response)
                #expect(product.productName == "Green tea" && product.originalPrice == 299_000)
                #expect(product.productImageUrl == "https://img.example/tea.png" && product.stockAvailable == 12)
                #expect(product.discountPercent == 50.17)
            }
            // What the request gives wins; the wrapped answer's aliases fill the rest (a bad image URL
            // is dropped, a negative stock is 0, a price as a string is read).
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId": "cup", "livePrice": 500, "productName": "My cup"}"#)) { response in
                #expect(response.status == .created)
                let product = try decode(LiveProductView.self, response)
                #expect(product.productName == "My cup" && product.originalPrice == 1000.5 && product.productImageUrl == nil && product.stockAvailable == 0)
            }
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId": "a/b c", "livePrice": 1}"#)) { response in
                #expect(response.status == .created)
                let escaped = try decode(LiveProductView.self, response)
                #expect(escaped.productName == "Escaped id")
            }
            // Everything given: no lookup.
            let complete = #"{"productId": "given", "livePrice": 1, "productName": "n", "originalPrice": 2, "productImageUrl": "https://x.example/i.png", "stockAvailable": 1}"#
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(complete)) { #expect($0.status == .created) }
            let paths = await seen.paths
            #expect(paths == ["/v1/products/tea", "/v1/products/cup", "/v1/products/a%2Fb%20c"])
            #expect(await seen.authorizations == Array(repeating: "Bearer service-token-1", count: 3))
        }
    }

    @Test func aFailingStockServiceIsAClearErrorAndNothingIsStored() async throws {
        try await withServices(configure: { $0.lookupMaxBodyBytes = 64 * 1024; $0.lookupTimeout = .seconds(1) }) { t, _, client in
            let r = try await room(client, t)
            let cases: [(String, HTTPResponse.Status, String)] = [
                ("missing", .notFound, "STOCK_PRODUCT_NOT_FOUND"),
                ("broken", .badGateway, "STOCK_SERVICE_UNAVAILABLE"),
                ("html", .badGateway, "STOCK_SERVICE_UNAVAILABLE"),
                ("negative", .badGateway, "STOCK_SERVICE_UNAVAILABLE"),
                ("huge", .badGateway, "STOCK_SERVICE_UNAVAILABLE"),
                ("slow", .gatewayTimeout, "STOCK_SERVICE_TIMEOUT"),
            ]
            for (id, status, code) in cases {
                let started = ContinuousClock.now
                try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(t.ownerToken), body: json(#"{"productId": "\#(id)", "livePrice": 1}"#)) { response in
                    let message = try expectError(response, status, code)
                    if id == "missing" { #expect(message.contains("product missing was not found in the stock service")) }
                    if id == "huge" { #expect(message.contains("larger than 65536 bytes")) }
                }
                if id == "slow" { #expect(ContinuousClock.now - started < .seconds(2.5), "the total timeout (1 s) cut the 3 s answer short") }
            }
            #expect(try t.count("live_product") == 0)
        }
    }

    @Test func anUnreachableStockServiceIs502AndNoURLKeepsTodaysBehaviour() async throws {
        let down = try await TestHub.make { $0.stockServiceURL = "http://127.0.0.1:1"; $0.lookupConnectTimeout = .milliseconds(300) }
        try await down.hub.application.test(.router) { client in
            let r = try await room(client, down)
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(down.ownerToken), body: json(#"{"productId": "tea", "livePrice": 1}"#)) { response in
                let status = response.status
                #expect(status == .badGateway || status == .gatewayTimeout, "\(status)")
            }
            #expect(try down.count("live_product") == 0)
        }
        let plain = try await TestHub.make()
        try await plain.hub.application.test(.router) { client in
            let r = try await room(client, plain)
            try await client.execute(uri: "\(base)/rooms/\(r.id)/products", method: .post, headers: bearer(plain.ownerToken), body: json(#"{"productId": "tea", "livePrice": 1}"#)) { response in
                #expect(response.status == .created)
                let product = try decode(LiveProductView.self, response)
                #expect(product.productName == nil && product.originalPrice == nil && product.stockAvailable == nil)
            }
        }
    }

    @Test func stockAnswersAreParsedDefensively() throws {
        func parse(_ text: String) throws(StockLookupError) -> StockProduct { try StockProductResponse.parse(Array(text.utf8)) }
        #expect(try parse(#"{"id": 1, "name": " Tea ", "price": 1.5e3, "imageUrl": "http://i.example/t.png", "stock": 4}"#)
            == StockProduct(name: "Tea", price: 1500, imageUrl: "http://i.example/t.png", stock: 4))
        #expect(try parse(#"{"data": {"productName": "A", "originalPrice": 2, "productImageUrl": "ftp://x", "stockAvailable": 2.9}}"#)
            == StockProduct(name: "A", price: 2, imageUrl: nil, stock: 2))
        #expect(try parse(#"{"stockQuantity": 1e30, "name": "\#(String(repeating: "é", count: 600))"}"#).stock == ProductValidation.maxQuantity)
        #expect(try parse(#"{"name": "\#(String(repeating: "é", count: 600))"}"#).name?.count == 500)
        #expect(try parse(#"{"price": null, "name": "", "stock": "many"}"#) == StockProduct())
        for bad in ["[1]", "\"x\"", "{", #"{"price": "NaN"}"#, #"{"price": 1e13}"#, #"{"price": true}"#, String(repeating: "[", count: 100)] {
            #expect(throws: StockLookupError.self, "\(bad)") { try parse(bad) }
        }
        #expect(UserProfileResponse.parse(Array(#"{"name": "N", "picture": "https://x", "imageUrl": "https://i.example/a.png"}"#.utf8))
            == UserProfile(username: "N", avatarUrl: "https://i.example/a.png"))
        #expect(UserProfileResponse.parse(Array("nope".utf8)) == nil)
    }

    @Test func lookupSettingsAreChecked() throws {
        let c = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_STOCK_SERVICE_URL": "http://stock:8080/", "LIVEHUB_USER_SERVICE_URL": "https://users.example/api",
            "LIVEHUB_SERVICE_TOKEN": "s", "LIVEHUB_LOOKUP_CONNECT_TIMEOUT": "0.25", "LIVEHUB_LOOKUP_TIMEOUT": "2",
            "LIVEHUB_LOOKUP_MAX_BODY_BYTES": "4096", "LIVEHUB_USER_CACHE_ENTRIES": "5", "LIVEHUB_USER_CACHE_TTL": "60",
            "LIVEHUB_USER_LOOKUP_CONCURRENCY": "3",
        ])
        #expect(c.stockServiceURL == "http://stock:8080" && c.userServiceURL == "https://users.example/api" && c.serviceToken == "s")
        #expect(c.lookupConnectTimeout == .milliseconds(250) && c.lookupTimeout == .seconds(2) && c.lookupMaxBodyBytes == 4096)
        #expect(c.userCacheEntries == 5 && c.userCacheTTL == .seconds(60) && c.userLookupConcurrency == 3)
        let defaults = try LiveHubConfiguration.fromEnvironment([:])
        #expect(defaults.stockServiceURL == nil && defaults.userServiceURL == nil && defaults.lookupTimeout == .seconds(3))
        #expect(defaults.userCacheEntries == 10_000 && defaults.userCacheTTL == .seconds(300) && defaults.lookupMaxBodyBytes == 65_536)
        for (name, value) in [
            ("LIVEHUB_STOCK_SERVICE_URL", "ftp://stock"), ("LIVEHUB_STOCK_SERVICE_URL", "stock:8080"), ("LIVEHUB_USER_SERVICE_URL", "http://u?x=1"),
            ("LIVEHUB_LOOKUP_TIMEOUT", "0"), ("LIVEHUB_LOOKUP_TIMEOUT", "61"), ("LIVEHUB_LOOKUP_MAX_BODY_BYTES", "10"),
            ("LIVEHUB_USER_CACHE_ENTRIES", "0"), ("LIVEHUB_USER_CACHE_TTL", "0"), ("LIVEHUB_USER_LOOKUP_CONCURRENCY", "99999999999999999999"),
        ] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
    }
}

@Suite struct UserLookupTests {
    func waitForLookups(_ cache: UserProfileCache) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while await cache.lookupsInFlight > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func chatNamesComeFromTheUserServiceWithoutHoldingALine() async throws {
        try await withServices { t, seen, client in
            let r = try await client.execute(uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"shop"}"#)) { try decode(RoomView.self, $0) }
            let cache = try #require(await t.hub.live.userProfiles)
            // A token with `sub` only: username falls back to the id, no avatar.
            let bare = AuthUser(userId: "u-1", username: "u-1")
            let first = try await t.hub.live.postChat(roomId: r.id, user: bare, message: "first")
            #expect(first.username == "u-1" && first.avatarUrl == nil, "a miss goes out with the token's claims")
            try await waitForLookups(cache)
            let second = try await t.hub.live.postChat(roomId: r.id, user: bare, message: "second")
            #expect(second.username == "Kim" && second.avatarUrl == "https://img.example/kim.png")
            // A name from the token wins; only the missing avatar is filled.
            let named = AuthUser(userId: "u-2", username: "Token name")
            _ = try await t.hub.live.postChat(roomId: r.id, user: named, message: "x")
            try await waitForLookups(cache)
            let filled = try await t.hub.live.postChat(roomId: r.id, user: named, message: "y")
            #expect(filled.username == "Token name" && filled.avatarUrl == "https://img.example/lee.png")
            let bareTwo = try await t.hub.live.postChat(roomId: r.id, user: AuthUser(userId: "u-2", username: "u-2"), message: "z")
            #expect(bareTwo.username == "Lee", "control characters are removed from looked-up names")
            // A slow user service never holds a line.
            let started = ContinuousClock.now
            for index in 0..<3 {
                let line = try await t.hub.live.postChat(roomId: r.id, user: AuthUser(userId: "u-slow", username: "u-slow"), message: "\(index)")
                #expect(line.username == "u-slow")
            }
            #expect(ContinuousClock.now - started < .milliseconds(1500), "three lines went out while the 2 s lookup was pending")
            // A token with a name and an avatar is never looked up.
            _ = try await t.hub.live.postChat(roomId: r.id, user: AuthUser(userId: "u-9", username: "Nine", avatarUrl: "https://a.example/9.png"), message: "n")
            try await waitForLookups(cache)
            let users = await seen.paths.filter { $0.hasPrefix("/v1/users/") }
            #expect(users == ["/v1/users/u-1", "/v1/users/u-2", "/v1/users/u-slow"], "one lookup per user, none for complete tokens")
            #expect(await seen.authorizations.allSatisfy { $0 == "Bearer service-token-1" })
            let history = try await client.execute(uri: "\(base)/rooms/\(r.id)/chats", method: .get) { try decode([LiveChatView].self, $0) }
            #expect(history.first { $0.message == "second" }?.username == "Kim", "the stored line carries the looked-up name")
        }
    }
}

/// The cache itself, without HTTP: a directory that counts and can be slow.
@Suite struct UserProfileCacheTests {
    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var instant = ContinuousClock.now
        func now() -> ContinuousClock.Instant { lock.withLock { instant } }
        func advance(_ by: Duration) { lock.withLock { instant += by } }
    }

    actor CountingDirectory: UserDirectory {
        var asked: [String] = []
        let delay: Duration
        /// While true, lookups wait for `release()`: a lookup in flight for as long as the test needs,
        /// however slow the machine is.
        private var held: Bool
        private var waiting: [CheckedContinuation<Void, Never>] = []
        init(delay: Duration = .zero, held: Bool = false) {
            self.delay = delay
            self.held = held
        }
        func profile(userId: String) async -> UserProfile? {
            asked.append(userId)
            if held { await withCheckedContinuation { waiting.append($0) } }
            if delay > .zero { try? await Task.sleep(for: delay) }
            return userId.hasPrefix("gone") ? nil : UserProfile(username: "name of \(userId)", avatarUrl: nil)
        }
        func release() {
            held = false
            for continuation in waiting { continuation.resume() }
            waiting = []
        }
    }

    func settle(_ cache: UserProfileCache) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while await cache.lookupsInFlight > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }

    @Test func entriesAreBoundedAndExpire() async throws {
        let clock = Clock()
        let directory = CountingDirectory()
        let cache = UserProfileCache(directory: directory, limits: .init(entries: 2, ttl: .seconds(60), failureTTL: .seconds(5)), now: { clock.now() })
        for id in ["a", "b", "c", "a", "b", "c"] {
            _ = await cache.fill(AuthUser(userId: id, username: id))
            try await settle(cache)
            #expect(await cache.count <= 2)
        }
        #expect(await directory.asked.count == 6, "two entries for three users: each is looked up again after its eviction")
        _ = await cache.fill(AuthUser(userId: "c", username: "c"))
        #expect(await directory.asked.count == 6, "the newest is still cached")
        #expect(await cache.fill(AuthUser(userId: "c", username: "c")).username == "name of c")
        clock.advance(.seconds(61))
        #expect(await cache.fill(AuthUser(userId: "c", username: "c")).username == "c", "expired: the claims, and a new lookup")
        try await settle(cache)
        #expect(await directory.asked.count == 7)
        // A failed lookup is not repeated at every line, but after `failureTTL`.
        for _ in 0..<3 {
            _ = await cache.fill(AuthUser(userId: "gone-1", username: "gone-1"))
            try await settle(cache)
        }
        #expect(await directory.asked.filter { $0 == "gone-1" }.count == 1)
        clock.advance(.seconds(6))
        _ = await cache.fill(AuthUser(userId: "gone-1", username: "gone-1"))
        try await settle(cache)
        #expect(await directory.asked.filter { $0 == "gone-1" }.count == 2)
    }

    @Test func lookupsInFlightAreBounded() async throws {
        let directory = CountingDirectory(held: true)
        let cache = UserProfileCache(directory: directory, limits: .init(entries: 100, ttl: .seconds(60), maxInFlight: 2))
        for index in 0..<10 {
            let user = AuthUser(userId: "u\(index)", username: "u\(index)")
            #expect(await cache.fill(user) == user)
            _ = await cache.fill(user)
        }
        #expect(await cache.lookupsInFlight == 2)
        await directory.release()
        try await settle(cache)
        #expect(await directory.asked.count == 2)
        #expect(await cache.lookupsStarted == 2)
    }

    @Test func thousandsOfUsersStayWithinTheBound() async throws {
        let cache = UserProfileCache(directory: CountingDirectory(), limits: .init(entries: 50, ttl: .seconds(60), maxInFlight: 1000))
        for index in 0..<2000 { await cache.prefetch(AuthUser(userId: "u\(index)", username: "u\(index)")) }
        try await settle(cache)
        #expect(await cache.count == 50)
    }
}
