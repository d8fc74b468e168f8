#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Command-line options (`--name value` pairs; no external argument parser: the package depends
/// on swift-nio only).
struct Options: Sendable {
    var host = "127.0.0.1"
    var port = 0
    var path = "/ws/live"
    var subscribers = 0
    var destination = ""
    /// New connections started per second.
    var connectRate = 2000.0
    /// Connections between "TCP connect started" and "SUBSCRIBE receipted / failed".
    var maxInFlight = 200
    var eventLoops = 1
    /// Offered `Sec-WebSocket-Protocol` list (comma separated).
    var subprotocols = "v12.stomp,v11.stomp,v10.stomp"
    /// Per-connection limit for TCP connect + upgrade + CONNECTED + SUBSCRIBE receipt.
    var handshakeTimeout = 30.0
    var maxSeconds = 600.0
    /// Messages each subscriber should get; when > 0, a `COMPLETE` line is printed once every
    /// subscribed connection has that many deliveries.
    var expect = 0
    /// Optional `/app/...` destination each subscriber SENDs `{}` to after subscribing.
    var join: String? = nil
    /// Ask the server for a receipt of SUBSCRIBE (READY then means "the server registered it").
    var receipt = true

    static let usage = """
        usage: hubload --port P --subscribers N --destination /topic/live/ROOM/chat
                       [--host 127.0.0.1] [--path /ws/live] [--connect-rate 2000] [--max-in-flight 200]
                       [--event-loops 1] [--subprotocol v12.stomp,v11.stomp,v10.stomp]
                       [--handshake-timeout 30] [--max-seconds 600] [--expect M] [--join /app/live/ROOM/join]
                       [--no-receipt]
        Opens N STOMP-over-WebSocket subscribers, prints `READY {json}`, records the latency of every
        MESSAGE carrying `bm<seq>@<CLOCK_MONOTONIC ns>`, and on stdin EOF / `STOP` / --max-seconds
        prints `RESULT {json}` and exits 0.
        """

    static func parse(_ argv: [String]) -> Options {
        var o = Options()
        var i = 1
        func fail(_ msg: String) -> Never {
            writeStderr("hubload: \(msg)\n\(usage)\n")
            exit(2)
        }
        func value() -> String {
            guard i + 1 < argv.count else { fail("\(argv[i]) needs a value") }
            i += 1
            return argv[i]
        }
        func int() -> Int {
            let name = argv[i]
            guard let v = Int(value()) else { fail("\(name) needs an integer") }
            return v
        }
        func double() -> Double {
            let name = argv[i]
            guard let v = Double(value()) else { fail("\(name) needs a number") }
            return v
        }
        while i < argv.count {
            switch argv[i] {
            case "--host": o.host = value()
            case "--port": o.port = int()
            case "--path": o.path = value()
            case "--subscribers": o.subscribers = int()
            case "--destination": o.destination = value()
            case "--connect-rate": o.connectRate = double()
            case "--max-in-flight": o.maxInFlight = int()
            case "--event-loops": o.eventLoops = int()
            case "--subprotocol": o.subprotocols = value()
            case "--handshake-timeout": o.handshakeTimeout = double()
            case "--max-seconds": o.maxSeconds = double()
            case "--expect": o.expect = int()
            case "--join": o.join = value()
            case "--no-receipt": o.receipt = false
            case "-h", "--help":
                print(usage)
                exit(0)
            default: fail("unknown option \(argv[i])")
            }
            i += 1
        }
        guard o.port > 0 && o.port < 65536 else { fail("--port is required") }
        guard o.subscribers >= 0 && o.subscribers <= 1_000_000 else { fail("--subscribers out of range") }
        guard o.destination.hasPrefix("/") else { fail("--destination is required") }
        guard o.connectRate > 0, o.maxInFlight > 0, o.eventLoops >= 1, o.eventLoops <= 64 else { fail("bad rate/in-flight/event-loops") }
        guard o.maxSeconds > 0, o.handshakeTimeout > 0 else { fail("bad timeouts") }
        return o
    }
}

// MARK: - small system helpers

@inline(__always)
func monotonicNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
}

func writeStderr(_ s: String) {
    var s = s
    s.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
}

/// One line to stdout, flushed at once (the driving script reads it through a pipe).
func emitLine(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { p in
        var off = 0
        while off < p.count {
            let n = write(1, p.baseAddress! + off, p.count - off)
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            off += n
        }
    }
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit in force.
func raiseOpenFilesLimit() -> Int {
    var rl = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return -1 }
    if rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
    }
    return Int(clamping: rl.rlim_cur)
}

/// User + system CPU seconds of this process.
func processCPUSeconds() -> Double {
    var ru = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &ru)
    return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
        + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
}

/// A `/proc/self/status` field in KiB (VmRSS, VmHWM), or -1.
func procStatusKiB(_ field: String) -> Int {
    let fd = open("/proc/self/status", O_RDONLY)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 8192)
    let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return -1 }
    let text = String(decoding: bytes[0..<n], as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        let digits = line.dropFirst(field.count + 1).filter { $0 >= "0" && $0 <= "9" }
        return Int(digits) ?? -1
    }
    return -1
}

func sleepSeconds(_ s: Double) {
    guard s > 0 else { return }
    var req = timespec(tv_sec: Int(s), tv_nsec: Int((s - Double(Int(s))) * 1e9))
    var rem = timespec()
    while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
}
