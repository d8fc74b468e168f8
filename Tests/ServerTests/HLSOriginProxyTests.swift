import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing

@testable import Server

/// What the origin of these tests was asked.
private final class OriginLog: Sendable {
    private let requests = Mutex<[(path: String, proxied: String?, cookie: String?)]>([])
    func record(_ request: Request) {
        let path = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        requests.withLock {
            $0.append((path, request.headers[.init("X-LiveHub-Proxied")!], request.headers[.cookie]))
        }
    }
    func count(_ path: String) -> Int { requests.withLock { $0.filter { $0.path == path }.count } }
    var all: [(path: String, proxied: String?, cookie: String?)] { requests.withLock { $0 } }
}

/// A real HTTP server standing in for a room's origin node: parts are 1,000 bytes and the file name
/// (after 400 ms for `part-9…`, else 50 ms), segments 5,000 bytes and the name; `media.m3u8` echoes its delivery
/// directives after 300 ms; anything else is 404.
private func originApp(_ log: OriginLog) -> some ApplicationProtocol {
    let router = Router()
    router.get("hls/:room/:file") { request, context -> Response in
        log.record(request)
        let file = context.parameters.get("file") ?? ""
        let query = request.uri.queryParameters
        if file.hasPrefix("part-") || file.hasPrefix("seg-") {
            try await Task.sleep(for: .milliseconds(file.hasPrefix("part-9") ? 400 : 50))
            let size = file.hasPrefix("seg-") ? 5000 : 1000
            return Response(
                status: .ok, headers: [.contentType: "video/mp4", .cacheControl: "public, max-age=3600, immutable"],
                body: .init(byteBuffer: ByteBuffer(string: String(repeating: String(file.prefix(1)), count: size) + file)))
        }
        if file == "media.m3u8" {
            try await Task.sleep(for: .milliseconds(300))
            let text = "#EXTM3U\n# msn=\(query["_HLS_msn"].map(String.init) ?? "-") part=\(query["_HLS_part"].map(String.init) ?? "-") other=\(query["other"].map(String.init) ?? "-")\n"
            return Response(
                status: .ok, headers: [.contentType: "application/vnd.apple.mpegurl", .cacheControl: "no-cache", .setCookie: "x=1"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return Response(status: .notFound, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "not found\n")))
    }
    return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
}

/// Every room's origin is the one test origin.
private struct FixedDirectory: HLSOriginDirectory {
    let origin: HLSOrigin?
    func origin(roomId: String) async -> HLSOrigin? { roomId == "gone" ? nil : origin }
}

private func withProxy(
    cacheBytes: Int = 1 << 20, maxBodyBytes: Int = 1 << 20, playlistLifetime: Duration = .milliseconds(500),
    _ body: @escaping @Sendable (HLSOriginProxy, OriginLog, LiveHubMetrics) async throws -> Void
) async throws {
    let log = OriginLog()
    try await originApp(log).test(.live) { origin in
        let port = try #require(origin.port)
        let metrics = LiveHubMetrics()
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let proxy = HLSOriginProxy(
            directory: FixedDirectory(origin: HLSOrigin(nodeId: "node-a", baseURL: "http://127.0.0.1:\(port)")),
            settings: .init(
                timeout: .seconds(5), originHold: .seconds(2), maxBodyBytes: maxBodyBytes, cacheBytes: cacheBytes,
                playlistLifetime: playlistLifetime),
            metrics: metrics, logger: logger)
        try await body(proxy, log, metrics)
    }
}

private func header(_ answer: HLSProxiedAnswer?, _ name: String) -> String? {
    answer?.headers.first { $0.0.lowercased() == name.lowercased() }?.1
}

private func text(_ answer: HLSProxiedAnswer?) -> String {
    answer.map { String(buffer: $0.body) } ?? ""
}

@Suite("HLS origin proxy (cluster)")
struct HLSOriginProxyTests {
    @Test func concurrentRequestsForOnePartShareOneOriginFetch() async throws {
        try await withProxy { proxy, log, metrics in
            let answers = await withTaskGroup(of: HLSProxiedAnswer?.self) { group in
                for _ in 0..<50 {
                    group.addTask { await proxy.answer(roomId: "r1", file: "part-9-0.m4s", query: [:]) }
                }
                var all: [HLSProxiedAnswer?] = []
                for await answer in group { all.append(answer) }
                return all
            }
            #expect(log.count("/hls/r1/part-9-0.m4s") == 1)
            #expect(answers.allSatisfy { $0?.status == 200 && text($0).hasSuffix("part-9-0.m4s") && $0?.body.readableBytes == 1000 + 12 })
            #expect(answers.filter { header($0, "X-LiveHub-Cache") == "MISS" }.count == 1)
            #expect(answers.filter { header($0, "X-LiveHub-Cache") == "SHARED" }.count == 49)
            #expect(answers.allSatisfy { header($0, "X-LiveHub-Origin") == "node-a" && header($0, "Content-Type") == "video/mp4" })
            #expect(answers.allSatisfy { header($0, "Cache-Control") == "public, max-age=3600, immutable" })
            #expect(answers.allSatisfy { header($0, "Access-Control-Allow-Origin") == "*" })
            // Immutable: kept after the flight.
            let later = await proxy.answer(roomId: "r1", file: "part-9-0.m4s", query: [:])
            #expect(header(later, "X-LiveHub-Cache") == "HIT" && text(later) == text(answers[0]))
            #expect(log.count("/hls/r1/part-9-0.m4s") == 1)
            #expect(log.all.allSatisfy { $0.proxied == "1" && $0.cookie == nil })
            let rendered = String(decoding: metrics.render(), as: UTF8.self)
            #expect(rendered.contains("livehub_hls_proxy_requests_total 51"))
            #expect(rendered.contains("livehub_hls_proxy_cache_hits_total 50"))
            #expect(rendered.contains(#"livehub_hls_proxy_origin_fetches_total{kind="media"} 1"#))
        }
    }

    @Test func theCacheKeepsAtMostItsBytesDroppingTheLeastRecentlyUsed() async throws {
        // Room for two segments (5 KB and headers each), not three.
        try await withProxy(cacheBytes: 12_000) { proxy, log, _ in
            for file in ["seg-1.m4s", "seg-2.m4s", "seg-3.m4s", "seg-2.m4s", "seg-3.m4s", "seg-1.m4s", "seg-3.m4s", "seg-2.m4s"] {
                let answer = await proxy.answer(roomId: "r1", file: file, query: [:])
                #expect(answer?.status == 200 && answer?.body.readableBytes == 5000 + file.utf8.count)
                #expect(proxy.cache.immutableBytes <= 12_000)
            }
            // seg-1 dropped when seg-3 came; seg-2, least recently used, when seg-1 came back.
            #expect(log.count("/hls/r1/seg-1.m4s") == 2)
            #expect(log.count("/hls/r1/seg-2.m4s") == 2)
            #expect(log.count("/hls/r1/seg-3.m4s") == 1)
            #expect(proxy.cache.counts.immutable == 2)
        }
        // Larger than the whole cache: served, never kept; a smaller part is kept.
        try await withProxy(cacheBytes: 2_000) { proxy, log, _ in
            for _ in 0..<2 {
                #expect(await proxy.answer(roomId: "r1", file: "seg-4.m4s", query: [:])?.status == 200)
                #expect(await proxy.answer(roomId: "r1", file: "part-4-0.m4s", query: [:])?.status == 200)
            }
            #expect(log.count("/hls/r1/seg-4.m4s") == 2)
            #expect(log.count("/hls/r1/part-4-0.m4s") == 1)
        }
    }

    @Test func blockingReloadsAreSharedPerDirectiveAndPlaylistsKeptBriefly() async throws {
        try await withProxy(playlistLifetime: .milliseconds(300)) { proxy, log, _ in
            let answers = await withTaskGroup(of: (Int, HLSProxiedAnswer?).self) { group in
                for i in 0..<30 {
                    // `other` is not a delivery directive: dropped, so it does not split the flight.
                    let query = ["_HLS_msn": "5", "_HLS_part": String(i % 3), "other": String(i)]
                    group.addTask { (i % 3, await proxy.answer(roomId: "r1", file: "media.m3u8", query: query)) }
                }
                var all: [(Int, HLSProxiedAnswer?)] = []
                for await answer in group { all.append(answer) }
                return all
            }
            for part in 0..<3 {
                #expect(log.count("/hls/r1/media.m3u8?_HLS_msn=5&_HLS_part=\(part)") == 1)
            }
            #expect(log.all.count == 3)
            #expect(answers.allSatisfy { text($0.1) == "#EXTM3U\n# msn=5 part=\($0.0) other=-\n" })
            #expect(answers.allSatisfy { header($0.1, "Content-Type") == "application/vnd.apple.mpegurl" && header($0.1, "Set-Cookie") == nil })
            // Kept briefly after the flight, then fetched again.
            let soon = await proxy.answer(roomId: "r1", file: "media.m3u8", query: ["_HLS_msn": "5", "_HLS_part": "0"])
            #expect(header(soon, "X-LiveHub-Cache") == "HIT")
            try await Task.sleep(for: .milliseconds(400))
            let late = await proxy.answer(roomId: "r1", file: "media.m3u8", query: ["_HLS_msn": "5", "_HLS_part": "0"])
            #expect(header(late, "X-LiveHub-Cache") == "MISS")
            #expect(log.count("/hls/r1/media.m3u8?_HLS_msn=5&_HLS_part=0") == 2)
        }
    }

    @Test func failuresAreForwardedAndNeverKept() async throws {
        try await withProxy(maxBodyBytes: 2_000) { proxy, log, metrics in
            // 404 from the origin: forwarded, fetched again next time.
            for _ in 0..<2 {
                let missing = await proxy.answer(roomId: "r1", file: "init-3.mp4", query: [:])
                #expect(missing?.status == 404 && header(missing, "X-LiveHub-Origin") == "node-a")
            }
            #expect(log.count("/hls/r1/init-3.mp4") == 2)
            // Larger than LIVEHUB_HLS_MAX_SEGMENT_BYTES: 502, not kept.
            #expect(await proxy.answer(roomId: "r1", file: "seg-8.m4s", query: [:])?.status == 502)
            // Not a file of the URL table, or a room without a remote origin: not proxied at all.
            #expect(await proxy.answer(roomId: "r1", file: "../etc/passwd", query: [:]) == nil)
            #expect(await proxy.answer(roomId: "r 1", file: "media.m3u8", query: [:]) == nil)
            #expect(await proxy.answer(roomId: "gone", file: "media.m3u8", query: [:]) == nil)
            #expect(log.all.count == 3)
            #expect(String(decoding: metrics.render(), as: UTF8.self).contains("livehub_hls_proxy_origin_failures_total 1"))
        }
        // An origin that is not there: 502 at once.
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let unreachable = HLSOriginProxy(
            directory: FixedDirectory(origin: HLSOrigin(nodeId: "node-x", baseURL: "http://127.0.0.1:1")),
            settings: .init(timeout: .seconds(2), originHold: .seconds(1), maxBodyBytes: 1000, cacheBytes: 1000),
            metrics: LiveHubMetrics(), logger: logger)
        #expect(await unreachable.answer(roomId: "r1", file: "seg-1.m4s", query: [:])?.status == 502)
    }
}

@Suite("HLS origin directory (PostgreSQL)")
struct PostgresHLSOriginDirectoryTests {
    @Test(.enabled(if: TestPostgres.isAvailable))
    func findsTheLeaseHolderWhenItIsAnotherLiveNode() async throws {
        try await TestPostgres.withDatabase { database in
            let client = database.client
            try await client.query(
                """
                INSERT INTO livehub_node (node_id, advertise_url, heartbeat_at) VALUES
                ('node-a', 'http://10.0.0.1:8080/', now()), ('node-b', 'http://10.0.0.2:8080', now()),
                ('node-dead', 'http://10.0.0.3:8080', now() - interval '1 hour'), ('node-odd', 'ftp://x', now())
                """)
            try await client.query(
                """
                INSERT INTO livehub_stream_lease (room_id, node_id, publisher_session) VALUES
                ('r-a', 'node-a', 1), ('r-b', 'node-b', 2), ('r-dead', 'node-dead', 3), ('r-odd', 'node-odd', 4)
                """)
            let directory = PostgresHLSOriginDirectory(
                client: client, nodeId: "node-b", refreshInterval: .milliseconds(200), logger: Logger(label: "test"))
            #expect(await directory.origin(roomId: "r-a") == HLSOrigin(nodeId: "node-a", baseURL: "http://10.0.0.1:8080"))
            #expect(await directory.origin(roomId: "r-b") == nil)  // this node's own
            #expect(await directory.origin(roomId: "r-dead") == nil)
            #expect(await directory.origin(roomId: "r-odd") == nil)
            #expect(await directory.origin(roomId: "nobody") == nil)
            // The lease moves: seen after the refresh interval.
            try await client.query("UPDATE livehub_stream_lease SET node_id = 'node-dead' WHERE room_id = 'r-a'")
            try await Task.sleep(for: .milliseconds(300))
            #expect(await directory.origin(roomId: "r-a") == nil)
        }
    }
}

@Suite("HLS proxy configuration")
struct HLSProxyConfigurationTests {
    @Test func proxyLimitsAreReadAndRangeChecked() throws {
        let defaults = try LiveHubConfiguration.fromEnvironment([:])
        #expect(defaults.hlsProxyCacheBytes == 256 << 20 && defaults.hlsProxyTimeout == .seconds(5))
        let set = try LiveHubConfiguration.fromEnvironment(["LIVEHUB_HLS_PROXY_CACHE_BYTES": "0", "LIVEHUB_HLS_PROXY_TIMEOUT": "1.5"])
        #expect(set.hlsProxyCacheBytes == 0 && set.hlsProxyTimeout == .milliseconds(1500))
        for (name, value) in [
            ("LIVEHUB_HLS_PROXY_CACHE_BYTES", "-1"), ("LIVEHUB_HLS_PROXY_CACHE_BYTES", "99999999999999999999"),
            ("LIVEHUB_HLS_PROXY_TIMEOUT", "0"), ("LIVEHUB_HLS_PROXY_TIMEOUT", "1e308"), ("LIVEHUB_HLS_PROXY_TIMEOUT", "nan"),
        ] {
            #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
    }

    @Test func aCacheOfZeroBytesStillSharesOneFlight() async throws {
        try await withProxy(cacheBytes: 0) { proxy, log, _ in
            async let first = proxy.answer(roomId: "r1", file: "part-9-1.m4s", query: [:])
            async let second = proxy.answer(roomId: "r1", file: "part-9-1.m4s", query: [:])
            let answers = await [first, second]
            #expect(answers.allSatisfy { $0?.status == 200 })
            #expect(log.count("/hls/r1/part-9-1.m4s") == 1)
            _ = await proxy.answer(roomId: "r1", file: "part-9-1.m4s", query: [:])
            #expect(log.count("/hls/r1/part-9-1.m4s") == 2)
            #expect(proxy.cache.immutableBytes == 0)
        }
    }
}
