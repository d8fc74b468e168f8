import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The web pages (studio `/`, viewer `/watch/{roomId}`, replay `/replay/{roomId}`, room list `/rooms`) and their assets,
/// embedded as package resources (`Sources/Server/Web`) and held in memory — no build step, no CDN.
struct WebController {
    struct Asset: Sendable {
        var bytes: ByteBuffer
        var contentType: String
    }

    let assets: [String: Asset]
    /// Signs a dev token; nil outside dev mode (the endpoint then answers 404).
    let devTokens: (@Sendable (_ userId: String, _ username: String, _ roles: [String]) async throws -> String)?

    /// Loads every file of the `Web` resource folder.
    static func loadAssets(logger: Logger) -> [String: Asset] {
        guard let base = Bundle.module.resourceURL?.appendingPathComponent("Web"),
            let names = try? FileManager.default.contentsOfDirectory(atPath: base.path)
        else {
            logger.error("web assets are missing from the resource bundle")
            return [:]
        }
        var assets: [String: Asset] = [:]
        for name in names {
            guard let data = FileManager.default.contents(atPath: base.appendingPathComponent(name).path) else { continue }
            assets[name] = Asset(bytes: ByteBuffer(bytes: data), contentType: contentType(for: name))
        }
        return assets
    }

    /// The pages' settings from the configuration: `<meta name="livehub-shop-product-url">` (issue 21:
    /// the Buy button on the featured product, `LIVEHUB_SHOP_PRODUCT_URL`) filled in every page
    /// that has the empty tag; without a template the tag stays empty and the pages show no button.
    static func configure(_ assets: [String: Asset], shopProductURL: String?) -> [String: Asset] {
        guard let shopProductURL else { return assets }
        let placeholder = #"<meta name="livehub-shop-product-url" content="">"#
        let filled = #"<meta name="livehub-shop-product-url" content="\#(htmlAttribute(shopProductURL))">"#
        var configured = assets
        for (name, asset) in assets where name.hasSuffix(".html") {
            let text = String(buffer: asset.bytes)
            guard text.contains(placeholder) else { continue }
            configured[name] = Asset(bytes: ByteBuffer(string: text.replacingOccurrences(of: placeholder, with: filled)), contentType: asset.contentType)
        }
        return configured
    }

    /// `value` escaped for a double-quoted HTML attribute.
    static func htmlAttribute(_ value: String) -> String {
        value.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func contentType(for name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "html": return "text/html; charset=utf-8"
        case "js": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "json": return "application/json"
        default: return "application/octet-stream"
        }
    }

    func addRoutes(to router: Router<LiveHubRequestContext>) {
        router.get("") { _, _ in try page("index.html") }
        router.get("watch/:roomId") { _, _ in try page("watch.html") }
        router.get("replay/:roomId") { _, _ in try page("replay.html") }
        router.get("rooms") { _, _ in try page("rooms.html") }
        router.get("static/:file") { _, context -> Response in
            let name = try context.parameters.require("file")
            guard let asset = assets[name], !name.hasSuffix(".html") else { throw APIError.notFound("no asset \(name)") }
            return Response(
                status: .ok, headers: [.contentType: asset.contentType, .cacheControl: "public, max-age=300"],
                body: .init(byteBuffer: asset.bytes))
        }
        // Dev mode only (--dev, LIVEHUB_DEV=1), loopback callers only: the studio's "generate a dev token".
        router.post("v1/dev/tokens") { request, context -> Response in
            guard let devTokens else { throw APIError.notFound("dev tokens exist only in dev mode") }
            guard context.isLoopbackPeer else { throw APIError.forbidden("dev tokens are handed out to loopback callers only") }
            struct Body: Decodable { var userId: String?; var username: String?; var role: String? }
            let body = try await JSONBody.decode(Body.self, from: request, limit: 4096)
            let role = body.role ?? "USER"
            guard ["USER", "SHOP_OWNER"].contains(role) else { throw APIError.validation("role must be USER or SHOP_OWNER") }
            let userId = body.userId ?? "dev-\(role.lowercased())-\(Int.random(in: 1000...9999))"
            guard !userId.isEmpty, userId.count <= 64 else { throw APIError.validation("userId must be 1-64 characters") }
            let username = body.username ?? userId
            let token = try await devTokens(userId, username, [role])
            return try JSONBody.response(["token": token, "userId": userId, "username": username])
        }
    }

    func page(_ name: String) throws -> Response {
        guard let asset = assets[name] else { throw APIError.notFound("page \(name) is not available") }
        return Response(
            status: .ok,
            headers: [.contentType: asset.contentType, .cacheControl: "no-cache", HTTPField.Name("Content-Security-Policy")!: "default-src 'self'; media-src 'self' blob:; img-src 'self' data: http: https:; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'"],
            body: .init(byteBuffer: asset.bytes))
    }
}
