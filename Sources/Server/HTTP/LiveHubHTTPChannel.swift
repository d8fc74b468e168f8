import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// What to do with a WebSocket upgrade request (`GET` with `Upgrade: websocket`).
enum WebSocketUpgradeDecision: Sendable {
    /// Switch protocols with these extra response headers (e.g. `Sec-WebSocket-Protocol`), then
    /// hand the upgraded channel to `attach` on its event loop.
    case upgrade(HTTPHeaders, attach: @Sendable (any Channel, Logger) -> Void)
    /// Answer with this status, content type and body, and close.
    case reject(HTTPResponse.Status, contentType: String, body: String)
}

/// The HTTP server's connections: HTTP/1.1 through Hummingbird's router, and WebSocket upgrades
/// done by NIO and handed to the hub, which then runs them on the event loop alone.
///
/// Why not Hummingbird's `http1WebSocketUpgrade`: it runs each WebSocket in the connection's task,
/// through async inbound/outbound sequences, until it closes. That task, its sequences and
/// Hummingbird's per-connection state were ~34 KiB of the ~37 KiB an idle viewer cost
/// (`bench/hub/idle_memory.py`). Here the connection's task ends once the upgrade is done; the hub
/// side is `STOMPEndpoint.attach` / `SocketIOEndpoint.attach` (`ConnectionRunner.attach`).
///
/// The HTTP side is set up as Hummingbird sets up its own (the same decoder limits, the same
/// HTTP-types codec, the extra handlers, its connection-state handler, then
/// `HTTPChannelHandler.handleHTTP`). As with NIO's upgrade handler generally, only a connection's
/// first request can upgrade; a later `Upgrade: websocket` request is answered with a redirect to
/// the same URI and `Connection: close`, so the client retries on a fresh connection.
///
/// Limits (issue 17, `HTTPConnectionLimits`): every connection starts with an idle timeout
/// (`HTTPIdleTimeoutHandler`, first in the pipeline); a request head above the decoder's limit is
/// answered 431 (`HTTPHeaderLimitHandler`); a connection from an address that already holds the
/// most plain HTTP connections allowed gets only a 429 (`TooManyConnectionsResponder`), and an
/// upgrade from an address holding the most WebSockets allowed is answered 429. An upgraded
/// connection stops counting as plain HTTP and counts as a WebSocket until it closes.
struct LiveHubHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    enum Negotiated: Sendable {
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case rejectedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, HTTPResponse.Status, contentType: String, body: String)
        /// The hub has it; nothing is left for the connection's task to do.
        case webSocket
        /// Over the per-address limit: `TooManyConnectionsResponder` answers and closes it.
        case refused
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let http1: HTTP1Channel.Configuration
    /// Largest WebSocket frame NIO's decoder accepts (larger: Close 1009).
    let maxFrameSize: Int
    let decideUpgrade: @Sendable (HTTPRequestHead) -> WebSocketUpgradeDecision
    let limits: HTTPConnectionLimits

    init(
        responder: @escaping HTTPChannelHandler.Responder, http1: HTTP1Channel.Configuration, maxFrameSize: Int,
        limits: HTTPConnectionLimits = .init(),
        decideUpgrade: @escaping @Sendable (HTTPRequestHead) -> WebSocketUpgradeDecision
    ) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.http1 = http1
        self.maxFrameSize = maxFrameSize
        self.limits = limits
        self.decideUpgrade = decideUpgrade
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let limits = self.limits
            let key = ConnectionsPerAddress.key(for: channel.remoteAddress)
            if let key, let plain = limits.plainConnectionsPerAddress {
                guard plain.acquire(key) else { return try Self.setUpRefusal(channel: channel, limits: limits, counter: plain) }
            }
            let slot = key.map { NIOLoopBound(ConnectionSlot(key: $0, held: limits.plainConnectionsPerAddress), eventLoop: channel.eventLoop) }
            if let slot { channel.closeFuture.whenComplete { _ in slot.value.release() } }
            let exchange = HTTPExchangeState()
            let idle = limits.idleTimeout.map { HTTPIdleTimeoutHandler(timeout: $0, exchange: exchange) }
            if let idle { try channel.pipeline.syncOperations.addHandler(idle) }
            let headerLimit = HTTPHeaderLimitHandler(maxHeaderBytes: self.http1.httpDecoder.maxHeaderListSize, exchange: exchange)
            // HTTP's own limits end with an upgrade: the hub checks a WebSocket's liveness itself.
            var httpOnly: [any RemovableChannelHandler] = [headerLimit]
            if let idle { httpOnly.append(idle) }
            let httpOnlyHandlers = NIOLoopBound(httpOnly, eventLoop: channel.eventLoop)

            let decision = NIOLoopBoundBox<WebSocketUpgradeDecision?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<Negotiated>(
                maxFrameSize: self.maxFrameSize,
                shouldUpgrade: { channel, head in
                    var decided = self.decideUpgrade(head)
                    if case .upgrade = decided, let slot, let webSockets = limits.webSocketsPerAddress, !slot.value.move(to: webSockets) {
                        decided = .reject(
                            .tooManyRequests, contentType: "application/json; charset=utf-8",
                            body: #"{"error":"TOO_MANY_CONNECTIONS","message":"this address already has \#(webSockets.limit) open WebSockets; close one first"}"#)
                    }
                    decision.value = decided
                    guard case .upgrade(let headers, _) = decided else { return channel.eventLoop.makeSucceededFuture(nil) }
                    return channel.eventLoop.makeSucceededFuture(headers)
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        for handler in httpOnlyHandlers.value { channel.pipeline.syncOperations.removeHandler(handler, promise: nil) }
                        if case .upgrade(_, let attach) = decision.value { attach(channel, logger) }
                        return .webSocket
                    }
                })
            let http1 = self.http1
            let upgrades = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try pipeline.addHandlers(http1.additionalChannelHandlers())
                        try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        if case .reject(let status, let contentType, let body) = decision.value {
                            return .rejectedUpgrade(asyncChannel, status, contentType: contentType, body: body)
                        }
                        return .http(asyncChannel)
                    }
                })
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: upgrades)
            // As Hummingbird's own HTTP/1 channel: it pipelines, handles errors and validates headers itself.
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(headerLimit, position: .after(decoder))
            return Value(negotiated: negotiated, channel: channel)
        }
    }

    /// A connection over the per-address limit of plain HTTP connections: it gets an HTTP decoder,
    /// a 429 for its first request and a short idle timeout, nothing else.
    static func setUpRefusal(channel: any Channel, limits: HTTPConnectionLimits, counter: ConnectionsPerAddress) throws -> Value {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(HTTPIdleTimeoutHandler(timeout: min(limits.idleTimeout ?? TimeAmount.seconds(5), TimeAmount.seconds(5))))
        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try pipeline.addHandler(TooManyConnectionsResponder(limit: counter.limit, what: counter.what))
        return Value(negotiated: channel.eventLoop.makeSucceededFuture(.refused), channel: channel)
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http(let asyncChannel):
                await self.handleHTTP(asyncChannel: asyncChannel, logger: logger)
            case .rejectedUpgrade(let asyncChannel, let status, let contentType, let body):
                logger.debug("WebSocket upgrade refused", metadata: ["status": "\(status.code)"])
                try await asyncChannel.executeThenClose { _, outbound in
                    var buffer = ByteBuffer(string: body)
                    let head = HTTPResponse(
                        status: status,
                        headerFields: [.connection: "close", .contentType: contentType, .contentLength: String(buffer.readableBytes)])
                    try await outbound.write(contentsOf: [.head(head), .body(buffer.readSlice(length: buffer.readableBytes)!), .end(nil)])
                }
            case .webSocket, .refused:
                return
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("connection closed before its first request")
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }

    /// A WebSocket upgrade after another request on the same connection cannot be switched any more
    /// (NIO upgrades a connection's first request only): redirect to the same URI and close.
    static func redirectingLateUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        struct ClosedAfterRedirect: Error {}
        return { request, responseWriter, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                try await responder(request, responseWriter, channel)
                return
            }
            var location = request.uri.path
            if let query = request.uri.query { location += "?\(query)" }
            try await responseWriter.writeResponse(
                HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: location, .contentLength: "0"]))
            throw ClosedAfterRedirect()
        }
    }
}
