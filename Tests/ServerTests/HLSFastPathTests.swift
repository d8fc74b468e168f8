import HLS
import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Testing

@testable import Server

/// The HLS fast path in the HTTP/1 pipeline Hummingbird builds (NIO's decoder and encoder, the
/// HTTP-types codec, then `HLSFastPathHandler`), with raw request and response bytes: what it
/// answers itself, what reaches the router, and that responses keep request order.
@Suite struct HLSFastPathTests {
    func channel(origins: [String] = ["*"]) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try channel.pipeline.syncOperations.addHandler(HLSFastPathHandler(
            hls: HLSService(), cors: CORSPolicyMiddleware(allowedOrigins: origins), metrics: LiveHubMetrics(),
            serverName: "LiveHub", logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return channel
    }

    func send(_ request: String, on channel: EmbeddedChannel) throws {
        try channel.writeInbound(ByteBuffer(string: request))
    }

    /// Everything written to the socket so far.
    func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    /// What reached the router (the HTTP-types parts at the end of the pipeline).
    func passedOn(_ channel: EmbeddedChannel) throws -> [String] {
        var paths: [String] = []
        while let part = try channel.readInbound(as: HTTPRequestPart.self) {
            if case .head(let head) = part { paths.append(head.path ?? "") }
        }
        return paths
    }

    func routerAnswers(_ status: HTTPResponse.Status, on channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: status, headerFields: [.contentLength: "0"])))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
    }

    @Test func anUnknownRoomIsAnsweredOnTheEventLoopWithTheRoutersHeaders() throws {
        let channel = try channel()
        try send("GET /hls/no-such-room/media.m3u8 HTTP/1.1\r\nHost: x\r\nOrigin: https://shop.example\r\n\r\n", on: channel)
        #expect(try passedOn(channel).isEmpty)
        let response = try written(channel)
        #expect(response.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(response.contains("\r\nAccess-Control-Allow-Origin: *\r\n"))
        #expect(response.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"))
        #expect(response.contains("\r\nServer: LiveHub\r\n"))
        #expect(response.contains(" GMT\r\n"))  // Date
        #expect(response.hasSuffix("\r\nContent-Length: 10\r\n") == false)
        #expect(response.hasSuffix("\r\n\r\nnot found\n"))
        #expect(response.contains("\r\nContent-Length: 10\r\n"))
        #expect(channel.isActive)
    }

    @Test func aListedOriginReplacesTheStarAndVaries() throws {
        let channel = try channel(origins: ["https://shop.example"])
        try send("GET /hls/r/media.m3u8 HTTP/1.1\r\nOrigin: https://shop.example\r\n\r\n", on: channel)
        let response = try written(channel)
        #expect(response.contains("\r\nAccess-Control-Allow-Origin: https://shop.example\r\n"))
        #expect(response.contains("\r\nVary: Origin\r\n"))
    }

    @Test func headHasNoBodyAndConnectionCloseOrHTTP10Closes() throws {
        let channel = try channel()
        try send("HEAD /hls/room/seg-1.m4s HTTP/1.1\r\nConnection: close\r\n\r\n", on: channel)
        let response = try written(channel)
        #expect(response.contains("\r\nContent-Length: 10\r\n"))
        #expect(response.contains("\r\nConnection: close\r\n"))
        #expect(response.hasSuffix("\r\n\r\n"))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)

        let old = try self.channel()
        try send("GET /hls/room/seg-1.m4s HTTP/1.0\r\n\r\n", on: old)
        #expect(try written(old).contains("\r\nConnection: close\r\n"))
        old.embeddedEventLoop.run()
        #expect(!old.isActive)
    }

    @Test func otherRoutesPercentEncodingAndOtherMethodsGoToTheRouter() throws {
        let channel = try channel()
        let requests = [
            "GET /v1/live/rooms", "GET /hls/room/a/b.m3u8", "GET /hls/room%2F..%2Fx/media.m3u8",
            "GET /hls/room/media.m3u8?_HLS_msn=%31", "POST /hls/room/media.m3u8", "GET /hlsx/room/media.m3u8",
        ]
        for request in requests {
            try send("\(request) HTTP/1.1\r\nContent-Length: 0\r\n\r\n", on: channel)
            let path = String(request.split(separator: " ")[1])
            #expect(try passedOn(channel) == [path])
            #expect(try written(channel).isEmpty)
            try routerAnswers(.ok, on: channel)
            #expect(try written(channel).hasPrefix("HTTP/1.1 200 OK"))
        }
    }

    @Test func whileAPassedOnRequestIsUnansweredLaterRequestsArePassedOnToo() throws {
        let channel = try channel()
        // Two pipelined requests in one read: the first needs the router, the second could be
        // answered here but must not overtake the first's response.
        try send("GET /v1/live/rooms HTTP/1.1\r\n\r\nGET /hls/room/media.m3u8 HTTP/1.1\r\n\r\n", on: channel)
        #expect(try written(channel).isEmpty)
        #expect(try passedOn(channel) == ["/v1/live/rooms", "/hls/room/media.m3u8"])
        try routerAnswers(.ok, on: channel)
        try routerAnswers(.notFound, on: channel)
        let both = try written(channel)
        #expect(both.hasPrefix("HTTP/1.1 200 OK") && both.contains("HTTP/1.1 404 Not Found"))
        // Both answered: the fast path is back.
        try send("GET /hls/room/media.m3u8 HTTP/1.1\r\n\r\n", on: channel)
        #expect(try passedOn(channel).isEmpty)
        #expect(try written(channel).hasSuffix("not found\n"))
    }

    @Test func parsingSplitsRoomFileAndQuery() {
        let parsed = HLSRequestAnswerer.parse("/hls/r-1/media.m3u8?_HLS_msn=12&_HLS_part=3&x")
        #expect(parsed?.roomId == "r-1")
        #expect(parsed?.file == "media.m3u8")
        #expect(parsed?.query == ["_HLS_msn": "12", "_HLS_part": "3", "x": ""])
        #expect(HLSRequestAnswerer.parse("/hls//media.m3u8") == nil)
        #expect(HLSRequestAnswerer.parse("/hls/room/") == nil)
        #expect(HLSRequestAnswerer.parse("/hls/room") == nil)
        #expect(HLSRequestAnswerer.parse("/hls/room/media.m3u8?a=b+c") == nil)
    }
}
