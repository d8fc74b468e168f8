/// A big-endian bit reader over RBSP bytes with Exp-Golomb helpers
/// (ITU-T H.264 §9.1 / H.265 §9.2 `ue(v)`, `se(v)`). Reading past the end throws.
struct BitReader {
    struct OutOfBits: Error {}
    /// A syntax element holds a value its specification does not allow.
    struct OutOfRange: Error {}

    private let bytes: [UInt8]
    private(set) var bitOffset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Removes emulation-prevention bytes (`00 00 03` → `00 00`), H.264 §7.4.1 / H.265 §7.4.2.
    static func rbsp<C: Collection>(fromNAL nal: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(nal.count)
        var zeros = 0
        for byte in nal {
            if zeros >= 2 && byte == 3 {
                zeros = 0
                continue
            }
            out.append(byte)
            zeros = byte == 0 ? zeros + 1 : 0
        }
        return out
    }

    var bitsLeft: Int { bytes.count * 8 - bitOffset }

    mutating func bit() throws -> UInt32 {
        guard bitOffset < bytes.count * 8 else { throw OutOfBits() }
        let byte = bytes[bitOffset >> 3]
        let value = (byte >> (7 - UInt8(bitOffset & 7))) & 1
        bitOffset += 1
        return UInt32(value)
    }

    mutating func bits(_ count: Int) throws -> UInt64 {
        precondition(count <= 64)
        var value: UInt64 = 0
        for _ in 0..<count { value = (value << 1) | UInt64(try bit()) }
        return value
    }

    mutating func flag() throws -> Bool { try bit() == 1 }

    mutating func skip(_ count: Int) throws {
        guard count <= bitsLeft else { throw OutOfBits() }
        bitOffset += count
    }

    /// Unsigned Exp-Golomb `ue(v)`.
    mutating func ue() throws -> UInt32 {
        var leadingZeros = 0
        while try bit() == 0 {
            leadingZeros += 1
            if leadingZeros > 31 { throw OutOfBits() }
        }
        if leadingZeros == 0 { return 0 }
        let rest = try bits(leadingZeros)
        return UInt32((UInt64(1) << leadingZeros) - 1 + rest)
    }

    /// Signed Exp-Golomb `se(v)`.
    mutating func se() throws -> Int32 {
        let k = try ue()
        let magnitude = Int32((k + 1) / 2)
        return k % 2 == 1 ? magnitude : -magnitude
    }
}
