import Benchmark
import Foundation
import Ingest
import MediaCore
import NIOCore

// RTMP ingest hot paths, fed with `media-fixtures/captures/ffmpeg-h264-aac.rtmp`: the client → server
// bytes of a real `ffmpeg -c copy -f flv rtmp://…` publish of h264-aac-2s-gop.flv (6 s, 640x360
// H.264 + AAC, 270 KB), as recorded by media-fixtures/record-capture.sh.

/// Repository root (this file is Benchmarks/Benchmarks/IngestBenchmarks/IngestBenchmarks.swift).
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

func captureBytes() -> [UInt8] {
    let url = repository.appendingPathComponent("media-fixtures/captures/ffmpeg-h264-aac.rtmp")
    guard let data = try? Data(contentsOf: url) else { fatalError("cannot read \(url.path)") }
    return [UInt8](data)
}

/// C0 + C1 + C2 (RTMP 1.0 §5.2): what a client sends before the first chunk.
let handshakeLength = 1 + 2 * 1536

/// Socket reads and their total size.
struct Reads {
    var pieces: [ByteBuffer]
    var bytes: Int
}

/// The capture cut as a socket would deliver it: `pieceSize`-byte reads.
func pieces(of bytes: ArraySlice<UInt8>, size: Int) -> [ByteBuffer] {
    stride(from: bytes.startIndex, to: bytes.endIndex, by: size).map { start in
        ByteBuffer(bytes: bytes[start..<min(bytes.endIndex, start + size)])
    }
}

/// What RTMPIngestConnection does with the chunk stream (receive → nextMessage until nil, Set Chunk
/// Size and Abort applied before the next message), without the message/session layers.
/// Returns (messages, payload bytes).
@inline(never)
func decodeChunks(_ pieces: [ByteBuffer]) throws -> (Int, Int) {
    var decoder = RTMPChunkDecoder()
    var inbound = ByteBuffer()
    var messages = 0
    var payloadBytes = 0
    for piece in pieces {
        if inbound.readableBytes == 0 {
            inbound = piece
        } else {
            var piece = piece
            inbound.writeBuffer(&piece)
        }
        while let message = try decoder.nextMessage(from: &inbound) {
            messages += 1
            payloadBytes += message.payload.readableBytes
            switch message.typeId {
            case RTMPMessage.TypeID.setChunkSize:
                if let size = message.payload.getInteger(at: message.payload.readerIndex, as: UInt32.self) {
                    try decoder.setChunkSize(size & 0x7FFF_FFFF)
                }
            case RTMPMessage.TypeID.abort:
                if let csid = message.payload.getInteger(at: message.payload.readerIndex, as: UInt32.self) {
                    decoder.abort(chunkStreamId: csid)
                }
            default:
                break
            }
        }
        if inbound.readableBytes == 0 { inbound.clear() }
    }
    return (messages, payloadBytes)
}

/// The whole server side of one connection: handshake, chunks, messages, publish session, FLV demux.
/// Returns the number of media packets emitted.
@inline(never)
func replayConnection(_ pieces: [ByteBuffer]) throws -> Int {
    var connection = RTMPIngestConnection(handshake: RTMPHandshakeParser(randomSeed: 7))
    var packets = 0
    func handle(_ actions: [RTMPIngestConnection.Action], _ connection: inout RTMPIngestConnection) -> Bool {
        var resume = false
        for action in actions {
            switch action {
            case .authorize:
                _ = handle(connection.authorizationAccepted(), &connection)
                resume = true
            case .emit(.packet):
                packets += 1
            case .emit(let event):
                blackHole(event)
            case .write(let bytes):
                blackHole(bytes)
            default:
                break
            }
        }
        return resume
    }
    for piece in pieces {
        connection.receive(piece)
        while handle(try connection.process(), &connection) {}
    }
    return packets
}

/// The first message of `typeId` in the capture (setup only).
func firstMessage(typeId: UInt8, in bytes: [UInt8]) throws -> ByteBuffer {
    var decoder = RTMPChunkDecoder()
    var buffer = ByteBuffer(bytes: bytes[handshakeLength...])
    while let message = try decoder.nextMessage(from: &buffer) {
        if message.typeId == RTMPMessage.TypeID.setChunkSize, let size = message.payload.getInteger(at: message.payload.readerIndex, as: UInt32.self) {
            try decoder.setChunkSize(size)
        }
        if message.typeId == typeId { return message.payload }
    }
    fatalError("no message of type \(typeId) in the capture")
}

let megabytesPerSecond = BenchmarkMetric.custom("Throughput (MB/s)", polarity: .prefersLarger, useScalingFactor: false)
let packetsPerSecond = BenchmarkMetric.custom("Media packets/s", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        timeUnits: .microseconds,
        warmupIterations: 10,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000)

    // 1. Chunk reassembly: MB/s of capture bytes (handshake excluded), per socket read size.
    //    1,400 B ≈ one TCP segment per read (a live publisher at a few Mbit/s); 64 KiB ≈ NIO's largest
    //    adaptive read (a backlog, or a fast uplink).
    for readSize in [1400, 65536] {
        Benchmark(
            "RTMP chunk decode, \(readSize) B reads",
            configuration: .init(
                metrics: Benchmark.defaultConfiguration.metrics + [megabytesPerSecond],
                units: [megabytesPerSecond: .count, .mallocCountTotal: .count])
        ) { (benchmark: Benchmark, input: Reads) throws in
            let start = ContinuousClock.now
            let (messages, payload) = try decodeChunks(input.pieces)
            let elapsed = ContinuousClock.now - start
            benchmark.stopMeasurement()
            blackHole(payload)
            guard messages > 400 else { return benchmark.error("only \(messages) messages decoded") }
            benchmark.measurement(megabytesPerSecond, Int(Double(input.bytes) / elapsed.seconds / 1e6))
        } setup: {
            let bytes = captureBytes()[handshakeLength...]
            return Reads(pieces: pieces(of: bytes, size: readSize), bytes: bytes.count)
        }
    }

    // 2. AMF0: the two command payloads every publish starts with, as ffmpeg sent them.
    //    Throughput = decodes/s (1,000 per iteration).
    for (name, typeId) in [("connect command", RTMPMessage.TypeID.commandAMF0), ("@setDataFrame onMetaData", RTMPMessage.TypeID.dataAMF0)] {
        Benchmark(
            "AMF0 decode \(name)",
            configuration: .init(
                metrics: [.wallClock, .throughput, .mallocCountTotal], timeUnits: .nanoseconds, scalingFactor: .kilo)
        ) { (benchmark: Benchmark, payload: ByteBuffer) throws in
            let decoder = AMF0Decoder()
            for _ in benchmark.scaledIterations {
                blackHole(try decoder.decodeAll(payload))
            }
        } setup: {
            let payload = try firstMessage(typeId: typeId, in: captureBytes())
            // Sanity: what the benchmark decodes is really that command.
            let values = try AMF0Decoder().decodeAll(payload)
            let head = values.first?.stringValue
            precondition(head == (typeId == RTMPMessage.TypeID.commandAMF0 ? "connect" : "@setDataFrame"), "unexpected \(values)")
            return payload
        }
    }

    // 3. The whole ingest of one connection (handshake → chunks → messages → session → FLV demux →
    //    StreamEvents), 4 KiB reads: MB/s of capture bytes and media packets/s.
    Benchmark(
        "RTMP ingest connection (capture → StreamEvents), 4096 B reads",
        configuration: .init(
            metrics: Benchmark.defaultConfiguration.metrics + [megabytesPerSecond, packetsPerSecond],
            units: [megabytesPerSecond: .count, packetsPerSecond: .count, .mallocCountTotal: .count])
    ) { (benchmark: Benchmark, input: Reads) throws in
        let start = ContinuousClock.now
        let packets = try replayConnection(input.pieces)
        let elapsed = ContinuousClock.now - start
        benchmark.stopMeasurement()
        guard packets > 400 else { return benchmark.error("only \(packets) packets emitted") }
        benchmark.measurement(megabytesPerSecond, Int(Double(input.bytes) / elapsed.seconds / 1e6))
        benchmark.measurement(packetsPerSecond, Int(Double(packets) / elapsed.seconds))
    } setup: {
        let bytes = captureBytes()
        return Reads(pieces: pieces(of: bytes[...], size: 4096), bytes: bytes.count)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
