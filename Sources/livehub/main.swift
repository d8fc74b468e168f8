import ArgumentParser
import Foundation
import Logging
import Server

/// `livehub` — one process: RTMP ingest, LL-HLS, live-room hub, notification bell, REST.
/// Every option defaults to its `LIVEHUB_*` environment variable (see README "Configuration").
@main
struct LiveHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "livehub",
        abstract: "Live-commerce media server: RTMP in, LL-HLS out, STOMP + Socket.IO hub, REST.",
        version: LiveHubVersion.description)

    @Option(name: .long, help: "HTTP/WebSocket port (LIVEHUB_HTTP_PORT, 8080).") var httpPort: Int?
    @Option(name: .long, help: "RTMP port (LIVEHUB_RTMP_PORT, 1935).") var rtmpPort: Int?
    @Option(name: .long, help: "Data directory (LIVEHUB_DATA_DIR, ./data).") var dataDir: String?
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error (LIVEHUB_LOG_LEVEL).") var logLevel: String?
    @Flag(name: .long, help: "Dev mode (LIVEHUB_DEV=1): generated secrets, sample tokens, dev-token endpoint, loopback callbacks.")
    var dev = false

    func run() async throws {
        var configuration: LiveHubConfiguration
        do {
            configuration = try LiveHubConfiguration.fromEnvironment()
        } catch {
            throw ValidationError("\(error)")
        }
        if let httpPort { configuration.httpPort = httpPort }
        if let rtmpPort { configuration.rtmpPort = rtmpPort }
        if let dataDir { configuration.dataDirectory = dataDir }
        if let logLevel { configuration.logLevel = logLevel }
        if dev { configuration.isDevMode = true }
        if let problem = configuration.startupProblem { Self.stop(problem) }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "livehub")
        Self.raiseOpenFileLimit(logger: logger)
        let config = configuration
        let hub: LiveHub
        do {
            hub = try await LiveHub.build(
                configuration: configuration, logger: logger,
                onHTTPReady: { port in StartupBanner.printListening(httpPort: port, configuration: config) },
                onRTMPReady: { ports in StartupBanner.printListening(rtmpPorts: ports, configuration: config) })
        } catch let error as LiveHubStartupError {
            Self.stop(error.message)
        }
        StartupBanner.printHeader(configuration: configuration, acceptedAlgorithms: hub.verifier.keySet.acceptedAlgorithms)
        if let tokens = try await hub.devTokens() {
            StartupBanner.printDevMode(
                ownerToken: tokens.owner, viewerToken: tokens.viewer, internalToken: hub.internalToken,
                generatedSecret: configuration.jwtSecret == nil, httpPort: configuration.httpPort, rtmpPort: configuration.rtmpPort)
        }
        try await hub.run()
    }

    /// One line on stderr naming what to set, and exit status 1.
    static func stop(_ message: String) -> Never {
        FileHandle.standardError.write(Data("livehub: \(message)\n".utf8))
        Foundation.exit(1)
    }

    /// Every viewer's WebSocket, every publisher and every finished segment (a memfd) is a
    /// descriptor; systemd and most shells start services with a soft limit of 1024. Raise the soft
    /// limit to the hard one, as nginx's `worker_rlimit_nofile` is commonly used to.
    static func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let before = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("raised the open file limit", metadata: ["from": "\(before)", "to": "\(limit.rlim_max)"])
        } else {
            logger.warning("could not raise the open file limit", metadata: ["limit": "\(before)", "errno": "\(errno)"])
        }
    }
}
