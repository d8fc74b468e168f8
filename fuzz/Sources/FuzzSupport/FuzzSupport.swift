/// What every LiveHub fuzz target shares: the libFuzzer driver glue and a reader that turns the
/// fuzzer's bytes into decisions (a "fuzzed data provider").

/// libFuzzer's entry point for programs that have their own `main` (libFuzzer ≥ LLVM 13).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt
) -> CInt

/// Hands control to libFuzzer. SwiftPM links executables with `--defsym main=<Module>_main`, which
/// would shadow libFuzzer's own `main`; so each target defines `<Module>_main` (`@_cdecl`) and calls
/// this with its one-input function.
public func runLibFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ testOneInput: @escaping @convention(c) (UnsafeRawPointer?, Int) -> CInt
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}

/// The fuzzer's input as a copy of its bytes.
public func fuzzBytes(_ data: UnsafeRawPointer?, _ count: Int) -> [UInt8] {
    guard let data, count > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: data, count: count))
}

/// Reads decisions off the front of the input; every read succeeds (zeros once the input is used
/// up), so a harness never branches on "enough bytes?" and small inputs still reach deep code.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var index = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isEmpty: Bool { index >= bytes.count }
    public var remaining: Int { max(0, bytes.count - index) }

    public mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    public mutating func uint32() -> UInt32 { UInt32(uint16()) << 16 | UInt32(uint16()) }

    public mutating func uint64() -> UInt64 { UInt64(uint32()) << 32 | UInt64(uint32()) }

    /// An integer in `range`, read from as few bytes as the range needs (1, 2, 4 or 8, big-endian),
    /// so that a seed written by `make_seeds.py` stays short and readable.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let width = UInt64(bitPattern: Int64(range.upperBound) &- Int64(range.lowerBound))
        let raw: UInt64
        switch width {
        case 0..<256: raw = UInt64(byte())
        case 256..<65536: raw = UInt64(uint16())
        case 65536..<(1 << 32): raw = UInt64(uint32())
        default: raw = uint64()
        }
        if width == UInt64.max { return Int(truncatingIfNeeded: raw) }
        return range.lowerBound &+ Int(truncatingIfNeeded: raw % (width + 1))
    }

    /// One of `choices`.
    public mutating func pick<T>(_ choices: [T]) -> T { choices[int(in: 0...(choices.count - 1))] }

    /// Any double, including NaN, ±infinity, subnormals and huge values.
    public mutating func anyDouble() -> Double { Double(bitPattern: uint64()) }

    /// Up to `maximum` bytes, length first (one or two bytes of length).
    public mutating func chunk(maximum: Int) -> [UInt8] {
        let length = maximum <= 255 ? min(Int(byte()), maximum) : min(Int(uint16()), maximum)
        return take(length)
    }

    public mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, index + max(0, count))
        defer { index = end }
        return index < end ? Array(bytes[index..<end]) : []
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { take(remaining) }

    public mutating func string(maximum: Int) -> String { String(decoding: chunk(maximum: maximum), as: UTF8.self) }
}

/// Stops the fuzzer with a message: a broken invariant is a finding like a crash.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError("invariant broken: \(message())", file: file, line: line) }
}
