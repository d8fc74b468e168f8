import Hub
import Testing

@Suite("SockJS framing")
struct SockJSFramingTests {
    @Test func infoDocumentHasTheExpectedShape() throws {
        let info = try JSONValue(parsing: SockJSFraming.infoJSON(entropy: 42))
        #expect(info["websocket"] == true)
        #expect(info["cookie_needed"] == false)
        #expect(info["origins"] == ["*:*"])
        #expect(info["entropy"] == 42)
    }

    @Test func closeFrameIsGoAway() {
        #expect(SockJSFraming.closeFrame() == #"c[3000,"Go away!"]"#)
    }

    @Test func messagesAreJSONEscapedIncludingNULControlCharsAndLineSeparators() {
        let frame = SockJSFraming.messageFrame("MESSAGE\ndestination:/t\n\n\"q\"\\\t\u{1}\u{2028}é😀\u{0}")
        #expect(frame == #"a["MESSAGE\ndestination:/t\n\n\"q\"\\\t\u0001\u2028é😀\u0000"]"#)
    }

    @Test func anEncodedFrameDecodesBackToTheSameStrings() throws {
        let originals = ["CONNECT\naccept-version:1.2\n\n\u{0}", "ü\u{7f}\u{2029}\r\n", ""]
        let frame = SockJSFraming.messageFrame(originals.map { Array($0.utf8) })
        #expect(frame.first == UInt8(ascii: "a"))
        let decoded = try SockJSFraming.decodeClientMessage(frame.dropFirst())
        #expect(decoded == originals)
    }

    @Test func clientMessagesMayBeASingleStringOrAnArray() throws {
        #expect(try SockJSFraming.decodeClientMessage(Array(#""x""#.utf8)) == ["x"])
        #expect(try SockJSFraming.decodeClientMessage(Array(#"["a","b\u0000"]"#.utf8)) == ["a", "b\u{0}"])
        #expect(try SockJSFraming.decodeClientMessage(Array("".utf8)) == [])
    }

    @Test func brokenClientJSONIsRejected() {
        #expect(throws: SockJSFraming.DecodeError.self) { try SockJSFraming.decodeClientMessage(Array("[\"a\"".utf8)) }
        #expect(throws: SockJSFraming.DecodeError.notStrings) { try SockJSFraming.decodeClientMessage(Array("[1,2]".utf8)) }
    }
}
