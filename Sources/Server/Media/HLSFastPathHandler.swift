import Foundation
import Synchronization
import HLS
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers `GET`/`HEAD /hls/{roomId}/{file}` on the connection's event loop when the answer needs
/// no waiting (`HLSService.respondNow`): a live playlist, a segment, a part that exists, an init
/// section, a 404. Everything else (blocking reloads, preload-hinted parts, thumbnails, every other
/// route) goes on to Hummingbird's router.
///
/// Why: a player polls the playlist and fetches parts many times a second, and each Hummingbird
/// request costs a task and two thread hops; perf put those hops at ~41 % of the server's CPU under
/// `wrk` on a playlist, against 6 % for our own HLS code.
///
/// Sits in Hummingbird's HTTP/1 pipeline after the HTTP-types codec (`additionalChannelHandlers`).
/// Responses stay in request order: while a request passed on is unanswered (pipelining), later
/// requests are passed on too. Headers match the router's: the HLS headers, CORS as
/// `CORSPolicyMiddleware` sets it, `Content-Length`, `Date`, `Server`; the request is counted in
/// `livehub_http_requests_total` under the same route label.
final class HLSFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let route = "/hls/{roomId}/{file}"

    private let hls: HLSService
    private let cors: CORSPolicyMiddleware
    private let metrics: LiveHubMetrics
    private let serverName: String
    /// The body and end of a request answered here are dropped.
    private var answeredRequestOpen = false
    /// Requests passed on whose response has not ended yet.
    private var passedOnUnanswered = 0

    init(hls: HLSService, cors: CORSPolicyMiddleware, metrics: LiveHubMetrics, serverName: String) {
        self.hls = hls
        self.cors = cors
        self.metrics = metrics
        self.serverName = serverName
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            if passedOnUnanswered == 0, let response = answer(request) {
                answeredRequestOpen = true
                write(response, for: request, context: context)
                return
            }
            passedOnUnanswered += 1
            context.fireChannelRead(data)
        case .body:
            if !answeredRequestOpen { context.fireChannelRead(data) }
        case .end:
            if answeredRequestOpen {
                answeredRequestOpen = false
            } else {
                context.fireChannelRead(data)
            }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { passedOnUnanswered = max(0, passedOnUnanswered - 1) }
        context.write(data, promise: promise)
    }

    /// The response, or nil to pass the request on.
    private func answer(_ request: HTTPRequest) -> HLSResponse? {
        guard request.method == .get || request.method == .head, let target = request.path,
            let (roomId, file, query) = Self.parse(target)
        else { return nil }
        return hls.respondNow(roomId: roomId, file: file, query: query)
    }

    private func write(_ answer: HLSResponse, for request: HTTPRequest, context: ChannelHandlerContext) {
        var fields = HTTPFields()
        fields.reserveCapacity(answer.headers.count + 6)
        for (name, value) in answer.headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        cors.apply(to: &fields, origin: request.headerFields[.origin])
        fields[.contentLength] = String(answer.body.readableBytes)
        fields[.date] = HTTPDateCache.current()
        fields[.server] = serverName
        let close = request.headerFields[.connection]?.lowercased() == "close"
        if close { fields[.connection] = "close" }
        metrics.recordRequest(route: Self.route, method: request.method.rawValue, status: answer.status)

        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: answer.status), headerFields: fields))), promise: nil)
        if request.method != .head && answer.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(answer.body)), promise: nil)
        }
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// `/hls/{roomId}/{file}[?query]` → its parts; nil for any other path, or for anything
    /// percent-encoded (the router decodes those).
    static func parse(_ target: String) -> (roomId: String, file: String, query: [String: String])? {
        guard target.hasPrefix("/hls/"), !target.utf8.contains(UInt8(ascii: "%")) else { return nil }
        let pathEnd = target.firstIndex(of: "?") ?? target.endIndex
        let components = target[target.index(target.startIndex, offsetBy: 5)..<pathEnd].split(separator: "/", omittingEmptySubsequences: false)
        guard components.count == 2, !components[0].isEmpty, !components[1].isEmpty else { return nil }
        var query: [String: String] = [:]
        if pathEnd < target.endIndex {
            let queryString = target[target.index(after: pathEnd)...]
            guard !queryString.utf8.contains(UInt8(ascii: "+")) else { return nil }
            for pair in queryString.split(separator: "&") {
                let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(keyValue[0])] = keyValue.count > 1 ? String(keyValue[1]) : ""
            }
        }
        return (String(components[0]), String(components[1]), query)
    }
}

/// RFC 9110 §5.6.7 IMF-fixdate, formatted once per second.
enum HTTPDateCache {
    private struct Cached: Sendable {
        var second: Int
        var text: String
    }

    private static let cached = Mutex(Cached(second: -1, text: ""))

    static func current() -> String {
        var now = time(nil)
        return cached.withLock { cached in
            if cached.second == now { return cached.text }
            var parts = tm()
            gmtime_r(&now, &parts)
            var buffer = [CChar](repeating: 0, count: 64)
            let length = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
            cached = Cached(second: now, text: String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
            return cached.text
        }
    }
}
