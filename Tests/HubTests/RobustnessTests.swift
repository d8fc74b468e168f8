import Hub
import Testing

/// Deterministic xorshift generator so failures are reproducible.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state ^= self.state << 13
        self.state ^= self.state >> 7
        self.state ^= self.state << 17
        return self.state
    }
}

@Suite("Hostile input")
struct RobustnessTests {
    /// Bytes biased towards protocol punctuation so the parsers get past their first checks.
    func hostileBytes(_ rng: inout XorShift, count: Int) -> [UInt8] {
        let alphabet: [UInt8] = Array("SENDCONNECTSUBSCRIBE:\\\n\r\0{}[]\",0123456789/-acnrt ".utf8) + [0xFF, 0xC3, 0xE2, 0x80, 0xA8]
        return (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
    }

    @Test func theStompParserNeverTrapsOnRandomInputAndAlwaysTerminates() {
        var rng = XorShift(state: 0x9E37_79B9_7F4A_7C15)
        var frames = 0
        var errors = 0
        for _ in 0..<2000 {
            var parser = STOMPFrameParser(limits: .init(maxBodyLength: 256, maxHeaderLineLength: 64, maxHeaders: 4))
            parser.append("SEND\n")
            parser.append(hostileBytes(&rng, count: Int(rng.next() % 400)))
            var steps = 0
            loop: while steps < 1000 {
                steps += 1
                do {
                    switch try parser.next() {
                    case .needMoreData: break loop
                    case .frame: frames += 1
                    case .heartbeat: continue
                    }
                } catch {
                    errors += 1
                    break loop
                }
            }
            #expect(steps < 1000)
        }
        #expect(errors > 0)
        #expect(frames + errors > 0)
    }

    @Test func socketIOAndJSONDecodersNeverTrapOnRandomInput() {
        var rng = XorShift(state: 42)
        for _ in 0..<3000 {
            let bytes = hostileBytes(&rng, count: Int(rng.next() % 80))
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? SocketIOPacket.decode("2" + text)
            _ = try? SocketIOPacket.decode(text)
            _ = try? EngineIOPacket.decode(text)
            _ = try? JSONValue(parsing: bytes)
            _ = try? SockJSFraming.decodeClientMessage(bytes)
        }
        var s = SocketIOSession(engineSid: "E", socketSid: "S", identity: HubIdentity(userId: "u", username: "u"), now: .zero)
        _ = s.receive("40", now: .zero)
        for _ in 0..<500 where !s.isClosed {
            _ = s.receive("42" + String(decoding: hostileBytes(&rng, count: 30), as: UTF8.self), now: .zero)
        }
        #expect(s.isClosed)  // garbage eventually closes, never crashes
    }

    @Test func aSocketIOPacketAboveMaxPayloadClosesTheConnection() async throws {
        let hub = Hub()
        let endpoint = SocketIOEndpoint(
            hub: hub, backend: TestBellBackend(), authenticator: TestAuthenticator(),
            configuration: .init(maxPayload: 1000, tickInterval: .milliseconds(20)))
        let socket = try await WireSocket.open { channel in endpoint.attach(to: channel, logger: testLogger) }
        socket.send(.text(#"40{"token":"good-u1"}"#))
        socket.send(.text("42[\"x\",\"" + String(repeating: "a", count: 600), fin: false))
        socket.send(.continuation(String(repeating: "b", count: 600) + "\"]", fin: true))
        await socket.closed()
        #expect(socket.closedWith == 1009)
        #expect(await eventually { hub.snapshot().users == 0 })
    }
}
