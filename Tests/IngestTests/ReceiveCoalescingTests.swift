#if os(Linux)
import Foundation
import Glibc
import Ingest
import MediaCore
import NIOCore
import Synchronization
import Testing

@Suite("Receive coalescing (SO_RCVLOWAT while publishing)")
struct ReceiveCoalescingTests {
    @Test("the mark is the window's worth of the measured rate, capped, and 1 for slow or silent streams")
    func markFollowsTheRate() {
        var c = ReceiveCoalescing(window: .milliseconds(10))
        // 2.5 Mbps ≈ 312,500 B/s over a 1 s tick → 3,125 B per 10 ms.
        #expect(c.update(bytesSinceLastTick: 312_500, elapsed: .seconds(1)) == 3125)
        // A small drift (< 1/8) does not cost a setsockopt.
        #expect(c.update(bytesSinceLastTick: 300_000, elapsed: .seconds(1)) == nil)
        #expect(c.current == 3125)
        // A halved rate does.
        #expect(c.update(bytesSinceLastTick: 150_000, elapsed: .seconds(1)) == 1500)
        // 40 Mbps is capped.
        #expect(c.update(bytesSinceLastTick: 5_000_000, elapsed: .seconds(1)) == 16 << 10)
        // A tick with no data drops the mark so that whatever waits below it is read now.
        #expect(c.update(bytesSinceLastTick: 0, elapsed: .seconds(1)) == 1)
        #expect(c.update(bytesSinceLastTick: 0, elapsed: .seconds(1)) == nil)
        // 64 kbps audio: 80 B per 10 ms is not worth holding bytes for.
        #expect(c.update(bytesSinceLastTick: 8_000, elapsed: .seconds(1)) == nil)
        #expect(c.current == 1)
        // The rate is per elapsed time, not per tick.
        #expect(c.update(bytesSinceLastTick: 100_000, elapsed: .milliseconds(500)) == 2000)
    }

    @Test("a zero window never sets a mark")
    func zeroWindowDisables() {
        var c = ReceiveCoalescing(window: .zero)
        #expect(c.update(bytesSinceLastTick: 10_000_000, elapsed: .seconds(1)) == nil)
        #expect(c.current == 1)
    }

    /// Real server, real client socket: the mark is set on the server's socket while media flows
    /// (read back from the kernel), and a lone small message after the flow stops — one audio
    /// frame, then `deleteStream` with the connection left open — still reaches the stream
    /// within a tick, because a silent tick drops the mark.
    @Test("a publisher's socket gets a mark while media flows; bytes left below it are read within a tick")
    func markIsSetAndTrailingBytesAreRead() async throws {
        let test = try await TestServer.start(keys: ["good-key": "room-1"]) {
            // The test never waits for an idle close: 10 s of silence before one leaves room for a
            // test task stalled by a loaded parallel run (800 ms, then 2 s, closed the publisher
            // mid-test on a machine busy with fuzzing).
            $0.idleTimeout = .seconds(10)
            $0.receiveCoalescingWindow = .milliseconds(20)
        }
        let seen = Mutex<[Int64]>([])  // dts of every packet
        let stopped = Atomic<Bool>(false)
        let reader = test.registry.stream(for: "room-1").makeReader(name: "test", capacity: 100_000)
        let collector = Task {
            for await event in reader {
                switch event {
                case .packet(let packet): seen.withLock { $0.append(packet.dts) }
                case .publishStopped: stopped.store(true, ordering: .relaxed); return
                default: break
                }
            }
        }
        defer { collector.cancel() }

        let client = try await RawClient.connect(port: test.port)
        var setup = ClientBytes()
        setup.publishSequence(key: "good-key")
        setup.send(.setChunkSize(4096), csid: 2)
        // AAC sequence header (AAC LC, 44.1 kHz, stereo).
        setup.send(.audio(timestamp: 0, payload: ByteBuffer(bytes: [0xAF, 0x00, 0x12, 0x10])), csid: 6, msid: 1)
        var all = ClientBytes.handshake()
        all.writeImmutableBuffer(setup.bytes)
        try await client.send(all)
        try await waitUntil("publish") { test.authorizer.started.count == 1 }

        // ~100 KB/s of 1 KB audio frames for 1.5 s: at a 20 ms window the mark becomes ~2 KB.
        var media = setup
        var timestamp: UInt32 = 0
        // The mark is sampled while the frames flow and the highest one is checked: how fast the
        // frames really go depends on the machine's load (the sleeps stretch under a parallel test
        // run), so a single late reading may catch a tick that saw little data.
        let frame = [UInt8](repeating: 0x5A, count: 1000)
        let localPort = try #require(client.channel.localAddress?.port)
        var highestMark = 0
        for i in 0..<150 {
            timestamp += 10
            media.bytes.clear()
            media.send(.audio(timestamp: timestamp, payload: ByteBuffer(bytes: [0xAF, 0x01] + frame)), csid: 6, msid: 1)
            try await client.send(media.bytes)
            try await Task.sleep(for: .milliseconds(10))
            if i >= 50 && i % 10 == 0, let mark = serverReceiveLowWaterMark(serverPort: test.port, clientPort: localPort) {
                highestMark = max(highestMark, mark)
            }
        }
        // Engaged (a mark below 512 B is never set) and within the 16 KiB cap.
        #expect(highestMark >= 512 && highestMark <= 16 * 1024, "SO_RCVLOWAT on the server's socket: \(highestMark)")
        try await waitUntil("the flowing frames", seconds: 3) { seen.withLock { $0.count } == 150 }

        // One small frame, far below the mark, and nothing after it.
        timestamp += 10
        media.bytes.clear()
        media.send(.audio(timestamp: timestamp, payload: ByteBuffer(bytes: [0xAF, 0x01, 0x01, 0x02])), csid: 6, msid: 1)
        try await client.send(media.bytes)
        try await waitUntil("the trailing frame", seconds: 3) { seen.withLock { $0.count } == 151 }
        #expect(serverReceiveLowWaterMark(serverPort: test.port, clientPort: localPort) == 1)

        // deleteStream, connection left open: still handled.
        media.bytes.clear()
        media.command("deleteStream", 6, [.null, .number(1)])
        try await client.send(media.bytes)
        try await waitUntil("publish stopped", seconds: 3) { stopped.load(ordering: .relaxed) }
        #expect(test.authorizer.stopped == [.stopped(roomId: "room-1", reason: "unpublished")])
        try? await client.channel.close()
        try await test.server.shutdown()
    }
}

/// SO_RCVLOWAT of the server-side socket of the connection 127.0.0.1:clientPort → :serverPort,
/// found in this process's descriptors through /proc/net/tcp's socket inode.
private func serverReceiveLowWaterMark(serverPort: Int, clientPort: Int) -> Int? {
    guard let table = readWholeProcFile("/proc/net/tcp") else { return nil }
    let local = String(format: "0100007F:%04X", serverPort)
    let remote = String(format: "0100007F:%04X", clientPort)
    var inode: String?
    for line in table.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        if fields.count > 9, fields[1] == local, fields[2] == remote { inode = String(fields[9]) }
    }
    guard let inode, let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return nil }
    for name in fds {
        guard let fd = Int32(name),
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
            target == "socket:[\(inode)]"
        else { continue }
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, &length) == 0 else { return nil }
        return Int(value)
    }
    return nil
}

/// A /proc file read to EOF: the kernel hands out a seq_file a page or so per read(2), so a single
/// read (what a size-based file read does with /proc's size 0) misses every socket after the first
/// few dozen, which is what a parallel test run has open.
private func readWholeProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return nil }
        if n == 0 { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(contentsOf: chunk[0..<n])
    }
}
#endif
