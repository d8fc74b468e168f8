import Foundation
import HTTPTypes
import Hub
import Hummingbird
import NIOCore
import NIOHTTPTypes

/// SockJS's HTTP side of `/ws/live` (sockjs-protocol 0.3.3), as Spring's `withSockJS()` served it:
/// `GET /ws/live/info`, and for clients whose WebSocket is blocked `POST …/{server}/{session}/xhr`,
/// `…/xhr_streaming` and `…/xhr_send` (`SockJSHTTPTransport`), each with its `OPTIONS` preflight.
///
/// These routes answer CORS themselves (`CORSPolicyMiddleware` leaves `/ws/live/` alone): the
/// SockJS client sends its XHRs with credentials, so `Access-Control-Allow-Origin` must echo the
/// origin (`*` for none or `null`) with `Access-Control-Allow-Credentials: true`. An origin outside
/// `LIVEHUB_CORS_ORIGINS` (unless it is `*`) is answered 403, as Spring does.
struct SockJSHTTPRoutes: Sendable {
    let transport: SockJSHTTPTransport
    let allowedOrigins: [String]

    /// Paths whose CORS these routes answer.
    static func ownsCORS(path: String) -> Bool { path.hasPrefix("/ws/live/") }

    static let notCached = "no-store, no-cache, must-revalidate, max-age=0"

    func add(to router: Router<LiveHubRequestContext>) {
        router.get("ws/live/info") { request, _ -> Response in
            self.withCORS(request) {
                Response(
                    status: .ok, headers: [.contentType: "application/json; charset=UTF-8", .cacheControl: Self.notCached],
                    body: .init(byteBuffer: ByteBuffer(string: SockJSFraming.infoJSON())))
            }
        }
        router.on("ws/live/info", method: .options) { request, _ in self.preflight(request, methods: "OPTIONS, GET") }
        for transport in ["xhr", "xhr_streaming", "xhr_send"] {
            router.on("ws/live/:server/:session/\(transport)", method: .options) { request, context in
                guard self.isValidPath(context) else { return Self.text(.notFound, "Not found.\n") }
                return self.preflight(request, methods: "OPTIONS, POST")
            }
        }
        router.post("ws/live/:server/:session/xhr") { request, context -> Response in
            await self.withCORS(request) { await self.poll(request, context: context) }
        }
        router.post("ws/live/:server/:session/xhr_streaming") { request, context -> Response in
            self.withCORS(request) { self.stream(request, context: context) }
        }
        router.post("ws/live/:server/:session/xhr_send") { request, context -> Response in
            await self.withCORS(request) { await self.send(request, context: context) }
        }
    }

    private func path(_ context: LiveHubRequestContext) -> (server: String, session: String) {
        (context.parameters.get("server") ?? "", context.parameters.get("session") ?? "")
    }

    private func isValidPath(_ context: LiveHubRequestContext) -> Bool {
        let (server, session) = self.path(context)
        return self.transport.isValidPath(server: server, session: session)
    }

    private func open(_ request: Request, context: LiveHubRequestContext) -> Result<SockJSHTTPTransport.Receiving, SockJSHTTPTransport.Refusal> {
        let (server, session) = self.path(context)
        let token = request.uri.queryParameters.get("token")
        return self.transport.open(server: server, session: session, peer: ConnectionsPerAddress.key(for: context.remoteAddress), queryToken: token)
    }

    /// `xhr`: one response per request, held until something is queued.
    private func poll(_ request: Request, context: LiveHubRequestContext) async -> Response {
        switch self.open(request, context: context) {
        case .failure(let refusal):
            return Self.refused(refusal)
        case .success(let receiving):
            let channel = context.channel
            let body = await self.transport.poll(receiving, isConnected: { channel.isActive }, abort: { channel.close(promise: nil) })
            return Response(status: .ok, headers: Self.receivingHeaders, body: .init(byteBuffer: body))
        }
    }

    /// `xhr_streaming`: a chunked response of frames, one per line, after the prelude.
    private func stream(_ request: Request, context: LiveHubRequestContext) -> Response {
        switch self.open(request, context: context) {
        case .failure(let refusal):
            return Self.refused(refusal)
        case .success(let receiving):
            let (transport, channel) = (self.transport, context.channel)
            return Response(
                status: .ok, headers: Self.receivingHeaders,
                body: ResponseBody { writer in
                    await transport.stream(receiving, isConnected: { channel.isActive }, abort: { channel.close(promise: nil) }) {
                        try await writer.write($0)
                    }
                    try await writer.finish(nil)
                })
        }
    }

    /// `xhr_send`: the client's STOMP frames, a JSON array of strings → 204.
    private func send(_ request: Request, context: LiveHubRequestContext) async -> Response {
        let (server, session) = self.path(context)
        let limit = self.transport.maxSendBodyBytes
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            return Self.text(.contentTooLarge, "Payload too large (at most \(limit) bytes).\n")
        }
        switch self.transport.send(server: server, session: session, body: body) {
        case .accepted:
            return Response(status: .noContent, headers: [.contentType: "text/plain; charset=UTF-8", .cacheControl: Self.notCached])
        case .unknownSession:
            return Self.text(.notFound, "No such session.\n")
        case .invalidBody(let error):
            return Self.text(.internalServerError, error.message)
        case .busy:
            return Self.text(.serviceUnavailable, "Too many messages waiting for this session; send again later.\n")
        }
    }

    // MARK: Responses

    static let receivingHeaders: HTTPFields = [.contentType: "application/javascript; charset=UTF-8", .cacheControl: notCached]

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=UTF-8", .cacheControl: notCached],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func refused(_ refusal: SockJSHTTPTransport.Refusal) -> Response {
        if refusal.status == 404 { return self.text(.notFound, "Not found.\n") }
        let body = RealtimeWiring.json(["error": refusal.code, "message": refusal.message])
        return Response(
            status: .init(code: refusal.status), headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: body))
    }

    /// sockjs-protocol `verify_options`: 204, cacheable for a year, the methods allowed.
    private func preflight(_ request: Request, methods: String) -> Response {
        self.withCORS(request) {
            let year = 31_536_000
            return Response(
                status: .noContent,
                headers: [
                    .cacheControl: "public, max-age=\(year)", .expires: Self.httpDate(secondsFromNow: year),
                    .accessControlMaxAge: String(year), .accessControlAllowMethods: methods,
                ])
        }
    }

    // MARK: CORS

    /// The `Access-Control-Allow-Origin` for the request's origin, or nil if it is not allowed.
    func allowOrigin(for origin: String?) -> String? {
        guard let origin, origin != "null" else { return "*" }
        if self.allowedOrigins.contains("*") || self.allowedOrigins.contains(origin) { return origin }
        return nil
    }

    private func withCORS(_ request: Request, _ respond: () async -> Response) async -> Response {
        guard let origin = self.allowOrigin(for: request.headers[.origin]) else { return Self.forbiddenOrigin() }
        var response = await respond()
        self.applyCORS(to: &response.headers, request: request, origin: origin)
        return response
    }

    private func withCORS(_ request: Request, _ respond: () -> Response) -> Response {
        guard let origin = self.allowOrigin(for: request.headers[.origin]) else { return Self.forbiddenOrigin() }
        var response = respond()
        self.applyCORS(to: &response.headers, request: request, origin: origin)
        return response
    }

    private static func forbiddenOrigin() -> Response {
        self.text(.forbidden, "Invalid CORS request: this origin is not allowed.\n")
    }

    private func applyCORS(to headers: inout HTTPFields, request: Request, origin: String) {
        headers[.accessControlAllowOrigin] = origin
        headers[.accessControlAllowCredentials] = "true"
        if origin != "*" { headers[.vary] = "Origin" }
        if let requested = request.headers[.accessControlRequestHeaders], !requested.isEmpty {
            headers[.accessControlAllowHeaders] = requested
        }
    }

    /// RFC 9110 §5.6.7 IMF-fixdate.
    static func httpDate(secondsFromNow seconds: Int) -> String {
        var when = time(nil) + seconds
        var parts = tm()
        gmtime_r(&when, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension SockJSHTTPRoutes {
    /// `…/{server}/{session}/xhr` or `…/xhr_streaming`: a request the server holds.
    static func isReceivingPath(_ path: Substring) -> Bool {
        let path = path.split(separator: "?", maxSplits: 1).first ?? ""
        guard path.hasPrefix("/ws/live/") else { return false }
        return path.hasSuffix("/xhr") || path.hasSuffix("/xhr_streaming")
    }
}

/// Closes a connection whose client went away (its FIN) while a SockJS receiving request is held
/// on it. The server's connections allow half-closure, so without this the connection would stay
/// active until a write failed (the next heart-beat, 25 s later) and the session would not start
/// its disconnect delay; closing lets the receiver see `isActive == false` on the next tick.
/// One per HTTP connection (`HTTP1Channel.Configuration.additionalChannelHandlers`).
final class SockJSHeldRequestWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    /// The connection's latest request was a SockJS receiving request.
    private var holding = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data) {
            self.holding = SockJSHTTPRoutes.isReceivingPath(Substring(head.path ?? ""))
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if self.holding, let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
