import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The limits of the HTTP listener on what one client can make the server hold (issue 17): idle
/// connections and connections per address (the request head's size is the HTTP decoder's
/// `maxHeaderListSize`, answered by `HTTPHeaderLimitHandler`). Set from `LiveHubConfiguration`.
struct HTTPConnectionLimits: Sendable {
    /// A connection with no bytes read or written for this long is closed (`HTTPIdleTimeoutHandler`).
    var idleTimeout: TimeAmount?
    /// Open HTTP connections (WebSockets not counted) per client address (nil: no limit).
    var plainConnectionsPerAddress: ConnectionsPerAddress?
    /// Open WebSockets (STOMP and Socket.IO) per client address (nil: no limit).
    var webSocketsPerAddress: ConnectionsPerAddress?

    init(
        idleTimeout: TimeAmount? = .seconds(60),
        plainConnectionsPerAddress: ConnectionsPerAddress? = nil, webSocketsPerAddress: ConnectionsPerAddress? = nil
    ) {
        self.idleTimeout = idleTimeout
        self.plainConnectionsPerAddress = plainConnectionsPerAddress
        self.webSocketsPerAddress = webSocketsPerAddress
    }

    /// `{"error": code, "message": text}` with `Connection: close`, as the API's errors look.
    static func errorResponse(status: HTTPResponseStatus, code: String, message: String) -> (HTTPResponseHead, ByteBuffer) {
        var body = ByteBuffer()
        body.writeString("{\"error\":\"\(code)\",\"message\":\"\(message)\"}")
        let head = HTTPResponseHead(
            version: .http1_1, status: status,
            headers: [
                "Connection": "close", "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
                "Content-Length": String(body.readableBytes),
            ])
        return (head, body)
    }
}

/// Open connections per client address, each at most `limit`. The address is the TCP peer's: behind
/// a reverse proxy every client has the proxy's address (raise the limit or set it to 0 there,
/// and limit per client at the proxy).
final class ConnectionsPerAddress: Sendable {
    let limit: Int
    /// What is counted, for log lines ("HTTP connections", "WebSockets").
    let what: String
    private let logger: Logger
    private struct State {
        var open: [String: Int] = [:]
        var refusedSinceLog = 0
        var lastLog: NIODeadline = .distantPast
    }
    private let state = Mutex(State())

    init(limit: Int, what: String, logger: Logger) {
        self.limit = limit
        self.what = what
        self.logger = logger
    }

    /// The key for a peer address: its IP (an IPv4-mapped IPv6 address as IPv4); nil for a Unix
    /// socket or an unknown peer (not limited).
    static func key(for address: SocketAddress?) -> String? {
        guard let ip = address?.ipAddress else { return nil }
        if ip.hasPrefix("::ffff:"), ip.contains(".") { return String(ip.dropFirst(7)) }
        return ip
    }

    /// Counts one more connection from `key`, unless it already has `limit`.
    func acquire(_ key: String) -> Bool {
        let (admitted, log): (Bool, Int?) = self.state.withLock { s in
            let open = s.open[key, default: 0]
            if open < self.limit {
                s.open[key] = open + 1
                return (true, nil)
            }
            // One log line per 10 s at most: a flood of refusals must not become a flood of logs.
            s.refusedSinceLog += 1
            let now = NIODeadline.now()
            guard now - s.lastLog >= .seconds(10) else { return (false, nil) }
            defer { s.refusedSinceLog = 0 }
            s.lastLog = now
            return (false, s.refusedSinceLog)
        }
        if let log {
            self.logger.notice(
                "refused \(self.what) over the per-address limit",
                metadata: ["address": "\(key)", "limit": "\(self.limit)", "refused": "\(log) since the last such line"])
        }
        return admitted
    }

    func release(_ key: String) {
        self.state.withLock { s in
            guard let open = s.open[key] else { return }
            if open <= 1 { s.open.removeValue(forKey: key) } else { s.open[key] = open - 1 }
        }
    }

    /// Open connections counted for `key` (tests).
    func count(_ key: String) -> Int { self.state.withLock { $0.open[key] ?? 0 } }
    /// Addresses with an open connection (tests: nothing is kept for addresses that left).
    var addresses: Int { self.state.withLock { $0.open.count } }
}

/// Which per-address count a connection holds (plain HTTP, then maybe a WebSocket); released when
/// the channel closes. Event loop only.
final class ConnectionSlot {
    let key: String
    private(set) var held: ConnectionsPerAddress?

    init(key: String, held: ConnectionsPerAddress?) {
        self.key = key
        self.held = held
    }

    /// Moves to `counter` if it has room for the address (the previous count is released).
    func move(to counter: ConnectionsPerAddress) -> Bool {
        guard counter.acquire(self.key) else { return false }
        self.held?.release(self.key)
        self.held = counter
        return true
    }

    func release() {
        self.held?.release(self.key)
        self.held = nil
    }
}

/// What the HTTP handlers of one connection share about its requests. Event loop only.
final class HTTPExchangeState {
    /// Requests received in full, and responses ended, through the router (responses come in
    /// request order; one may end before its request did, e.g. a 413 before the body).
    var requestsReceived = 0
    var responsesEnded = 0

    /// A whole request waits for its response: the server, not the client, is the slow one (an
    /// LL-HLS blocking reload waits up to three segments).
    var awaitingResponse: Bool { self.requestsReceived > self.responsesEnded }
}

/// Closes a connection that has neither read nor written a byte for `timeout`: a client that
/// connects and sends nothing, stops in the middle of a request head or body, or keeps an idle
/// keep-alive connection. First in the pipeline, so it sees every byte, whichever handler answers
/// (the HLS fast path writes below Hummingbird's handlers). Not idle: bytes still waiting in the
/// socket's write buffer (a large segment to a slow client), or a whole request waiting for its
/// response (`HTTPExchangeState`). Removed when the connection becomes a WebSocket (the hub has its
/// own liveness check). One timer per connection, re-armed only when it fires, and one clock read
/// per read or write.
final class HTTPIdleTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    let timeout: TimeAmount
    let exchange: HTTPExchangeState
    private var lastActivity: NIODeadline = .distantPast
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, exchange: HTTPExchangeState = HTTPExchangeState()) {
        self.timeout = timeout
        self.exchange = exchange
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.start(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.lastActivity = context.eventLoop.now
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.lastActivity = context.eventLoop.now
        context.write(data, promise: promise)
    }

    private func start(context: ChannelHandlerContext) {
        guard self.timer == nil else { return }
        self.lastActivity = context.eventLoop.now
        self.schedule(context: context, at: self.lastActivity + self.timeout)
    }

    private func schedule(context: ChannelHandlerContext, at deadline: NIODeadline) {
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.fired(context: context)
        }
    }

    private func fired(context: ChannelHandlerContext) {
        self.timer = nil
        guard context.channel.isActive else { return }
        let now = context.eventLoop.now
        if now < self.lastActivity + self.timeout {
            self.schedule(context: context, at: self.lastActivity + self.timeout)
            return
        }
        let pending = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        if pending > 0 || self.exchange.awaitingResponse {
            self.lastActivity = now
            self.schedule(context: context, at: now + self.timeout)
            return
        }
        context.close(promise: nil)
    }
}

/// Answers a request whose line and header fields exceed the decoder's limit with 431 (RFC 6585 §5)
/// and a JSON error, then closes. Right behind NIO's HTTP/1 request decoder, whose
/// `HTTPParserError.headerOverflow` it catches (Hummingbird would answer a bare 400, or nothing for
/// a connection's first request); other parser errors go on as before. It also counts the
/// requests the router owes a response (`HTTPExchangeState`, for the idle timeout): requests the
/// HLS fast path answers never get here. Removed when the connection becomes a WebSocket.
final class HTTPHeaderLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let maxHeaderBytes: Int
    let exchange: HTTPExchangeState
    /// A response (through the router) has begun and not ended: a 431 cannot be written now.
    private var responseOpen = false

    init(maxHeaderBytes: Int, exchange: HTTPExchangeState = HTTPExchangeState()) {
        self.maxHeaderBytes = maxHeaderBytes
        self.exchange = exchange
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = self.unwrapInboundIn(data) { self.exchange.requestsReceived &+= 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: self.responseOpen = true
        case .end:
            self.responseOpen = false
            self.exchange.responsesEnded &+= 1
        default: break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, parserError == .headerOverflow else {
            context.fireErrorCaught(error)
            return
        }
        let channel = context.channel
        guard !self.responseOpen else {
            channel.close(promise: nil)
            return
        }
        let (head, body) = HTTPConnectionLimits.errorResponse(
            status: .requestHeaderFieldsTooLarge, code: "HEADERS_TOO_LARGE",
            message: "the request line and header fields exceed \(self.maxHeaderBytes) bytes")
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// The whole pipeline of a connection refused because its address already holds the most
/// connections allowed: its first request is answered 429 with a JSON error, then it is closed.
/// (A client that sends nothing is closed by its idle timeout, which is short for these.)
final class TooManyConnectionsResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let limit: Int
    let what: String
    private var answered = false

    init(limit: Int, what: String) {
        self.limit = limit
        self.what = what
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head = self.unwrapInboundIn(data), !self.answered else { return }
        self.answered = true
        let (head, body) = HTTPConnectionLimits.errorResponse(
            status: .tooManyRequests, code: "TOO_MANY_CONNECTIONS",
            message: "this address already has \(self.limit) open \(self.what); close one first")
        let channel = context.channel
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
