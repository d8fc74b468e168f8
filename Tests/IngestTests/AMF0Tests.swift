import Ingest
import NIOCore
import Testing

@Suite("AMF0")
struct AMF0Tests {
    private func roundTrip(_ values: [AMF0Value]) throws -> [AMF0Value] {
        var buffer = ByteBuffer()
        AMF0Encoder.encode(values, into: &buffer)
        return try AMF0Decoder(maxStringLength: 1 << 20).decodeAll(buffer)
    }

    @Test("every AMF0 type survives an encode/decode round trip")
    func everyTypeRoundTrips() throws {
        let values: [AMF0Value] = [
            .number(29.97), .boolean(true), .boolean(false), .string("FMLE/3.0 (compatible; FMSc/1.0)"), .null, .undefined,
            .strictArray([.number(1), .string("two"), .null]),
            .date(millisecondsSince1970: 1_700_000_000_000, timeZone: 0),
            .string(String(repeating: "x", count: 70_000)),  // long string (0x0C)
        ]
        #expect(try roundTrip(values) == values)
    }

    @Test("objects keep the order of their properties")
    func objectsKeepOrder() throws {
        let object: AMF0Object = ["zeta": .number(1), "alpha": .string("a"), "mid": .object(["inner": .boolean(true)])]
        let decoded = try roundTrip([.object(object)])
        #expect(decoded == [.object(object)])
        #expect(decoded.first?.objectValue?.properties.map(\.name) == ["zeta", "alpha", "mid"])
    }

    @Test("ECMA arrays round-trip in order and are looked up by name")
    func ecmaArraysRoundTrip() throws {
        let metadata: AMF0Object = ["width": .number(640), "height": .number(360), "videocodecid": .number(7), "encoder": .string("obs")]
        let decoded = try roundTrip([.string("onMetaData"), .ecmaArray(metadata)])
        #expect(decoded == [.string("onMetaData"), .ecmaArray(metadata)])
        #expect(decoded[1].objectValue?["height"] == .number(360))
    }

    @Test("the encoder writes the exact bytes of the AMF0 specification")
    func encoderWritesSpecBytes() {
        var buffer = ByteBuffer()
        AMF0Encoder.encode([.string("a"), .object(["b": .null]), .ecmaArray(["c": .boolean(true)])], into: &buffer)
        #expect(Array(buffer.readableBytesView) == [
            0x02, 0x00, 0x01, 0x61,
            0x03, 0x00, 0x01, 0x62, 0x05, 0x00, 0x00, 0x09,
            0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x63, 0x01, 0x01, 0x00, 0x00, 0x09,
        ])
    }

    @Test("a 1 MB string is refused by the string length limit")
    func megabyteStringIsRefused() {
        var buffer = ByteBuffer()
        AMF0Encoder.encode(.string(String(repeating: "k", count: 1 << 20)), into: &buffer)
        #expect(throws: AMF0DecodingError.stringTooLong(length: 1 << 20, limit: 64 * 1024)) {
            try AMF0Decoder().decodeAll(buffer)
        }
    }

    @Test("nesting deeper than the limit is refused")
    func deepNestingIsRefused() {
        var value = AMF0Value.null
        for _ in 0..<40 { value = .object(["n": value]) }
        var buffer = ByteBuffer()
        AMF0Encoder.encode(value, into: &buffer)
        #expect(throws: AMF0DecodingError.nestingTooDeep(limit: 16)) { try AMF0Decoder().decodeAll(buffer) }
    }

    @Test("truncated values, unknown markers and huge strict-array counts are errors, not crashes")
    func malformedInputIsAnError() {
        #expect(throws: AMF0DecodingError.truncated) { try AMF0Decoder().decodeAll(ByteBuffer(bytes: [0x00, 0x40])) }
        #expect(throws: AMF0DecodingError.unsupportedMarker(0x11)) { try AMF0Decoder().decodeAll(ByteBuffer(bytes: [0x11])) }
        #expect(throws: AMF0DecodingError.tooManyElements(count: Int(UInt32.max), limit: 4096)) {
            try AMF0Decoder().decodeAll(ByteBuffer(bytes: [0x0A, 0xFF, 0xFF, 0xFF, 0xFF]))
        }
        #expect(throws: AMF0DecodingError.missingObjectEnd) {
            try AMF0Decoder().decodeAll(ByteBuffer(bytes: [0x03, 0x00, 0x00, 0x07]))
        }
    }
}
