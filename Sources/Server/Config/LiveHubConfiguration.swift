import Foundation

/// Everything a LiveHub process is configured with. Every field has a default (DESIGN.md
/// "Defaults") and a `LIVEHUB_*` environment variable; the `livehub` command line may override.
public struct LiveHubConfiguration: Sendable {
    public enum HLSVariantName: String, Sendable, CaseIterable {
        case fmp4LowLatency = "fmp4-ll"
        case fmp4
        case mpegts
    }

    /// Address the HTTP/WebSocket listener binds to.
    public var httpHost = "0.0.0.0"
    /// `LIVEHUB_HTTP_PORT` (8080). 0 picks a free port (tests).
    public var httpPort = 8080
    public var rtmpHost = "0.0.0.0"
    /// `LIVEHUB_RTMP_PORT` (1935). 0 picks a free port (tests).
    public var rtmpPort = 1935
    /// `LIVEHUB_RTMPS_PORT` (1936), used only when a certificate and key are given.
    public var rtmpsPort = 1936
    /// `LIVEHUB_TLS_CERT` / `LIVEHUB_TLS_KEY`: PEM files enabling RTMPS.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// `LIVEHUB_DATA_DIR` (`./data`): the SQLite file and dev-mode secrets live here.
    public var dataDirectory = "./data"
    /// `LIVEHUB_SQLITE_SYNCHRONOUS` (`FULL`): `FULL` syncs every commit to the disk before the
    /// answer or broadcast (survives a power cut); `NORMAL` only at checkpoints (faster, the last
    /// commits can be lost on a power cut; `make bench` compares the two).
    public var sqliteSynchronous: SQLiteSynchronous = .full
    /// `LIVEHUB_JWT_SECRET`: HS256 secret. Unset = dev mode (a random secret is kept in the data dir).
    public var jwtSecret: String?
    /// `LIVEHUB_INTERNAL_TOKEN`: bearer token for internal calls (orders, notifications).
    /// Unset = dev mode: a random one is kept in the data directory and printed at start-up.
    public var internalToken: String?
    /// `LIVEHUB_CORS_ORIGINS`: comma-separated origins; `*` (the dev default) allows any.
    public var corsOrigins: [String] = ["*"]
    /// `LIVEHUB_PUBLIC_HOST`: host name put into `rtmpUrl`/`hlsUrl`; default: the request's Host.
    public var publicHost: String?
    /// `LIVEHUB_RECONNECT_GRACE` seconds (30): how long a room stays LIVE ("reconnecting") after
    /// its publisher went away.
    public var reconnectGrace: Duration = .seconds(30)
    /// `LIVEHUB_PUBLISHER_IDLE_TIMEOUT` seconds (10): no media for this long = publisher gone.
    public var publisherIdleTimeout: Duration = .seconds(10)
    /// `LIVEHUB_RTMP_RECEIVE_COALESCING` (seconds, 0.01): while a publisher streams, the kernel
    /// buffers about this much of its media before waking the server (`SO_RCVLOWAT`, see Ingest's
    /// `ReceiveCoalescing`); 0 wakes on every arrival.
    public var rtmpReceiveCoalescing: Duration = .milliseconds(10)
    /// `LIVEHUB_HLS_VARIANT` (`fmp4-ll`, `fmp4`, `mpegts`).
    public var hlsVariant: HLSVariantName = .fmp4LowLatency
    /// `LIVEHUB_HLS_SEGMENT_SECONDS` (2): target segment duration, cut on keyframes.
    public var hlsSegmentSeconds = 2.0
    /// `LIVEHUB_HLS_PART_SECONDS` (0.5): LL-HLS part target.
    public var hlsPartSeconds = 0.5
    /// `LIVEHUB_HLS_WINDOW` (6): segments kept in the live playlist (and in RAM).
    public var hlsWindowSegments = 6
    /// `LIVEHUB_HLS_RETAIN_AFTER_END` seconds (300): the final window stays downloadable this long.
    public var hlsRetainAfterEnd: Duration = .seconds(300)
    /// `LIVEHUB_MAX_BODY_BYTES` (1 MiB): request bodies above this are refused with 413.
    public var maxRequestBodyBytes = 1 << 20
    /// `LIVEHUB_SOCKETIO_PING_INTERVAL` / `LIVEHUB_SOCKETIO_PING_TIMEOUT` seconds (25 / 20, Engine.IO v4
    /// defaults): the bell pings every interval and drops a socket silent for interval + timeout.
    public var socketIOPingInterval: Duration = .seconds(25)
    public var socketIOPingTimeout: Duration = .seconds(20)
    /// `LIVEHUB_SOCKETIO_AUTH_TIMEOUT` seconds (10): a bell socket that connected without
    /// `auth.token` must send an `AUTH {token}` event within this time.
    public var socketIOAuthTimeout: Duration = .seconds(10)
    /// `LIVEHUB_LOG_LEVEL` (info).
    public var logLevel = "info"

    public init() {}

    public var isDevMode: Bool { jwtSecret == nil }
    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("livehub.sqlite") }

    /// Reads every `LIVEHUB_*` variable; unknown or malformed values are reported, not ignored.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> LiveHubConfiguration {
        var configuration = LiveHubConfiguration()
        try configuration.apply(environment: environment)
        return configuration
    }

    public mutating func apply(environment: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func port(_ name: String) throws -> Int? {
            guard let raw = value(name) else { return nil }
            guard let port = Int(raw), (0...65535).contains(port) else {
                throw ConfigurationError(variable: name, value: raw, expected: "a port number 0-65535")
            }
            return port
        }
        func seconds(_ name: String) throws -> Double? {
            guard let raw = value(name) else { return nil }
            guard let seconds = Double(raw), seconds >= 0, seconds.isFinite else {
                throw ConfigurationError(variable: name, value: raw, expected: "a number of seconds")
            }
            return seconds
        }
        if let host = value("LIVEHUB_HTTP_HOST") { httpHost = host }
        if let port = try port("LIVEHUB_HTTP_PORT") { httpPort = port }
        if let host = value("LIVEHUB_RTMP_HOST") { rtmpHost = host }
        if let port = try port("LIVEHUB_RTMP_PORT") { rtmpPort = port }
        if let port = try port("LIVEHUB_RTMPS_PORT") { rtmpsPort = port }
        if let path = value("LIVEHUB_TLS_CERT") { tlsCertificatePath = path }
        if let path = value("LIVEHUB_TLS_KEY") { tlsKeyPath = path }
        if let dir = value("LIVEHUB_DATA_DIR") { dataDirectory = dir }
        if let raw = value("LIVEHUB_SQLITE_SYNCHRONOUS") {
            guard let mode = SQLiteSynchronous(rawValue: raw.uppercased()) else {
                throw ConfigurationError(variable: "LIVEHUB_SQLITE_SYNCHRONOUS", value: raw, expected: "FULL or NORMAL")
            }
            sqliteSynchronous = mode
        }
        if let secret = value("LIVEHUB_JWT_SECRET") { jwtSecret = secret }
        if let token = value("LIVEHUB_INTERNAL_TOKEN") { internalToken = token }
        if let origins = value("LIVEHUB_CORS_ORIGINS") {
            corsOrigins = origins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let host = value("LIVEHUB_PUBLIC_HOST") { publicHost = host }
        if let grace = try seconds("LIVEHUB_RECONNECT_GRACE") { reconnectGrace = .milliseconds(Int64(grace * 1000)) }
        if let idle = try seconds("LIVEHUB_PUBLISHER_IDLE_TIMEOUT") { publisherIdleTimeout = .milliseconds(Int64(idle * 1000)) }
        if let window = try seconds("LIVEHUB_RTMP_RECEIVE_COALESCING") {
            guard window <= 0.1 else {
                throw ConfigurationError(variable: "LIVEHUB_RTMP_RECEIVE_COALESCING", value: "\(window)", expected: "at most 0.1 seconds")
            }
            rtmpReceiveCoalescing = .microseconds(Int64(window * 1_000_000))
        }
        if let raw = value("LIVEHUB_HLS_VARIANT") {
            guard let variant = HLSVariantName(rawValue: raw) else {
                throw ConfigurationError(variable: "LIVEHUB_HLS_VARIANT", value: raw, expected: "one of fmp4-ll, fmp4, mpegts")
            }
            hlsVariant = variant
        }
        if let segment = try seconds("LIVEHUB_HLS_SEGMENT_SECONDS") {
            guard segment >= 0.5 else { throw ConfigurationError(variable: "LIVEHUB_HLS_SEGMENT_SECONDS", value: "\(segment)", expected: "at least 0.5") }
            hlsSegmentSeconds = segment
        }
        if let part = try seconds("LIVEHUB_HLS_PART_SECONDS") {
            guard part >= 0.1 else { throw ConfigurationError(variable: "LIVEHUB_HLS_PART_SECONDS", value: "\(part)", expected: "at least 0.1") }
            hlsPartSeconds = part
        }
        if let raw = value("LIVEHUB_HLS_WINDOW") {
            guard let window = Int(raw), window >= 3 else {
                throw ConfigurationError(variable: "LIVEHUB_HLS_WINDOW", value: raw, expected: "an integer ≥ 3")
            }
            hlsWindowSegments = window
        }
        if let retain = try seconds("LIVEHUB_HLS_RETAIN_AFTER_END") { hlsRetainAfterEnd = .milliseconds(Int64(retain * 1000)) }
        if let raw = value("LIVEHUB_MAX_BODY_BYTES") {
            guard let bytes = Int(raw), bytes >= 1024 else {
                throw ConfigurationError(variable: "LIVEHUB_MAX_BODY_BYTES", value: raw, expected: "an integer ≥ 1024")
            }
            maxRequestBodyBytes = bytes
        }
        if let interval = try seconds("LIVEHUB_SOCKETIO_PING_INTERVAL") { socketIOPingInterval = .milliseconds(Int64(interval * 1000)) }
        if let timeout = try seconds("LIVEHUB_SOCKETIO_PING_TIMEOUT") { socketIOPingTimeout = .milliseconds(Int64(timeout * 1000)) }
        if let timeout = try seconds("LIVEHUB_SOCKETIO_AUTH_TIMEOUT") { socketIOAuthTimeout = .milliseconds(Int64(timeout * 1000)) }
        if let level = value("LIVEHUB_LOG_LEVEL") { logLevel = level }
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public var variable: String
    public var value: String
    public var expected: String
    public var description: String { "\(variable)=\(value) is invalid: expected \(expected)" }
}
