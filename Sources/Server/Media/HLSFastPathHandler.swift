import Foundation
import HLS
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Prometheus
import Synchronization

/// Answers `GET`/`HEAD /hls/{roomId}/{file}` on the connection's event loop when the answer needs
/// no waiting (`HLSService.respondNow`): a live playlist, a segment, a part that exists, an init
/// section, a 404. Everything else (blocking reloads, preload-hinted parts, thumbnails, every other
/// route) goes on to Hummingbird's router.
///
/// Why: a player polls the playlist and fetches parts many times a second. Through the router each
/// request cost a task and two thread hops (perf: ~41 % of the server's CPU under `wrk` on a
/// playlist, against 6 % for our HLS code), and converting to and from swift-http-types and
/// re-encoding headers cost as much again.
///
/// Two handlers share one `State` per connection:
/// - `HLSFastPathHandler` is what Hummingbird installs (`additionalChannelHandlers`, after its
///   HTTP-types codec). When added, it puts an `HLSRequestAnswerer` right behind NIO's HTTP/1
///   decoder; afterwards it only counts the requests that reached the router and their responses.
/// - `HLSRequestAnswerer` sees decoded NIO HTTP/1 requests and writes its answers as ready-encoded
///   bytes through the response encoder's context, i.e. straight to the socket side of it. While a request passed on is unanswered (pipelining), later
///   requests are passed on too, so responses stay in request order.
///
/// Headers match the router's: the HLS headers, CORS as `CORSPolicyMiddleware` sets it,
/// `Content-Length`, `Date`, `Server`; the request is counted in `livehub_http_requests_total` under
/// the router's route label.
final class HLSFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let route = "/hls/{roomId}/{file}"

    /// Per connection; touched on its event loop only.
    final class State {
        /// Requests passed on to the router whose response has not ended yet.
        var passedOnUnanswered = 0
    }

    private let state = State()
    private let answerer: HLSRequestAnswerer
    private let logger: Logger

    /// - Parameter localRoomsOnly: pass on requests for rooms without a local stream (cluster mode:
    ///   the router's `HLSController` fetches them from their origin node).
    init(hls: HLSService, cors: CORSPolicyMiddleware, metrics: LiveHubMetrics, serverName: String, localRoomsOnly: Bool = false, logger: Logger) {
        self.answerer = HLSRequestAnswerer(
            hls: hls, cors: cors, metrics: metrics, serverName: serverName, localRoomsOnly: localRoomsOnly, state: state)
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        do {
            let decoder = try context.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            answerer.encoderContext = try context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
            try context.pipeline.syncOperations.addHandler(answerer, position: .after(decoder))
        } catch {
            // Not the pipeline this was written for: every request then takes the router.
            logger.warning("HLS fast path not installed", metadata: ["error": "\(error)"])
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { state.passedOnUnanswered += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { state.passedOnUnanswered = max(0, state.passedOnUnanswered - 1) }
        context.write(data, promise: promise)
    }
}

/// The half of the HLS fast path that answers (see `HLSFastPathHandler`).
final class HLSRequestAnswerer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let hls: HLSService
    private let cors: CORSPolicyMiddleware
    private let metrics: LiveHubMetrics
    private let serverName: String
    private let localRoomsOnly: Bool
    private let state: HLSFastPathHandler.State
    /// The body and end of a request answered here are dropped.
    private var answeredRequestOpen = false
    /// Something was passed on since the last read completed: the handlers after this one get
    /// `channelReadComplete` only then (for a socket read answered here they saw nothing; under
    /// `wrk` on a playlist that event's walk through the rest of the pipeline was ~2 % of the CPU).
    private var passedOnSinceReadComplete = false
    /// Writes through this context go to the handlers between NIO's HTTP/1 response encoder and the
    /// socket: encoded bytes, not response parts.
    var encoderContext: ChannelHandlerContext?
    private var counters: [Int: Prometheus.Counter] = [:]
    /// Encoded status lines and header sets (`headerBlock(for:)`), latest few.
    private var headerBlocks: [(status: Int, address: UInt, headers: [(String, String)], block: ByteBuffer)] = []
    /// Bodies up to this size are copied behind the header; larger ones are written as they are.
    static let inlineBodyLimit = 16 * 1024

    init(
        hls: HLSService, cors: CORSPolicyMiddleware, metrics: LiveHubMetrics, serverName: String, localRoomsOnly: Bool = false,
        state: HLSFastPathHandler.State
    ) {
        self.hls = hls
        self.localRoomsOnly = localRoomsOnly
        self.cors = cors
        self.metrics = metrics
        self.serverName = serverName
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if state.passedOnUnanswered == 0, let encoderContext, head.method == .GET || head.method == .HEAD,
                let (roomId, file, query) = Self.parse(head.uri),
                !localRoomsOnly || hls.hasStream(roomId: roomId),
                let answer = hls.respondNow(roomId: roomId, file: file, query: query)
            {
                answeredRequestOpen = true
                write(answer, for: head, context: encoderContext)
                return
            }
            passOn(data, context: context)
        case .body:
            if !answeredRequestOpen { passOn(data, context: context) }
        case .end:
            if answeredRequestOpen {
                answeredRequestOpen = false
            } else {
                passOn(data, context: context)
            }
        }
    }

    private func passOn(_ data: NIOAny, context: ChannelHandlerContext) {
        passedOnSinceReadComplete = true
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard passedOnSinceReadComplete else { return }
        passedOnSinceReadComplete = false
        context.fireChannelReadComplete()
    }

    private func write(_ answer: HLSResponse, for head: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = head.isKeepAlive
        let sendsBody = head.method != .HEAD
        // Small heap bodies (playlists, parts of a low-bitrate stream) go out in the header's buffer:
        // one write, one copy of a few hundred bytes. Larger ones are written as they are, a second
        // iovec of the same writev. Finished segments and their parts are sent from their memory file
        // with sendfile(2), so the kernel does not copy their bytes from user memory either.
        let length = answer.content.count
        var heapBody: ByteBuffer?
        var fileBody: (file: HLSMemoryFile, offset: Int)?
        switch answer.content {
        case .bytes(let bytes): heapBody = bytes
        case .file(let file, let offset, _): fileBody = (file, offset)
        }
        let bodyInline = sendsBody && heapBody != nil && length <= Self.inlineBodyLimit
        var out = context.channel.allocator.buffer(capacity: 320 + (bodyInline ? length : 0))
        let origin = head.headers.first(name: "origin")
        if let allowedOrigin = cors.allowedOrigin(for: origin) {
            Self.writeStatusAndHeaders(answer, allowedOrigin: allowedOrigin, into: &out)
        } else {
            out.writeImmutableBuffer(headerBlock(for: answer))
        }
        out.writeStaticString("Content-Length: ")
        out.writeString(String(length))
        out.writeStaticString("\r\nDate: ")
        out.writeString(HTTPDateCache.current())
        out.writeStaticString("\r\nServer: ")
        out.writeString(serverName)
        if !keepAlive {
            out.writeStaticString("\r\nConnection: close")
        } else if head.version == .http1_0 {
            out.writeStaticString("\r\nConnection: keep-alive")
        }
        out.writeStaticString("\r\n\r\n")
        countRequest(method: head.method, status: answer.status)
        let written: EventLoopFuture<Void>
        if sendsBody, let fileBody {
            context.write(NIOAny(IOData.byteBuffer(out)), promise: nil)
            // A handle of its own per response: NIO allows one access at a time per NIOFileHandle,
            // and the same segment is sent on many event loops at once. It borrows the memory file's
            // descriptor and gives it back (without closing) once the write is done; the closure
            // keeps the file, and so the descriptor, alive until then.
            let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fileBody.file.descriptor)
            let region = FileRegion(fileHandle: handle, readerIndex: fileBody.offset, endIndex: fileBody.offset + length)
            written = context.writeAndFlush(NIOAny(IOData.fileRegion(region)))
            written.whenComplete { [file = fileBody.file] _ in
                _ = try? handle.takeDescriptorOwnership()
                withExtendedLifetime(file) {}
            }
        } else {
            if bodyInline, var body = heapBody {
                out.writeBuffer(&body)
            } else if sendsBody, let heapBody {
                context.write(NIOAny(IOData.byteBuffer(out)), promise: nil)
                out = heapBody
            }
            if keepAlive {
                context.writeAndFlush(NIOAny(IOData.byteBuffer(out)), promise: nil)
                return
            }
            written = context.writeAndFlush(NIOAny(IOData.byteBuffer(out)))
        }
        if !keepAlive { written.whenComplete { _ in context.close(promise: nil) } }
    }

    /// The status line and `answer`'s headers (no `Content-Length` and later), encoded once per
    /// status and header set on this connection. HLSService's header sets are static arrays, so
    /// the array's address names one (the kept array keeps the address from being reused).
    private func headerBlock(for answer: HLSResponse) -> ByteBuffer {
        let address = answer.headers.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        for entry in headerBlocks where entry.status == answer.status && entry.address == address {
            return entry.block
        }
        var block = ByteBuffer()
        Self.writeStatusAndHeaders(answer, allowedOrigin: nil, into: &block)
        if headerBlocks.count == 8 { headerBlocks.removeFirst() }
        headerBlocks.append((answer.status, address, answer.headers, block))
        return block
    }

    private static func writeStatusAndHeaders(_ answer: HLSResponse, allowedOrigin: String?, into out: inout ByteBuffer) {
        out.writeString("HTTP/1.1 \(answer.status) \(HTTPResponseStatus(statusCode: answer.status).reasonPhrase)\r\n")
        for (name, value) in answer.headers {
            out.writeString(name)
            out.writeStaticString(": ")
            if let allowedOrigin, name == "Access-Control-Allow-Origin" {
                out.writeString(allowedOrigin)
            } else {
                out.writeString(value)
            }
            out.writeStaticString("\r\n")
        }
        if allowedOrigin != nil { out.writeStaticString("Vary: Origin\r\n") }
    }

    /// `livehub_http_requests_total`, with the counters this connection used kept at hand.
    private func countRequest(method: HTTPMethod, status: Int) {
        let key = status * 2 + (method == .HEAD ? 1 : 0)
        if let counter = counters[key] {
            counter.increment()
        } else {
            let counter = metrics.requestCounter(route: HLSFastPathHandler.route, method: method.rawValue, status: status)
            counters[key] = counter
            counter.increment()
        }
    }

    /// `/hls/{roomId}/{file}[?query]` → its parts; nil for any other path, or for anything
    /// percent-encoded or with `+` (the router decodes those).
    static func parse(_ target: String) -> (roomId: String, file: String, query: [String: String])? {
        let whole = target.utf8
        guard whole.starts(with: "/hls/".utf8), !whole.contains(UInt8(ascii: "%")), !whole.contains(UInt8(ascii: "+")) else { return nil }
        let utf8 = target[target.utf8.index(target.startIndex, offsetBy: 5)...].utf8
        let pathEnd = utf8.firstIndex(of: UInt8(ascii: "?")) ?? utf8.endIndex
        guard let slash = utf8[..<pathEnd].firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let roomId = Substring(utf8[utf8.startIndex..<slash])
        let file = Substring(utf8[utf8.index(after: slash)..<pathEnd])
        guard !roomId.isEmpty, !file.isEmpty, !file.utf8.contains(UInt8(ascii: "/")) else { return nil }
        var query: [String: String] = [:]
        if pathEnd < utf8.endIndex {
            for pair in utf8[utf8.index(after: pathEnd)...].split(separator: UInt8(ascii: "&")) {
                if let equals = pair.firstIndex(of: UInt8(ascii: "=")) {
                    query[String(Substring(pair[..<equals]))] = String(Substring(pair[pair.index(after: equals)...]))
                } else {
                    query[String(Substring(pair))] = ""
                }
            }
        }
        return (String(roomId), String(file), query)
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
