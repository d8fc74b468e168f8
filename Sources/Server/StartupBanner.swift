import Foundation

/// What `livehub` prints at start-up: one line per listener, and in dev mode the sample tokens and
/// how to publish and watch.
public enum StartupBanner {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    public static func printHeader(configuration: LiveHubConfiguration) {
        line(LiveHubVersion.description)
        line("data      \(configuration.databasePath) (SQLite, WAL, synchronous=\(configuration.sqliteSynchronous.rawValue))")
    }

    public static func printListening(httpPort: Int, configuration: LiveHubConfiguration) {
        line("http      listening on http://\(configuration.httpHost):\(httpPort) (REST, HLS, WebSocket)")
    }

    public static func printListening(rtmpPorts: [(scheme: String, port: Int)], configuration: LiveHubConfiguration) {
        for (scheme, port) in rtmpPorts {
            line("\(scheme.padding(toLength: 9, withPad: " ", startingAt: 0)) listening on \(scheme)://\(configuration.rtmpHost):\(port)/live")
        }
    }

    public static func printDevMode(ownerToken: String, viewerToken: String, internalToken: String, httpPort: Int, rtmpPort: Int) {
        line("")
        line("dev mode: no LIVEHUB_JWT_SECRET set; a secret was generated and kept in the data directory.")
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
