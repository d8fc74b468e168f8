import Hub
import Testing

@Suite("STOMP frame parser")
struct STOMPFrameParserTests {
    func parseAll(_ text: String, limits: STOMPParserLimits = .init()) throws -> [STOMPFrameParser.Output] {
        var parser = STOMPFrameParser(limits: limits)
        parser.append(text)
        var out: [STOMPFrameParser.Output] = []
        while true {
            let o = try parser.next()
            if o == .needMoreData { return out }
            out.append(o)
        }
    }

    @Test func parsesASendFrameWithHeadersAndBody() throws {
        let out = try parseAll("SEND\ndestination:/app/live/1/chat\ncontent-type:application/json\n\n{\"message\":\"hi\"}\u{0}")
        #expect(out.count == 1)
        guard case .frame(let f) = out[0] else { Issue.record("no frame"); return }
        #expect(f.command == .send)
        #expect(f.headers["destination"] == "/app/live/1/chat")
        #expect(f.headers["content-type"] == "application/json")
        #expect(f.bodyString == #"{"message":"hi"}"#)
    }

    @Test func dripFeedingByteByByteYieldsTheSameFrames() throws {
        let text = "CONNECT\naccept-version:1.2\nheart-beat:10000,10000\n\n\u{0}\nSUBSCRIBE\nid:sub-0\ndestination:/topic/a\n\n\u{0}SEND\ndestination:/app/x\ncontent-length:3\n\na\u{0}b\u{0}\n\n"
        let whole = try parseAll(text)
        var parser = STOMPFrameParser()
        var dripped: [STOMPFrameParser.Output] = []
        for byte in text.utf8 {
            parser.append([byte])
            while true {
                let o = try parser.next()
                if o == .needMoreData { break }
                dripped.append(o)
            }
        }
        #expect(dripped == whole)
        #expect(whole.filter { if case .frame = $0 { return true } else { return false } }.count == 3)
        #expect(whole.filter { $0 == .heartbeat }.count == 3)
    }

    @Test func manyFramesInOneBufferAreAllReturned() throws {
        let one = "SEND\ndestination:/app/x\n\nhello\u{0}"
        let out = try parseAll(String(repeating: one, count: 50))
        #expect(out.count == 50)
        #expect(out.allSatisfy { if case .frame(let f) = $0 { return f.bodyString == "hello" } else { return false } })
    }

    @Test func contentLengthBodiesMayContainNUL() throws {
        let out = try parseAll("SEND\ndestination:/app/x\ncontent-length:5\n\na\u{0}b\u{0}c\u{0}")
        guard case .frame(let f) = out.first else { Issue.record("no frame"); return }
        #expect(f.body == [0x61, 0, 0x62, 0, 0x63])
    }

    @Test func contentLengthNotFollowedByNULIsAnError() {
        #expect(throws: STOMPParseError.missingNullTerminator) {
            try parseAll("SEND\ndestination:/app/x\ncontent-length:2\n\nabc\u{0}")
        }
    }

    @Test func headerValuesAreUnescapedExceptInConnect() throws {
        let out = try parseAll("SEND\ndestination:/app/a\\cb\nx:l1\\nl2\\r\\\\\n\n\u{0}CONNECT\nlogin:a\\cb\n\n\u{0}")
        guard case .frame(let send) = out[0], case .frame(let connect) = out[1] else { Issue.record("frames"); return }
        #expect(send.headers["destination"] == "/app/a:b")
        #expect(send.headers["x"] == "l1\nl2\r\\")
        #expect(connect.headers["login"] == "a\\cb")
    }

    @Test func anUndefinedEscapeIsAnError() {
        #expect(throws: STOMPParseError.invalidEscape) { try parseAll("SEND\ndestination:a\\tb\n\n\u{0}") }
    }

    @Test func theFirstOfRepeatedHeadersWins() throws {
        let out = try parseAll("SEND\ndestination:/app/first\ndestination:/app/second\n\n\u{0}")
        guard case .frame(let f) = out.first else { Issue.record("no frame"); return }
        #expect(f.headers["destination"] == "/app/first")
        #expect(f.headers.count == 2)
    }

    @Test func crlfLineEndingsAreAccepted() throws {
        let out = try parseAll("SEND\r\ndestination:/app/x\r\n\r\nbody\u{0}\r\n")
        #expect(out.count == 2)
        guard case .frame(let f) = out.first else { Issue.record("no frame"); return }
        #expect(f.headers["destination"] == "/app/x")
        #expect(f.bodyString == "body")
        #expect(out[1] == .heartbeat)
    }

    @Test func bareEOLsAreHeartbeats() throws {
        #expect(try parseAll("\n\r\n\n") == [.heartbeat, .heartbeat, .heartbeat])
    }

    @Test func anUnknownCommandIsAnError() {
        #expect(throws: STOMPParseError.unknownCommand("HELLO")) { try parseAll("HELLO\n\n\u{0}") }
    }

    @Test func aHeaderWithoutColonIsAnError() {
        #expect(throws: STOMPParseError.malformedHeader) { try parseAll("SEND\nnocolon\n\n\u{0}") }
    }

    @Test func aBadContentLengthIsAnError() {
        #expect(throws: STOMPParseError.invalidContentLength) { try parseAll("SEND\ncontent-length:-4\n\n\u{0}") }
        #expect(throws: STOMPParseError.invalidContentLength) { try parseAll("SEND\ncontent-length:abc\n\n\u{0}") }
    }

    @Test func aBodyWithoutNULFailsOnceItPassesTheLimit() throws {
        let limits = STOMPParserLimits(maxBodyLength: 1024)
        var parser = STOMPFrameParser(limits: limits)
        parser.append("SEND\ndestination:/app/x\n\n")
        parser.append([UInt8](repeating: 0x61, count: 1000))
        #expect(try parser.next() == .needMoreData)
        parser.append([UInt8](repeating: 0x61, count: 100))
        #expect(throws: STOMPParseError.bodyTooLarge(limit: 1024)) { try parser.next() }
        // the parser stays failed
        #expect(throws: STOMPParseError.bodyTooLarge(limit: 1024)) { try parser.next() }
    }

    @Test func aOneMegabyteBodyIsRefused() {
        let big = String(repeating: "x", count: 1 << 20)
        #expect(throws: STOMPParseError.bodyTooLarge(limit: 64 * 1024)) { try parseAll("SEND\ndestination:/app/x\n\n\(big)\u{0}") }
        #expect(throws: STOMPParseError.bodyTooLarge(limit: 64 * 1024)) {
            try parseAll("SEND\ndestination:/app/x\ncontent-length:\(1 << 20)\n\n")
        }
    }

    @Test func aOneMegabyteHeaderIsRefused() {
        let big = String(repeating: "x", count: 1 << 20)
        #expect(throws: STOMPParseError.lineTooLong(limit: 8 * 1024)) { try parseAll("SEND\nx:\(big)") }
        #expect(throws: STOMPParseError.lineTooLong(limit: 8 * 1024)) { try parseAll("SEND\nx:\(big)\n\n\u{0}") }
    }

    @Test func tooManyHeadersIsAnError() {
        let headers = (0..<70).map { "h\($0):v\n" }.joined()
        #expect(throws: STOMPParseError.tooManyHeaders(limit: 64)) { try parseAll("SEND\n\(headers)\n\u{0}") }
    }

    @Test func encodedFramesParseBackToTheSameFrame() throws {
        let frame = STOMPFrame(.message, headers: ["destination": "/topic/a:b", "x": "line\nbreak\\"], body: [0x41, 0x00, 0x42])
        let bytes = STOMPFrameEncoder.encode(frame)
        var parser = STOMPFrameParser()
        parser.append(bytes)
        guard case .frame(let back) = try parser.next() else { Issue.record("no frame"); return }
        #expect(back.command == .message)
        #expect(back.headers["destination"] == "/topic/a:b")
        #expect(back.headers["x"] == "line\nbreak\\")
        #expect(back.headers["content-length"] == "3")
        #expect(back.body == [0x41, 0x00, 0x42])
    }

    @Test func connectedHeadersAreNotEscapedByTheEncoder() {
        let bytes = STOMPFrameEncoder.encode(STOMPFrame(.connected, headers: ["server": "a:b"]))
        #expect(String(decoding: bytes, as: UTF8.self) == "CONNECTED\nserver:a:b\n\n\u{0}")
    }
}
