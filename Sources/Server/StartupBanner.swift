import Foundation

/// What `livehub` prints at start-up: one line per listener, and in dev mode the sample tokens and
/// how to publish and watch.
public enum StartupBanner {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    public static func printHeader(configuration: LiveHubConfiguration, acceptedAlgorithms: [String]) {
        line(LiveHubVersion.description)
        if let url = configuration.databaseURL {
            line("data      \(url) (PostgreSQL, pool of \(configuration.databasePoolSize))")
        } else {
            line("data      \(configuration.databasePath) (SQLite, WAL, synchronous=\(configuration.sqliteSynchronous.rawValue))")
        }
        line("auth      \(authSummary(configuration: configuration, acceptedAlgorithms: acceptedAlgorithms))")
    }

    /// The mode and what tokens must be: `dev mode …` or `production: JWT RS256, … from …`.
    static func authSummary(configuration: LiveHubConfiguration, acceptedAlgorithms: [String]) -> String {
        var sources: [String] = []
        if configuration.jwtSecret != nil { sources.append("LIVEHUB_JWT_SECRET") }
        if let path = configuration.jwtPublicKeyPath { sources.append(path) }
        if let path = configuration.jwtJWKSPath { sources.append(path + " (SIGHUP re-reads)") }
        var rules = ["exp required", "leeway \(Int(configuration.jwtLeeway)) s"]
        if let issuer = configuration.jwtIssuer { rules.append("iss \(issuer)") }
        if !configuration.jwtAudiences.isEmpty { rules.append("aud \(configuration.jwtAudiences.joined(separator: "|"))") }
        let jwt = "JWT \(acceptedAlgorithms.joined(separator: ", "))"
            + (sources.isEmpty ? "" : " from \(sources.joined(separator: ", "))") + "; " + rules.joined(separator: ", ")
        if configuration.isDevMode { return "dev mode (--dev / LIVEHUB_DEV=1): \(jwt)" }
        let loopback = configuration.callbackTrustsLoopback ? "; /callback/* trusts loopback (LIVEHUB_CALLBACK_TRUST_LOOPBACK)" : ""
        return "production: \(jwt)\(loopback)"
    }

    public static func printListening(httpPort: Int, configuration: LiveHubConfiguration) {
        line("http      listening on http://\(configuration.httpHost):\(httpPort) (REST, HLS, WebSocket)")
    }

    public static func printListening(rtmpPorts: [(scheme: String, port: Int)], configuration: LiveHubConfiguration) {
        for (scheme, port) in rtmpPorts {
            line("\(scheme.padding(toLength: 9, withPad: " ", startingAt: 0)) listening on \(scheme)://\(configuration.rtmpHost):\(port)/live")
        }
    }

    public static func printDevMode(ownerToken: String, viewerToken: String, internalToken: String, generatedSecret: Bool, httpPort: Int, rtmpPort: Int) {
        line("")
        if generatedSecret {
            line("dev mode: a JWT secret was generated and kept in the data directory; never use --dev in production.")
        } else {
            line("dev mode: tokens are signed with LIVEHUB_JWT_SECRET; never use --dev in production.")
        }
        line("shop-owner token: \(ownerToken)")
        line("viewer token:     \(viewerToken)")
        line("internal token:   \(internalToken)")
        line("")
        line("create a room:  curl -s -X POST http://localhost:\(httpPort)/v1/notifications/live/rooms \\")
        line("                  -H 'Authorization: Bearer <shop-owner token>' -H 'Content-Type: application/json' \\")
        line("                  -d '{\"title\":\"My first live\"}'")
        line("publish (OBS):  Server rtmp://localhost:\(rtmpPort)/live, Stream Key = the room's streamKey")
        line("studio:         http://localhost:\(httpPort)/   watch: http://localhost:\(httpPort)/watch/<roomId>")
        line("")
    }
}
