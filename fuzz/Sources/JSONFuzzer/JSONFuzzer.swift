import FuzzSupport
import Hub

/// The hub's JSON parser (RFC 8259; Socket.IO payloads, SockJS frames) and writer.
///
/// Invariants: a parsed document written by `JSONWriter` parses to the same value (numbers compare
/// as written, so `-0` and `0` count the same), and writing it again gives the same bytes.
@_cdecl("JSONFuzzer_main")
public func jsonFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    guard let value = try? JSONValue(parsing: bytes) else { return }
    let written = value.jsonBytes
    guard let again = try? JSONValue(parsing: written) else {
        fuzzCheck(false, "JSONWriter output does not parse: \(String(decoding: written, as: UTF8.self))")
        return
    }
    fuzzCheck(again.jsonBytes == written, "JSON write/parse/write is not stable")
    _ = value.intValue
    _ = value.doubleValue
    _ = value["token"]?.stringValue
    _ = value[0]
}
