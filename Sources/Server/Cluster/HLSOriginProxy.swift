import AsyncHTTPClient
import Foundation
import HLS
import Logging
import NIOCore
import NIOHTTP1
import Prometheus

/// HLS from any node (issue 20): a node asked for a room it does not package fetches the answer
/// from the room's origin (`HLSOriginDirectory`) over internal HTTP and forwards it byte for byte,
/// through `HLSProxyCache` (single flight, immutable parts and segments kept, playlists kept
/// briefly). URLs are the same on every node, so a CDN in front caches them as it does the
/// origin's (docs/cluster-hls.md explains why a proxy and not a redirect).
///
/// What goes to the origin: `GET {origin}/hls/{roomId}/{file}` with only the LL-HLS delivery
/// directives of the query (`_HLS_msn`, `_HLS_part`, `_HLS_skip`, RFC 8216bis §6.2.5.1), the header
/// `X-LiveHub-Proxied: 1` (a node never proxies a request carrying it, so a stale directory cannot
/// make a loop), and no client header (no cookie, no `Authorization`). What comes back: the
/// origin's status, `Content-Type` and `Cache-Control` (checked to be short, printable header
/// values), the body bounded by `maxBodyBytes`; CORS as for local answers; `X-LiveHub-Origin:
/// {nodeId}` and `X-LiveHub-Cache: HIT|SHARED|MISS`.
final class HLSOriginProxy: Sendable {
    struct Settings: Sendable {
        /// `LIVEHUB_HLS_PROXY_TIMEOUT`: connect plus answer of an origin request that does not wait.
        var timeout: Duration
        /// The longest the origin holds a request (blocking playlist reload, preload-hinted part,
        /// a playlist before the first segment): its blocking-reload multiplier × target duration.
        var originHold: Duration
        /// `LIVEHUB_HLS_MAX_SEGMENT_BYTES`: the largest answer taken from an origin.
        var maxBodyBytes: Int
        /// `LIVEHUB_HLS_PROXY_CACHE_BYTES`.
        var cacheBytes: Int
        /// How long a playlist answer is kept after it arrived.
        var playlistLifetime: Duration = .milliseconds(500)
    }

    static let proxiedHeader = "X-LiveHub-Proxied"
    static let originHeader = "X-LiveHub-Origin"
    static let cacheHeader = "X-LiveHub-Cache"
    /// The origin's headers that are forwarded (the rest are the proxy's own).
    static let forwardedHeaders = ["Content-Type", "Cache-Control"]
    static let directives = ["_HLS_msn", "_HLS_part", "_HLS_skip"]

    let settings: Settings
    let cache: HLSProxyCache
    private let directory: any HLSOriginDirectory
    private let client: HTTPClient
    private let logger: Logger
    private let proxiedRequests: Prometheus.Counter
    private let cacheHits: Prometheus.Counter
    private let playlistFetches: Prometheus.Counter
    private let mediaFetches: Prometheus.Counter
    private let originFailures: Prometheus.Counter

    init(directory: any HLSOriginDirectory, settings: Settings, metrics: LiveHubMetrics, logger: Logger) {
        self.directory = directory
        self.settings = settings
        self.logger = logger
        cache = HLSProxyCache(maxBytes: settings.cacheBytes, briefLifetime: settings.playlistLifetime)
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: TimeAmount(settings.timeout), read: TimeAmount(settings.timeout + settings.originHold))
        configuration.httpVersion = .http1Only
        // Held requests (blocking reloads) each keep a connection: allow many per origin.
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let registry = metrics.registry
        proxiedRequests = registry.makeCounter(
            name: "livehub_hls_proxy_requests_total", help: "HLS requests answered from another node's packager (cluster proxy)")
        cacheHits = registry.makeCounter(
            name: "livehub_hls_proxy_cache_hits_total", help: "Proxied HLS requests answered without an origin fetch of their own")
        playlistFetches = registry.makeCounter(
            name: "livehub_hls_proxy_origin_fetches_total", labels: [("kind", "playlist")], help: "HLS fetches from an origin node")
        mediaFetches = registry.makeCounter(
            name: "livehub_hls_proxy_origin_fetches_total", labels: [("kind", "media")], help: "HLS fetches from an origin node")
        originFailures = registry.makeCounter(
            name: "livehub_hls_proxy_origin_failures_total", help: "HLS origin fetches that failed (unreachable, timed out, too large)")
    }

    deinit {
        client.shutdown { _ in }
    }

    /// The origin's answer to `GET /hls/{roomId}/{file}?{query}`, or nil when no other live node is
    /// the room's origin (the caller then answers as a single node does).
    func answer(roomId: String, file: String, query: [String: String]) async -> HLSProxiedAnswer? {
        guard HLSService.isServable(roomId: roomId, file: file), let origin = await directory.origin(roomId: roomId) else { return nil }
        proxiedRequests.increment()
        let isImmutable = file.hasPrefix("init-") || file.hasPrefix("seg-") || file.hasPrefix("part-")
        // Init sections and finished segments are there or not; everything else may be held.
        let mayBeHeld = !(file.hasPrefix("init-") || file.hasPrefix("seg-"))
        let path = "/hls/\(roomId)/\(file)\(Self.directiveQuery(query))"
        let key = HLSProxyCache.Key(origin: origin.baseURL, path: path)
        let fetches = isImmutable ? mediaFetches : playlistFetches
        let (answer, source) = await cache.answer(for: key, lifetime: isImmutable ? .immutable : .brief) { [self] in
            fetches.increment()
            return await fetch(origin.baseURL + path, deadline: settings.timeout + (mayBeHeld ? settings.originHold : .zero))
        }
        if source != .miss { cacheHits.increment() }
        var forwarded = answer
        forwarded.headers.append((Self.originHeader, origin.nodeId))
        forwarded.headers.append((Self.cacheHeader, source.rawValue))
        return forwarded
    }

    /// The delivery directives of `query` in a fixed order, percent-encoded (`?…`, or empty).
    static func directiveQuery(_ query: [String: String]) -> String {
        let items = directives.compactMap { name -> String? in
            guard let value = query[name] else { return nil }
            let bounded = String(value.prefix(64))
            return "\(name)=\(bounded.addingPercentEncoding(withAllowedCharacters: ServiceLookupClient.segmentCharacters) ?? "")"
        }
        return items.isEmpty ? "" : "?" + items.joined(separator: "&")
    }

    private func fetch(_ url: String, deadline: Duration) async -> HLSProxiedAnswer {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: Self.proxiedHeader, value: "1")
        request.headers.add(name: "User-Agent", value: "LiveHub")
        do {
            let response = try await client.execute(request, timeout: TimeAmount(deadline), logger: logger)
            let body: ByteBuffer
            do {
                body = try await response.body.collect(upTo: settings.maxBodyBytes)
            } catch is NIOTooManyBytesError {
                originFailures.increment()
                return Self.error(502, "the origin's answer is larger than \(settings.maxBodyBytes) bytes")
            }
            let code = Int(response.status.code)
            guard (200...599).contains(code) else {
                originFailures.increment()
                return Self.error(502, "the origin answered HTTP \(code)")
            }
            var headers: [(String, String)] = []
            for name in Self.forwardedHeaders {
                if let value = response.headers.first(name: name), Self.isSafeHeaderValue(value) { headers.append((name, value)) }
            }
            return HLSProxiedAnswer(status: code, headers: headers + HLSService.cors, body: body)
        } catch let error as HTTPClientError
            where [.deadlineExceeded, .connectTimeout, .readTimeout, .getConnectionFromPoolTimeout].contains(error)
        {
            originFailures.increment()
            return Self.error(504, "the origin did not answer in time")
        } catch {
            originFailures.increment()
            logger.notice("HLS origin fetch failed", metadata: ["url": "\(url)", "error": "\(ServiceLookupClient.describe(error))"])
            return Self.error(502, "the origin could not be reached")
        }
    }

    /// A header value worth forwarding: at most 256 bytes of visible ASCII and spaces.
    static func isSafeHeaderValue(_ value: String) -> Bool {
        value.utf8.count <= 256 && value.utf8.allSatisfy { $0 == 0x20 || $0 == 0x09 || (0x21...0x7E).contains($0) }
    }

    static func error(_ status: Int, _ message: String) -> HLSProxiedAnswer {
        HLSProxiedAnswer(
            status: status,
            headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-cache")] + HLSService.cors,
            body: ByteBuffer(string: message + "\n"))
    }
}
