import Foundation
import Hummingbird
import Ingest
import Logging

/// Rooms REST under `/v1/notifications/live` (DESIGN.md "REST"), plus the nginx-rtmp
/// `on_publish`/`on_publish_done` compatible callbacks.
struct RoomController {
    let rooms: RoomService
    let auth: Authenticator
    let urls: PublicURLs
    let maxBodyBytes: Int
    /// True while HLS has output for the room; its thumbnail then stands in for a missing `thumbnailUrl`.
    let hasLiveThumbnail: @Sendable (String) -> Bool
    /// True while the room's RTMP publisher is connected to LiveHub's own ingest.
    let hasPublisher: @Sendable (String) -> Bool
    /// Issue 21: true when the room has a finished recording with at least one segment.
    var hasReplay: @Sendable (String) -> Bool = { _ in false }

    func addRoutes(to group: RouterGroup<LiveHubRequestContext>) {
        group.post("rooms", use: create)
        group.get("rooms", use: list)
        group.get("rooms/mine", use: mine)
        group.get("rooms/:id", use: get)
        group.put("rooms/:id/start", use: start)
        group.put("rooms/:id/end", use: end)
        group.post("rooms/:id/stream-key", use: rotateKey)
        group.get("rooms/:id/stats", use: stats)
        group.post("callback/start", use: callbackStart)
        group.post("callback/end", use: callbackEnd)
    }

    // MARK: Rooms

    @Sendable func create(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireShopOwner(request, context: context)
        var body = try await JSONBody.decode(CreateRoomRequest.self, from: request, limit: maxBodyBytes)
        body.title = body.title.trimmingCharacters(in: .whitespacesAndNewlines)
        try RoomValidation.validate(body)
        let room = try await rooms.create(body, owner: owner)
        return try JSONBody.response(await view(room, for: owner, request: request), status: .created)
    }

    @Sendable func list(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.optionalUser(request, context: context)
        let query = request.uri.queryParameters
        var status: RoomStatus?
        if let raw = query["status"].map(String.init), !raw.isEmpty {
            guard let parsed = RoomStatus(rawValue: raw.uppercased()) else {
                throw APIError.badRequest("status must be one of \(RoomStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            status = parsed
        }
        let page = try Self.integer(query["page"].map(String.init), name: "page", default: 0, range: 0...1_000_000)
        let size = try Self.integer(query["size"].map(String.init), name: "size", default: 20, range: 1...100)
        let (found, total) = try await rooms.list(status: status, page: page, size: size)
        var items: [RoomView] = []
        for room in found {
            // A list never carries keys, not even the owner's own (DESIGN.md: keys only in /mine and GET).
            items.append(await view(room, for: nil, request: request, viewer: user))
        }
        return try JSONBody.response(Page(items: items, page: page, size: size, totalElements: total, totalPages: (total + size - 1) / size))
    }

    @Sendable func mine(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        var items: [RoomView] = []
        for room in try await rooms.rooms(ownedBy: owner) { items.append(await view(room, for: owner, request: request)) }
        return try JSONBody.response(items)
    }

    @Sendable func get(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let user = try auth.optionalUser(request, context: context)
        let room = try await rooms.room(id: try context.parameters.require("id"))
        return try JSONBody.response(await view(room, for: user, request: request))
    }

    @Sendable func start(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let room = try await rooms.start(id: try context.parameters.require("id"), by: owner)
        return try JSONBody.response(RoomStartedView(room: await view(room, for: owner, request: request)))
    }

    @Sendable func end(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let ended = try await rooms.endRoom(id: try context.parameters.require("id"), by: owner)
        return try JSONBody.response(RoomEndedView(room: ended.room, stats: ended.stats))
    }

    @Sendable func rotateKey(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let owner = try auth.requireUser(request, context: context)
        let room = try await rooms.rotateKey(id: try context.parameters.require("id"), by: owner)
        return try JSONBody.response(await view(room, for: owner, request: request))
    }

    @Sendable func stats(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        try JSONBody.response(try await rooms.stats(id: try context.parameters.require("id")))
    }

    // MARK: nginx-rtmp callbacks

    /// `on_publish`: 2xx lets nginx-rtmp accept the publisher, 403 makes it refuse. Only holders of
    /// the internal token may call it, and loopback callers in dev mode (`Authenticator.requireCallbackCaller`).
    @Sendable func callbackStart(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let key = try await callbackKey(request, context: context)
        switch try await rooms.authorizePublish(streamKey: key) {
        case .success(let roomId):
            await rooms.publisherStarted(roomId: roomId)
            return Self.plainText("OK")
        case .failure(let refusal):
            context.logger.notice("callback refused a publish", metadata: ["reason": "\(refusal.rawValue)", "key": "\(streamKeyTag(key))"])
            throw APIError.forbidden(refusal == .roomEnded ? "the room has ended" : "unknown stream key")
        }
    }

    /// `on_publish_done`: the publisher left; the reconnect grace starts. A room whose publisher is
    /// still connected to LiveHub's own ingest is left alone (a late or replayed notification must
    /// not end a running show): 200 all the same, since nginx-rtmp does not check the status of
    /// its `*_done` callbacks and there is nothing for the caller to retry; the body and the log
    /// line say why.
    @Sendable func callbackEnd(_ request: Request, context: LiveHubRequestContext) async throws -> Response {
        let key = try await callbackKey(request, context: context)
        guard case .success(let roomId) = try await rooms.authorizePublish(streamKey: key) else {
            throw APIError.notFound("unknown stream key")
        }
        if hasPublisher(roomId) {
            context.logger.notice(
                "on_publish_done ignored: the room's RTMP publisher is still connected", metadata: ["room": "\(roomId)"])
            return Self.plainText("IGNORED: the publisher is still connected; the room stays LIVE")
        }
        await rooms.publisherGone(roomId: roomId)
        return Self.plainText("OK")
    }

    static func plainText(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func callbackKey(_ request: Request, context: LiveHubRequestContext) async throws -> String {
        try auth.requireCallbackCaller(request, context: context)
        var request = request
        var name = request.uri.queryParameters["name"].map(String.init)
        if name == nil {
            // nginx-rtmp posts application/x-www-form-urlencoded: call=publish&app=live&name=KEY&…
            let body = try await request.collectBody(upTo: 16 * 1024)
            let form = String(buffer: body)
            for pair in form.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == "name" {
                    name = String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
                }
            }
        }
        guard let name, !name.isEmpty else { throw APIError.badRequest("the stream key (name) is required") }
        // nginx-rtmp passes the part after `live/`, possibly with a `?query`.
        return String(name.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    // MARK: Views

    func view(_ room: RoomRecord, for user: AuthUser?, request: Request, viewer: AuthUser? = nil) async -> RoomView {
        let isOwner = user?.userId == room.shopOwnerId
        return RoomView(
            id: room.id, shopOwnerId: room.shopOwnerId, shopOwnerName: room.shopOwnerName, title: room.title,
            description: room.description,
            thumbnailUrl: room.thumbnailUrl ?? (hasLiveThumbnail(room.id) ? urls.thumbnailURL(roomId: room.id, request: request) : nil),
            status: room.status,
            reconnecting: await rooms.isReconnecting(room.id), viewerCount: await rooms.viewerCount(room.id),
            peakViewers: room.peakViewers, totalOrders: room.totalOrders, totalRevenue: room.totalRevenue,
            createdAt: ISOTime.string(room.createdAt), startedAt: room.startedAt.map(ISOTime.string),
            endedAt: room.endedAt.map(ISOTime.string), hlsUrl: urls.hlsURL(roomId: room.id, request: request),
            streamKey: isOwner ? room.streamKey : nil, rtmpUrl: isOwner ? urls.rtmpURL(request: request) : nil,
            replayUrl: room.status == .ended && hasReplay(room.id) ? urls.replayURL(roomId: room.id, request: request) : nil)
    }

    static func integer(_ raw: String?, name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw, !raw.isEmpty else { return value }
        guard let parsed = Int(raw), range.contains(parsed) else {
            throw APIError.badRequest("\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return parsed
    }
}

/// Field rules of `POST /rooms` (422 when broken).
enum RoomValidation {
    static func validate(_ request: CreateRoomRequest) throws {
        guard !request.title.isEmpty else { throw APIError.validation("title must not be empty") }
        guard request.title.count <= 500 else { throw APIError.validation("title must be at most 500 characters") }
        if let description = request.description, description.count > 5000 {
            throw APIError.validation("description must be at most 5000 characters")
        }
        if let url = request.thumbnailUrl, !isWebURL(url) {
            throw APIError.validation("thumbnailUrl must be an absolute http(s) URL")
        }
    }

    static func isWebURL(_ text: String) -> Bool {
        guard text.count <= 2048, let components = URLComponents(string: text),
            let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty, !text.contains(" ")
        else { return false }
        return true
    }
}

/// Builds the URLs a room hands out. The host is `LIVEHUB_PUBLIC_HOST` or the request's `Host`.
struct PublicURLs: Sendable {
    var publicHost: String?
    var rtmpPort: Int
    var app = "live"

    func host(from request: Request) -> (name: String, withPort: String) {
        let hostHeader = request.head.authority ?? "localhost"
        let name: String
        if hostHeader.hasPrefix("["), let end = hostHeader.firstIndex(of: "]") {
            name = String(hostHeader[...end])
        } else {
            name = String(hostHeader.split(separator: ":").first ?? "localhost")
        }
        if let publicHost { return (publicHost, publicHost) }
        return (name, hostHeader)
    }

    func rtmpURL(request: Request) -> String {
        "rtmp://\(host(from: request).name):\(rtmpPort)/\(app)"
    }

    func thumbnailURL(roomId: String, request: Request) -> String {
        "http://\(host(from: request).withPort)/hls/\(roomId)/thumbnail.jpg"
    }

    func hlsURL(roomId: String, request: Request) -> String {
        "http://\(host(from: request).withPort)/hls/\(roomId)/index.m3u8"
    }

    /// Issue 21: the recording's VOD playlist, on the same base as `hlsURL`.
    func replayURL(roomId: String, request: Request) -> String {
        "http://\(host(from: request).withPort)/hls/\(roomId)/vod.m3u8"
    }
}
