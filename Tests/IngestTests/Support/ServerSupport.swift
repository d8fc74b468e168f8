import Foundation
import Ingest
import Logging
import MediaCore
import NIOCore
import NIOPosix
import Synchronization

/// An in-memory `PublishAuthorizer` (the SQLite one is the Server's): keys map to room ids.
final class TestAuthorizer: PublishAuthorizer {
    enum Event: Equatable, Sendable {
        case asked(app: String, key: String)
        case started(roomId: String, session: Int)
        case stopped(roomId: String, reason: String)
    }

    private let keys: [String: String]
    private let log = Mutex<[Event]>([])

    init(keys: [String: String]) {
        self.keys = keys
    }

    var events: [Event] { log.withLock { $0 } }

    func authorizePublish(app: String, streamKey: String) async -> PublishDecision {
        log.withLock { $0.append(.asked(app: app, key: streamKey)) }
        if let room = keys[streamKey] { return .accept(roomId: room) }
        return .reject(.unknownKey)
    }

    func publisherStarted(roomId: String, session: Int) async {
        log.withLock { $0.append(.started(roomId: roomId, session: session)) }
    }

    func publisherStopped(roomId: String, reason: PublisherStopReason) async {
        log.withLock { $0.append(.stopped(roomId: roomId, reason: reason.rawValue)) }
    }

    var started: [Event] { events.filter { if case .started = $0 { return true } else { return false } } }
    var stopped: [Event] { events.filter { if case .stopped = $0 { return true } else { return false } } }
}

/// Captures log records so tests can count warning lines per connection.
final class LogRecorder: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])
    var all: [Record] { records.withLock { $0 } }
    func append(_ record: Record) { records.withLock { $0.append(record) } }

    func handler(label: String) -> some LogHandler { Handler(recorder: self) }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { $1 } }
            recorder.append(Record(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func waitUntil(_ what: String, seconds: Double = 10, _ condition: () -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { throw TimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// One running test server on 127.0.0.1 with an ephemeral port.
struct TestServer {
    let server: RTMPServer
    let registry: StreamRegistry
    let authorizer: TestAuthorizer
    let logs: LogRecorder
    let metrics: TestMetricsFactory
    var port: Int { server.boundPorts[0] }

    static func start(
        keys: [String: String], tls: NIOSSLContextBox? = nil,
        configure: (inout RTMPServerConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        let logs = LogRecorder()
        let logger = Logger(label: "rtmp-test") { label in logs.handler(label: label) }
        var configuration = RTMPServerConfiguration(
            listeners: [RTMPListener(host: "127.0.0.1", port: 0, tls: tls?.context)], publishDeadline: .seconds(2),
            idleTimeout: .seconds(3))
        configure(&configuration)
        let registry = StreamRegistry()
        let authorizer = TestAuthorizer(keys: keys)
        let metrics = TestMetricsFactory()
        let server = RTMPServer(
            configuration: configuration, authorizer: authorizer, registry: registry,
            group: MultiThreadedEventLoopGroup.singleton, logger: logger, metricsFactory: metrics)
        try await server.start()
        return TestServer(server: server, registry: registry, authorizer: authorizer, logs: logs, metrics: metrics)
    }

    /// Collects a room's events until the publisher stops (or the time-out).
    func collect(roomId: String, seconds: Double = 30) -> Task<[StreamEvent], Never> {
        let reader = registry.stream(for: roomId).makeReader(name: "test", capacity: 100_000)
        return Task {
            var events: [StreamEvent] = []
            let timeout = Task {
                try? await Task.sleep(for: .seconds(seconds))
                registry.stream(for: roomId).removeReader(reader)
            }
            for await event in reader {
                events.append(event)
                if case .publishStopped = event { break }
            }
            timeout.cancel()
            return events
        }
    }
}

import NIOSSL

/// Wraps an `NIOSSLContext` (already Sendable) so test signatures stay tidy.
struct NIOSSLContextBox: Sendable {
    var context: NIOSSLContext
}

/// Runs ffmpeg (installed on the machine) as a publisher.
final class FFmpegProcess: Sendable {
    private let process: Process
    private final class ExitBox: Sendable {
        let status = Mutex<Int32?>(nil)
    }

    private let exit = ExitBox()

    init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        process.arguments = ["-hide_banner", "-loglevel", "error", "-nostdin"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        self.process = process
        let exit = self.exit
        process.terminationHandler = { finished in exit.status.withLock { $0 = finished.terminationStatus } }
        try process.run()
    }

    /// `ffmpeg [-re] -i fixture -c copy -f flv url`.
    static func publish(fixture: String, url: String, realtime: Bool = false) throws -> FFmpegProcess {
        let input = Fixtures.mediaFixtures.appendingPathComponent(fixture).path
        return try FFmpegProcess((realtime ? ["-re"] : []) + ["-i", input, "-c", "copy", "-f", "flv", url])
    }

    var exitStatus: Int32? { exit.status.withLock { $0 } }

    func wait(seconds: Double = 30) async throws -> Int32 {
        try await waitUntil("ffmpeg to exit", seconds: seconds) { exitStatus != nil }
        return exitStatus!
    }

    func terminate() {
        if process.isRunning { process.terminate() }
    }
}

/// A raw TCP client that sends bytes and reports when the server closes the connection.
struct RawClient {
    let channel: any Channel

    static func connect(port: Int) async throws -> RawClient {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        return RawClient(channel: channel)
    }

    func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes).get()
    }

    /// True when the server closed the connection within `seconds`.
    func closedByServer(within seconds: Double) async -> Bool {
        do {
            try await waitUntil("close", seconds: seconds) { !channel.isActive }
            return true
        } catch {
            try? await channel.close()
            return false
        }
    }
}
