import NIOCore
import Synchronization

/// Why a connection did not get subscribed.
enum FailKind: Int, CaseIterable, Sendable {
    case connect, handshake, stompError, timeout, closed

    var name: String {
        switch self {
        case .connect: "connect"
        case .handshake: "websocket_handshake"
        case .stompError: "stomp_error"
        case .timeout: "timeout"
        case .closed: "closed_before_subscribed"
        }
    }
}

/// Process-wide counters shared by all event loops and the main thread (atomics only: nothing
/// here is touched per delivery except `completeConnections`, once per connection).
final class Tally: Sendable {
    let started = Atomic<Int>(0)
    let subscribed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)
    let openChannels = Atomic<Int>(0)
    let completeConnections = Atomic<Int>(0)
    let closedByServer = Atomic<Int>(0)
    let shuttingDown = Atomic<Bool>(false)
    // `Atomic` is non-copyable, so no array of them: one property per failure kind.
    let failConnect = Atomic<Int>(0)
    let failHandshake = Atomic<Int>(0)
    let failStomp = Atomic<Int>(0)
    let failTimeout = Atomic<Int>(0)
    let failClosed = Atomic<Int>(0)

    func countFailure(_ kind: FailKind) {
        switch kind {
        case .connect: self.failConnect.add(1, ordering: .relaxed)
        case .handshake: self.failHandshake.add(1, ordering: .relaxed)
        case .stompError: self.failStomp.add(1, ordering: .relaxed)
        case .timeout: self.failTimeout.add(1, ordering: .relaxed)
        case .closed: self.failClosed.add(1, ordering: .relaxed)
        }
    }

    func failureCount(_ kind: FailKind) -> Int {
        switch kind {
        case .connect: self.failConnect.load(ordering: .relaxed)
        case .handshake: self.failHandshake.load(ordering: .relaxed)
        case .stompError: self.failStomp.load(ordering: .relaxed)
        case .timeout: self.failTimeout.load(ordering: .relaxed)
        case .closed: self.failClosed.load(ordering: .relaxed)
        }
    }
}

/// Everything one event loop records. Only ever touched on `loop` (the handlers of its
/// connections and tasks submitted to it), hence `@unchecked Sendable`.
final class LoopStats: @unchecked Sendable {
    static let maxSequence = 1 << 20
    static let maxStoredLatencies = 20_000_000
    static let maxLagSamples = 100_000

    let loop: EventLoop
    /// receive − send, ns, one per delivery (up to `maxStoredLatencies`).
    var latencies: [Int64] = []
    var deliveries = 0
    /// MESSAGE frames without a `bm<seq>@<ns>` marker.
    var unmarked = 0
    /// ERROR frames after subscribing.
    var errorFrames = 0
    var outOfRangeSequences = 0
    var firstRx: Int64 = 0
    var lastRx: Int64 = 0
    /// Per message sequence: deliveries, first/last receive time, send time.
    var seqCount: [Int32] = []
    var seqFirst: [Int64] = []
    var seqLast: [Int64] = []
    var seqSent: [Int64] = []
    /// Connections that reached "subscribed" (kept for per-subscriber counts and shutdown).
    var conns: [ClientConn] = []
    var closeCodes: [Int: Int] = [:]
    var subprotocols: [String: Int] = [:]
    var lags: [Int64] = []
    var lastTick: Int64 = 0
    var lagTask: RepeatedTask?

    init(loop: EventLoop) {
        self.loop = loop
        self.latencies.reserveCapacity(1 << 16)
    }

    @inline(__always)
    func record(seq: Int, sent: Int64, now: Int64) {
        self.deliveries &+= 1
        if self.latencies.count < Self.maxStoredLatencies {
            self.latencies.append(now &- sent)
        }
        if self.firstRx == 0 { self.firstRx = now }
        self.lastRx = now
        guard seq >= 0 && seq < Self.maxSequence else {
            self.outOfRangeSequences &+= 1
            return
        }
        if seq >= self.seqCount.count {
            let grow = seq + 1 - self.seqCount.count
            self.seqCount.append(contentsOf: repeatElement(0, count: grow))
            self.seqFirst.append(contentsOf: repeatElement(0, count: grow))
            self.seqLast.append(contentsOf: repeatElement(0, count: grow))
            self.seqSent.append(contentsOf: repeatElement(0, count: grow))
        }
        self.seqCount[seq] &+= 1
        if self.seqFirst[seq] == 0 {
            self.seqFirst[seq] = now
            self.seqSent[seq] = sent
        }
        self.seqLast[seq] = now
    }

    /// Samples how late a 10 ms timer fires on this loop (client-side queueing).
    func startLagSampler() {
        self.lastTick = monotonicNanos()
        self.lagTask = self.loop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { _ in
            let now = monotonicNanos()
            if self.lags.count < Self.maxLagSamples {
                self.lags.append(max(0, now - self.lastTick - 10_000_000))
            }
            self.lastTick = now
        }
    }

    func snapshot() -> LoopSnapshot {
        self.lagTask?.cancel()
        return LoopSnapshot(
            latencies: self.latencies, deliveries: self.deliveries, unmarked: self.unmarked,
            errorFrames: self.errorFrames, outOfRangeSequences: self.outOfRangeSequences,
            firstRx: self.firstRx, lastRx: self.lastRx,
            seqCount: self.seqCount, seqFirst: self.seqFirst, seqLast: self.seqLast, seqSent: self.seqSent,
            perConnection: self.conns.map { $0.count }, closeCodes: self.closeCodes,
            subprotocols: self.subprotocols, lags: self.lags)
    }
}

struct LoopSnapshot: Sendable {
    var latencies: [Int64]
    var deliveries: Int
    var unmarked: Int
    var errorFrames: Int
    var outOfRangeSequences: Int
    var firstRx: Int64
    var lastRx: Int64
    var seqCount: [Int32]
    var seqFirst: [Int64]
    var seqLast: [Int64]
    var seqSent: [Int64]
    var perConnection: [Int]
    var closeCodes: [Int: Int]
    var subprotocols: [String: Int]
    var lags: [Int64]
}

// MARK: - summaries

/// Nearest-rank percentile on a sorted array, the same rule as bench/hub/hubutil.py.
func percentile(_ sorted: [Int64], _ p: Double) -> Int64? {
    guard !sorted.isEmpty else { return nil }
    let k = Int((p / 100.0 * Double(sorted.count - 1)).rounded(.toNearestOrEven))
    return sorted[min(sorted.count - 1, max(0, k))]
}

/// {"count", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"} of ns values (sorted in place).
func summaryMs(_ values: inout [Int64]) -> JSON {
    values.sort()
    guard !values.isEmpty else { return .object([("count", .int(0))]) }
    var sum = 0.0
    for v in values { sum += Double(v) }
    func ms(_ v: Int64?) -> JSON { v.map { .ms($0) } ?? .null }
    return .object([
        ("count", .int(values.count)),
        ("p50_ms", ms(percentile(values, 50))), ("p90_ms", ms(percentile(values, 90))),
        ("p99_ms", ms(percentile(values, 99))), ("p999_ms", ms(percentile(values, 99.9))),
        ("max_ms", ms(values.last)), ("mean_ms", .double((sum / Double(values.count) / 1e6 * 1000).rounded() / 1000)),
    ])
}

// MARK: - a minimal JSON writer (used once, at the end; never per delivery)

indirect enum JSON {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    /// Nanoseconds as milliseconds with µs precision.
    static func ms(_ ns: Int64) -> JSON { .double(Double(ns / 1000) / 1000) }

    func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? String(d) : "null"
        case .string(let s): JSON.writeString(s, into: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let kv):
            out += "{"
            for (i, (k, v)) in kv.enumerated() {
                if i > 0 { out += "," }
                JSON.writeString(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    var text: String {
        var s = ""
        self.write(into: &s)
        return s
    }
}
