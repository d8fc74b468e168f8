#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOPosix

/// hubload: N native STOMP-over-WebSocket subscribers for the live-room hub load test
/// (bench/hub/stomp_fanout.py --native). Protocol on stdout, one line each:
///   READY {"subscribed":N,"failed":F,"seconds":S,...}   all connections subscribed or failed
///   COMPLETE {...}                                      (with --expect M) every subscriber has M deliveries
///   RESULT {...}                                        after stdin EOF / "STOP" / --max-seconds
@main
struct HubLoad {
    static func main() {
        let options = Options.parse(CommandLine.arguments)
        signal(SIGPIPE, SIG_IGN)
        let nofile = raiseOpenFilesLimit()
        if nofile >= 0 && nofile < options.subscribers + 50 {
            writeStderr("hubload: warning: RLIMIT_NOFILE is \(nofile), not enough for \(options.subscribers) connections\n")
        }
        let runStart = monotonicNanos()
        let hardDeadline = runStart + Int64(options.maxSeconds * 1e9)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.eventLoops)
        let loops = Array(group.makeIterator())
        let stats = loops.map { LoopStats(loop: $0) }
        let tally = Tally()
        let config = ClientConfig(options)

        // ---- connect at a bounded rate with a bounded number in flight; no retries
        let t0 = monotonicNanos()
        let interval = 1e9 / options.connectRate
        var launched = 0
        while launched < options.subscribers {
            let now = monotonicNanos()
            if now >= hardDeadline { break }
            let due = t0 + Int64(Double(launched) * interval)
            if now < due {
                sleepSeconds(min(Double(due - now) / 1e9, 0.002))
                continue
            }
            if tally.inFlight.load(ordering: .relaxed) >= options.maxInFlight {
                sleepSeconds(0.0005)
                continue
            }
            let k = launched % loops.count
            ClientConn.launch(on: loops[k], stats: stats[k], tally: tally, config: config)
            launched += 1
        }
        // every launched connection reports within its handshake timeout; wait a little longer at most
        let settleDeadline = min(hardDeadline, monotonicNanos() + Int64((options.handshakeTimeout + 5) * 1e9))
        while tally.subscribed.load(ordering: .relaxed) + tally.failed.load(ordering: .relaxed) < launched
            && monotonicNanos() < settleDeadline
        {
            sleepSeconds(0.005)
        }
        let connectSeconds = Double(monotonicNanos() - t0) / 1e9
        let notLaunched = options.subscribers - launched
        let pending = launched - tally.subscribed.load(ordering: .relaxed) - tally.failed.load(ordering: .relaxed)
        let subscribedAtReady = tally.subscribed.load(ordering: .relaxed)
        let failedAtReady = tally.failed.load(ordering: .relaxed) + notLaunched + max(0, pending)
        emitLine("READY " + JSON.object([
            ("subscribed", .int(subscribedAtReady)), ("failed", .int(failedAtReady)),
            ("seconds", .double((connectSeconds * 1000).rounded() / 1000)),
            ("started", .int(tally.started.load(ordering: .relaxed))),
            ("failures", failuresJSON(tally, notLaunched: notLaunched, pending: pending)),
            ("event_loops", .int(loops.count)), ("nofile", .int(nofile)),
            ("rss_kib", .int(procStatusKiB("VmRSS"))),
        ]).text)

        // ---- deliveries: the event loops record; this thread watches stdin and the clock
        for s in stats {
            s.loop.execute { s.startLagSampler() }
        }
        let cpuAtReady = processCPUSeconds()
        var stopReason = "max-seconds"
        var completeSent = false
        var line: [UInt8] = []
        var readBuf = [UInt8](repeating: 0, count: 4096)
        control: while monotonicNanos() < hardDeadline {
            if options.expect > 0 && !completeSent && subscribedAtReady > 0
                && tally.completeConnections.load(ordering: .relaxed) >= tally.subscribed.load(ordering: .relaxed)
            {
                completeSent = true
                emitLine("COMPLETE " + JSON.object([
                    ("subscribers", .int(tally.completeConnections.load(ordering: .relaxed))),
                    ("expect", .int(options.expect)),
                    ("seconds_since_ready", .double(Double(monotonicNanos() - t0) / 1e9 - connectSeconds)),
                ]).text)
            }
            var pfd = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, 20)
            if r < 0 {
                if errno == EINTR { continue }
                stopReason = "stdin-error"
                break
            }
            if r == 0 { continue }
            let n = readBuf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                stopReason = "stdin-eof"
                break
            }
            for b in readBuf[0..<n] {
                if b == 0x0A {
                    if line.count >= 4 && Array(line.prefix(4)) == Array("STOP".utf8) {
                        stopReason = "stop"
                        break control
                    }
                    line.removeAll(keepingCapacity: true)
                } else if line.count < 64 {
                    line.append(b)
                }
            }
        }

        // ---- snapshot (stops counting), report, then close everything
        tally.shuttingDown.store(true, ordering: .relaxed)
        let cpuAtStop = processCPUSeconds()
        var snapshots: [LoopSnapshot] = []
        for s in stats {
            if let snap = try? s.loop.submit({ s.snapshot() }).wait() {
                snapshots.append(snap)
            }
        }
        let result = buildResult(
            options: options, tally: tally, snapshots: snapshots, subscribedAtReady: subscribedAtReady,
            failed: failedAtReady, notLaunched: notLaunched, pending: pending, connectSeconds: connectSeconds,
            stopReason: stopReason, cpuAtReady: cpuAtReady, cpuAtStop: cpuAtStop,
            runSeconds: Double(monotonicNanos() - runStart) / 1e9, loops: loops.count)
        emitLine("RESULT " + result.text)

        for s in stats {
            s.loop.execute {
                for c in s.conns where c.channel != nil { c.shutdown() }
            }
        }
        let closeDeadline = monotonicNanos() + 10_000_000_000
        while tally.openChannels.load(ordering: .relaxed) > 0 && monotonicNanos() < closeDeadline {
            sleepSeconds(0.01)
        }
        let left = tally.openChannels.load(ordering: .relaxed)
        if left > 0 {
            writeStderr("hubload: \(left) connections still open after 10 s; exiting anyway\n")
        }
        try? group.syncShutdownGracefully()
        exit(0)
    }

    static func failuresJSON(_ tally: Tally, notLaunched: Int, pending: Int) -> JSON {
        var kv: [(String, JSON)] = FailKind.allCases.map { ($0.name, .int(tally.failureCount($0))) }
        kv.append(("not_started", .int(notLaunched)))
        kv.append(("pending_at_ready", .int(max(0, pending))))
        return .object(kv)
    }

    static func buildResult(
        options: Options, tally: Tally, snapshots: [LoopSnapshot], subscribedAtReady: Int, failed: Int,
        notLaunched: Int, pending: Int, connectSeconds: Double, stopReason: String,
        cpuAtReady: Double, cpuAtStop: Double, runSeconds: Double, loops: Int
    ) -> JSON {
        var latencies: [Int64] = []
        latencies.reserveCapacity(snapshots.reduce(0) { $0 + $1.latencies.count })
        var deliveries = 0, unmarked = 0, errorFrames = 0, outOfRange = 0
        var firstRx: Int64 = 0, lastRx: Int64 = 0
        var perConnection: [Int] = []
        var closeCodes: [Int: Int] = [:]
        var subprotocols: [String: Int] = [:]
        var lags: [Int64] = []
        let seqLen = snapshots.map { $0.seqCount.count }.max() ?? 0
        var seqCount = [Int](repeating: 0, count: seqLen)
        var seqFirst = [Int64](repeating: 0, count: seqLen)
        var seqLast = [Int64](repeating: 0, count: seqLen)
        var seqSent = [Int64](repeating: 0, count: seqLen)
        for s in snapshots {
            latencies.append(contentsOf: s.latencies)
            deliveries += s.deliveries
            unmarked += s.unmarked
            errorFrames += s.errorFrames
            outOfRange += s.outOfRangeSequences
            if s.firstRx != 0 && (firstRx == 0 || s.firstRx < firstRx) { firstRx = s.firstRx }
            lastRx = max(lastRx, s.lastRx)
            perConnection.append(contentsOf: s.perConnection)
            closeCodes.merge(s.closeCodes, uniquingKeysWith: +)
            subprotocols.merge(s.subprotocols, uniquingKeysWith: +)
            lags.append(contentsOf: s.lags)
            for i in 0..<s.seqCount.count where s.seqCount[i] > 0 {
                seqCount[i] += Int(s.seqCount[i])
                if seqFirst[i] == 0 || s.seqFirst[i] < seqFirst[i] { seqFirst[i] = s.seqFirst[i] }
                seqLast[i] = max(seqLast[i], s.seqLast[i])
                if seqSent[i] == 0 { seqSent[i] = s.seqSent[i] }
            }
        }
        var spreads: [Int64] = []
        var firstLatencies: [Int64] = []
        var seen = 0
        var minPer = Int.max, maxPer = 0
        for i in 0..<seqLen where seqCount[i] > 0 {
            seen += 1
            minPer = min(minPer, seqCount[i])
            maxPer = max(maxPer, seqCount[i])
            spreads.append(seqLast[i] - seqFirst[i])
            firstLatencies.append(seqFirst[i] - seqSent[i])
        }
        let zeroDelivery = options.expect > 0 ? (0..<options.expect).filter { $0 >= seqLen || seqCount[$0] == 0 }.count : 0
        let span = lastRx > firstRx ? Double(lastRx - firstRx) / 1e9 : 0
        let complete = options.expect > 0 ? perConnection.filter { $0 >= options.expect }.count : 0
        let stored = latencies.count
        let spreadSummary = summaryMs(&spreads)
        var lagsSorted = lags
        lagsSorted.sort()
        func ms(_ v: Int64?) -> JSON { v.map { JSON.ms($0) } ?? .null }

        return .object([
            ("subscribed", .int(subscribedAtReady)),
            ("failed", .int(failed)),
            ("failures", failuresJSON(tally, notLaunched: notLaunched, pending: pending)),
            ("connect_seconds", .double(connectSeconds)),
            ("closed_by_server", .int(tally.closedByServer.load(ordering: .relaxed))),
            ("server_close_codes", .object(closeCodes.sorted { $0.key < $1.key }.map { (String($0.key), .int($0.value)) })),
            ("subprotocols", .object(subprotocols.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("deliveries", .int(deliveries)),
            ("latencies_stored", .int(stored)),
            ("unmarked_messages", .int(unmarked)),
            ("error_frames", .int(errorFrames)),
            ("out_of_range_sequences", .int(outOfRange)),
            ("messages_seen", .int(seen)),
            ("min_deliveries_per_message", .int(seen > 0 ? minPer : 0)),
            ("max_deliveries_per_message", .int(maxPer)),
            ("expected_messages_without_delivery", .int(zeroDelivery)),
            ("per_subscriber", .object([
                ("min", .int(perConnection.min() ?? 0)), ("max", .int(perConnection.max() ?? 0)),
                ("complete", .int(complete)), ("expect", .int(options.expect)),
            ])),
            ("latency", summaryMs(&latencies)),
            ("first_delivery_latency", summaryMs(&firstLatencies)),
            ("spread", spreadSummary),
            ("first_rx_ns", .int(Int(firstRx))),
            ("last_rx_ns", .int(Int(lastRx))),
            ("delivery_span_s", .double(span)),
            ("deliveries_per_second", span > 0 ? .double((Double(deliveries) / span).rounded()) : .null),
            ("loop_lag", .object([
                ("samples", .int(lagsSorted.count)),
                ("p50_ms", ms(percentile(lagsSorted, 50))), ("p99_ms", ms(percentile(lagsSorted, 99))),
                ("max_ms", ms(lagsSorted.last)),
            ])),
            ("cpu_s_total", .double(cpuAtStop)),
            ("cpu_s_after_ready", .double(cpuAtStop - cpuAtReady)),
            ("rss_kib", .int(procStatusKiB("VmRSS"))),
            ("rss_peak_kib", .int(procStatusKiB("VmHWM"))),
            ("event_loops", .int(loops)),
            ("stop_reason", .string(stopReason)),
            ("run_seconds", .double(runSeconds)),
        ])
    }
}
