import HLS
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import Server

/// `HLSFastPathHandler` in an `EmbeddedChannel`: what it answers itself, what it passes on to the
/// router, and that responses keep request order.
@Suite struct HLSFastPathTests {
    func channel(origins: [String] = ["*"]) throws -> EmbeddedChannel {
        let handler = HLSFastPathHandler(
            hls: HLSService(), cors: CORSPolicyMiddleware(allowedOrigins: origins), metrics: LiveHubMetrics(), serverName: "LiveHub")
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return channel
    }

    func request(_ path: String, method: HTTPRequest.Method = .get, headers: HTTPFields = [:]) -> HTTPRequest {
        HTTPRequest(method: method, scheme: "http", authority: "localhost", path: path, headerFields: headers)
    }

    func send(_ request: HTTPRequest, on channel: EmbeddedChannel) throws {
        try channel.writeInbound(HTTPRequestPart.head(request))
        try channel.writeInbound(HTTPRequestPart.end(nil))
    }

    /// Response parts written so far.
    func responses(_ channel: EmbeddedChannel) throws -> [HTTPResponsePart] {
        var parts: [HTTPResponsePart] = []
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) { parts.append(part) }
        return parts
    }

    @Test func anUnknownRoomIsAnsweredOnTheEventLoopWithTheRoutersHeaders() throws {
        let channel = try channel()
        try send(request("/hls/no-such-room/media.m3u8", headers: [.origin: "https://shop.example"]), on: channel)
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)  // not passed on
        let parts = try responses(channel)
        guard case .head(let head) = parts.first else { Issue.record("no head: \(parts)"); return }
        #expect(head.status.code == 404)
        #expect(head.headerFields[.accessControlAllowOrigin] == "*")
        #expect(head.headerFields[.server] == "LiveHub")
        #expect(head.headerFields[.date]?.hasSuffix(" GMT") == true)
        #expect(head.headerFields[.contentLength] == "10")  // "not found\n"
        guard case .body(let body) = parts[1], case .end = parts[2] else { Issue.record("no body/end: \(parts)"); return }
        #expect(String(buffer: body) == "not found\n")
        #expect(channel.isActive)
    }

    @Test func headHasNoBodyAndConnectionCloseCloses() throws {
        let channel = try channel()
        try send(request("/hls/room/seg-1.m4s", method: .head, headers: [.connection: "close"]), on: channel)
        let parts = try responses(channel)
        #expect(parts.count == 2)
        guard case .head(let head) = parts.first else { Issue.record("no head"); return }
        #expect(head.headerFields[.contentLength] == "10")
        #expect(head.headerFields[.connection] == "close")
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func otherRoutesPercentEncodingAndOtherMethodsGoToTheRouter() throws {
        let channel = try channel()
        for (path, method) in [
            ("/v1/live/rooms", HTTPRequest.Method.get), ("/hls/room/a/b.m3u8", .get), ("/hls/room%2F..%2Fx/media.m3u8", .get),
            ("/hls/room/media.m3u8?_HLS_msn=%31", .get), ("/hls/room/media.m3u8", .post), ("/hlsx/room/media.m3u8", .get),
        ] {
            try channel.writeInbound(HTTPRequestPart.head(request(path, method: method)))
            guard case .head(let passed) = try channel.readInbound(as: HTTPRequestPart.self) else {
                Issue.record("\(method) \(path) was not passed on")
                continue
            }
            #expect(passed.path == path)
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
            #expect(try responses(channel).count == 2)
        }
    }

    @Test func whileAPassedOnRequestIsUnansweredLaterRequestsArePassedOnToo() throws {
        let channel = try channel()
        try send(request("/v1/live/rooms"), on: channel)
        #expect(try channel.readInbound(as: HTTPRequestPart.self) != nil)
        _ = try channel.readInbound(as: HTTPRequestPart.self)
        // Pipelined behind it: must not overtake its response.
        try send(request("/hls/room/media.m3u8"), on: channel)
        #expect(try responses(channel).isEmpty)
        guard case .head(let second) = try channel.readInbound(as: HTTPRequestPart.self) else {
            Issue.record("the pipelined request was not passed on")
            return
        }
        #expect(second.path == "/hls/room/media.m3u8")
        _ = try channel.readInbound(as: HTTPRequestPart.self)
        // The router answers both; then the fast path is back.
        for _ in 0..<2 {
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .notFound)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
        }
        _ = try responses(channel)
        try send(request("/hls/room/media.m3u8"), on: channel)
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        #expect(try responses(channel).count == 3)
    }

    @Test func parsingSplitsRoomFileAndQuery() {
        let parsed = HLSFastPathHandler.parse("/hls/r-1/media.m3u8?_HLS_msn=12&_HLS_part=3&x")
        #expect(parsed?.roomId == "r-1")
        #expect(parsed?.file == "media.m3u8")
        #expect(parsed?.query == ["_HLS_msn": "12", "_HLS_part": "3", "x": ""])
        #expect(HLSFastPathHandler.parse("/hls//media.m3u8") == nil)
        #expect(HLSFastPathHandler.parse("/hls/room/") == nil)
        #expect(HLSFastPathHandler.parse("/hls/room/media.m3u8?a=b+c") == nil)
    }
}
