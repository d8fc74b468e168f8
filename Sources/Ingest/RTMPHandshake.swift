import NIOCore

/// RTMP 1.0 §5.2 Handshake, server side, "simple" form (PROTOCOLS.md §1).
///
/// Reads C0+C1, answers S0+S1+S2 in one write (S2 echoes C1, so a client that sent the FP9
/// digest form gets its own bytes back, which ffmpeg and OBS accept), then reads C2 and ignores it.
public struct RTMPHandshakeParser: Sendable {
    /// RTMP 1.0 §5.2.2: C0/S0 version byte.
    public static let version: UInt8 = 3
    /// RTMP 1.0 §5.2.3: C1/S1/C2/S2 are 1536 bytes.
    public static let packetSize = 1536

    public enum State: Sendable, Hashable {
        case awaitingC0C1
        case awaitingC2
        case complete
    }

    public enum Action: Sendable {
        /// Write S0+S1+S2 (3073 bytes).
        case send(ByteBuffer)
        /// C2 arrived: the chunk stream starts with the next byte.
        case complete
    }

    public enum Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        case unsupportedVersion(UInt8)
        public var description: String {
            switch self {
            case .unsupportedVersion(let version): return "handshake version \(version) (want 3)"
            }
        }
    }

    public private(set) var state: State = .awaitingC0C1
    private let serverTime: UInt32
    private let randomSeed: UInt64

    /// - Parameters:
    ///   - serverTime: S1's time field (ms); any value works.
    ///   - randomSeed: seeds S1's 1528 random bytes (tests pass a constant for stable output).
    public init(serverTime: UInt32 = 0, randomSeed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.serverTime = serverTime
        self.randomSeed = randomSeed
    }

    /// Consume what is available; `nil` means "need more bytes".
    public mutating func parse(_ buffer: inout ByteBuffer) throws(Error) -> Action? {
        switch state {
        case .awaitingC0C1:
            guard let version = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
            // Versions 3 (plain) and 6 (RTMPE) share C1's layout; only 3 is honoured.
            guard version == Self.version else { throw .unsupportedVersion(version) }
            guard buffer.readableBytes >= 1 + Self.packetSize else { return nil }
            buffer.moveReaderIndex(forwardBy: 1)
            let c1 = buffer.readSlice(length: Self.packetSize)!
            var out = ByteBufferAllocator().buffer(capacity: 1 + 2 * Self.packetSize)
            out.writeInteger(Self.version)
            // S1: time | zero | 1528 random bytes.
            out.writeInteger(serverTime)
            out.writeInteger(UInt32(0))
            var generator = SplitMix64(seed: randomSeed)
            for _ in 0..<(1528 / 8) { out.writeInteger(generator.next()) }
            // S2: echo of C1.
            out.writeImmutableBuffer(c1)
            state = .awaitingC2
            return .send(out)
        case .awaitingC2:
            guard buffer.readableBytes >= Self.packetSize else { return nil }
            buffer.moveReaderIndex(forwardBy: Self.packetSize)
            state = .complete
            return .complete
        case .complete:
            return nil
        }
    }
}

/// Small deterministic generator for S1's filler (not cryptographic: the simple handshake
/// carries no secret).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
