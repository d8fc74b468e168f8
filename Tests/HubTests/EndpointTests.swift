import Hub
import NIOCore
import Testing

/// The endpoints on the production transport (`attach` on a NIO channel), over loopback TCP.
@Suite("WebSocket endpoints (the server's transport, loopback sockets)")
struct EndpointTests {
    let fast = STOMPConfiguration(tickInterval: .milliseconds(20))

    func startSTOMP(
        hub: Hub, backend: TestLiveRoomBackend, framing: STOMPFraming = .raw,
        queryToken: String? = nil, configuration: STOMPConfiguration? = nil, clientReads: Bool = true
    ) async throws -> WireSocket {
        let endpoint = STOMPEndpoint(hub: hub, backend: backend, authenticator: TestAuthenticator(), configuration: configuration ?? self.fast)
        return try await WireSocket.open(clientReads: clientReads) { channel in
            endpoint.attach(to: channel, framing: framing, queryToken: queryToken, logger: testLogger)
        }
    }

    @Test func aStompClientConnectsSubscribesReceivesAndDisconnects() async throws {
        let hub = Hub()
        let backend = TestLiveRoomBackend()
        let socket = try await startSTOMP(hub: hub, backend: backend)
        // two frames in one WebSocket message, as a binary frame
        socket.send(.binary(Array("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u{0}SUBSCRIBE\nid:sub-0\ndestination:/topic/live/1/chat\nreceipt:r1\n\n\u{0}".utf8)))
        #expect(await eventually { socket.frames.count == 2 })
        #expect(socket.frames.first?.hasPrefix("CONNECTED\nversion:1.2\n") == true)
        #expect(socket.frames.last == "RECEIPT\nreceipt-id:r1\n\n\u{0}")
        #expect(hub.publish(topic: "/topic/live/1/chat", json: #"{"message":"hello"}"#) == 1)
        #expect(await eventually { socket.frames.count == 3 })
        #expect(socket.frames[2].contains("subscription:sub-0\n"))
        #expect(socket.frames[2].hasSuffix("\n\n{\"message\":\"hello\"}\u{0}"))
        socket.send(.text("DISCONNECT\nreceipt:close-1\n\n\u{0}"))
        await socket.closed()
        #expect(socket.frames.last == "RECEIPT\nreceipt-id:close-1\n\n\u{0}")
        #expect(socket.closedWith == 1000)
        #expect(await eventually { backend.closed.withLock { $0.count } == 1 })
        #expect(await eventually { hub.snapshot().connections == 0 })
        socket.leave()
    }

    @Test func aGuestChatIsRefusedOnTheErrorsQueueAndTheConnectionStays() async throws {
        let hub = Hub()
        let backend = TestLiveRoomBackend()
        let socket = try await startSTOMP(hub: hub, backend: backend)
        socket.send(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        socket.send(.text("SUBSCRIBE\nid:sub-1\ndestination:/user/queue/errors\n\n\u{0}"))
        socket.send(.text("SEND\ndestination:/app/live/1/chat\ncontent-type:application/json\n\n{\"message\":\"hi\"}\u{0}"))
        socket.send(.text("SEND\ndestination:/app/live/1/join\nreceipt:j\n\n\u{0}"))
        #expect(await eventually { socket.frames.count == 3 })
        #expect(socket.frames[1].contains("destination:/user/queue/errors\n"))
        #expect(socket.frames[1].contains(#""error":"unauthorized""#))
        #expect(socket.frames[2] == "RECEIPT\nreceipt-id:j\n\n\u{0}")
        #expect(backend.sends.withLock { $0.map(\.destination) } == ["/app/live/1/chat", "/app/live/1/join"])
        #expect(socket.closedWith == nil)
        socket.leave()
        await socket.closed()
    }

    @Test func aSignedInUserIsRateLimitedToFiveSendsPerSecondWithATwoSecondBurst() async throws {
        let hub = Hub(clock: ManualHubClock().clock)
        let backend = TestLiveRoomBackend()
        let socket = try await startSTOMP(hub: hub, backend: backend, queryToken: "good-u1")
        socket.send(.text("CONNECT\naccept-version:1.2\n\n\u{0}SUBSCRIBE\nid:e\ndestination:/user/queue/errors\n\n\u{0}"))
        #expect(RateLimit.stompSend.burst == 10)
        for i in 0..<12 {
            socket.send(.text("SEND\ndestination:/app/live/1/chat\n\n{\"message\":\"\(i)\"}\u{0}"))
        }
        socket.send(.text("SEND\ndestination:/app/live/1/chat\nreceipt:last\n\nx\u{0}"))
        #expect(await eventually { socket.frames.last?.hasPrefix("RECEIPT\nreceipt-id:last") == true })
        #expect(backend.sends.withLock { $0.count } == 10)
        #expect(backend.sends.withLock { $0.first?.userId } == "u1")
        #expect(socket.frames.filter { $0.contains(#""error":"rate-limited""#) }.count == 3)
        #expect(socket.frames.last?.contains("status:refused") == true)
        socket.leave()
        await socket.closed()
    }

    @Test func anExpiredQueryTokenGetsAnErrorFrameAndTheSocketIsClosed() async throws {
        let hub = Hub()
        let socket = try await startSTOMP(hub: hub, backend: TestLiveRoomBackend(), queryToken: "expired")
        socket.send(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        await socket.closed()
        #expect(socket.frames.first?.hasPrefix("ERROR\nmessage:invalid token (token expired)\n") == true)
        #expect(socket.closedWith == 1008)
        socket.leave()
    }

    @Test func anOversizedFrameGetsAClearErrorAndClose() async throws {
        let hub = Hub()
        let socket = try await startSTOMP(hub: hub, backend: TestLiveRoomBackend())
        socket.send(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        socket.send(.text("SEND\ndestination:/app/x\n\n" + String(repeating: "y", count: 70_000) + "\u{0}"))
        await socket.closed()
        #expect(socket.frames.last?.contains("message:frame body too large (max 65536 bytes)") == true)
        socket.leave()
    }

    @Test func sockJSFramingOpensWrapsFramesAndSaysGoAway() async throws {
        let hub = Hub()
        let socket = try await startSTOMP(hub: hub, backend: TestLiveRoomBackend(), framing: .sockJS)
        socket.send(.text(#"["CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u0000","SUBSCRIBE\nid:sub-0\ndestination:/topic/t\n\n\u0000"]"#))
        #expect(await eventually { socket.frames.count >= 2 })
        #expect(socket.frames[0] == "o")
        #expect(socket.frames[1].hasPrefix(#"a["CONNECTED\nversion:1.2\n"#))
        #expect(await eventually { hub.subscriberCount(topic: "/topic/t") == 1 })
        hub.publish(topic: "/topic/t", json: "{}")
        #expect(await eventually { socket.frames.contains { $0.hasPrefix(#"a["MESSAGE\ndestination:/topic/t\n"#) } })
        socket.send(.text(#"["DISCONNECT\n\n\u0000"]"#))
        await socket.closed()
        #expect(socket.frames.last == #"c[3000,"Go away!"]"#)
        socket.leave()
    }

    @Test func aStuckSocketIsDroppedWithoutBlockingThePublisher() async throws {
        let hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: 8, maxBytes: 1 << 20)))
        let backend = TestLiveRoomBackend()
        // A client that never reads: the kernel's buffers fill, then the hub queue (1 MiB).
        let socket = try await startSTOMP(hub: hub, backend: backend, clientReads: false)
        socket.send(.text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u{0}SUBSCRIBE\nid:s\ndestination:/topic/t\n\n\u{0}"))
        #expect(await eventually { hub.subscriberCount(topic: "/topic/t") == 1 })
        let start = ContinuousClock.now
        let big = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
        for _ in 0..<400 { hub.publish(topic: "/topic/t", payload: big) }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(await eventually { hub.snapshot().slowClientDrops == 1 })
        #expect(await eventually { hub.snapshot().connections == 0 })
        #expect(await eventually { backend.closed.withLock { $0.count } == 1 })
        socket.leave()
    }

    @Test func heartbeatsFlowToTheClientAndASilentClientIsDropped() async throws {
        let hub = Hub()
        let config = STOMPConfiguration(heartBeatSend: 50, heartBeatReceive: 50, tickInterval: .milliseconds(10))
        let socket = try await startSTOMP(hub: hub, backend: TestLiveRoomBackend(), configuration: config)
        // server → client every max(50, 50) ms; client → server expected every max(300, 50) ms
        socket.send(.text("CONNECT\naccept-version:1.2\nheart-beat:300,50\n\n\u{0}"))
        #expect(await eventually { socket.frames.filter { $0 == "\n" }.count >= 1 })
        await socket.closed()  // no client heart-beats: closed after 2 × 300 ms of silence
        #expect(socket.closedWith == 1000)
        #expect(await eventually { hub.snapshot().connections == 0 })
        socket.leave()
    }

    // MARK: Socket.IO

    func startSocketIO(
        hub: Hub, backend: TestBellBackend, configuration: SocketIOConfiguration = .init(tickInterval: .milliseconds(20))
    ) async throws -> WireSocket {
        let endpoint = SocketIOEndpoint(hub: hub, backend: backend, authenticator: TestAuthenticator(), configuration: configuration)
        return try await WireSocket.open { channel in endpoint.attach(to: channel, logger: testLogger) }
    }

    @Test func aSocketIOClientConnectsWithATokenReceivesPushesAndGetsAcks() async throws {
        let hub = Hub()
        let backend = TestBellBackend()
        let socket = try await startSocketIO(hub: hub, backend: backend)
        #expect(await eventually { socket.frames.first?.hasPrefix(#"0{"sid":""#) == true })
        socket.send(.text(#"40{"token":"good-u1"}"#))
        #expect(await eventually { socket.frames.count == 2 })
        #expect(socket.frames[1].hasPrefix(#"40{"sid":""#))
        #expect(await eventually { backend.connected.withLock { $0 } == ["u1:true"] })
        #expect(hub.sendToUser(userId: "u1", event: "notification:new", json: #"{"notificationId":"n1"}"#) == 1)
        #expect(await eventually { socket.frames.last == #"42["notification:new",{"notificationId":"n1"}]"# })
        socket.send(.text(#"427["notification:read",{"notificationId":"n1"}]"#))
        #expect(await eventually { socket.frames.last == #"437[{"ok":true,"notificationId":"n1"}]"# })
        socket.send(.text(#"428["notification:read",{"wrong":1}]"#))
        #expect(await eventually { socket.frames.last == #"438[{"error":"bad_payload","message":"notificationId required"}]"# })
        socket.send(.text("41"))
        #expect(await eventually { backend.disconnected.withLock { $0 } == ["u1:true"] })
        #expect(await eventually { hub.snapshot().users == 0 })
        socket.leave()
        await socket.closed()
        #expect(await eventually { backend.disconnected.withLock { $0.count } == 1 })
    }

    @Test func elevenEventsInASecondGetOneRateLimitedAckAndTheSocketStays() async throws {
        let hub = Hub(clock: ManualHubClock().clock)
        let backend = TestBellBackend()
        let socket = try await startSocketIO(hub: hub, backend: backend)
        socket.send(.text(#"40{"token":"good-u2"}"#))
        for i in 1...11 { socket.send(.text("42\(i)[\"notification:read-all\"]")) }
        #expect(await eventually { socket.frames.contains { $0.hasPrefix("4311[") } })
        #expect(socket.frames.contains(#"4311[{"error":"rate_limited","message":"too many messages"}]"#))
        #expect(backend.events.withLock { $0.count } == 10)
        #expect(socket.closedWith == nil)
        socket.leave()
        await socket.closed()
        #expect(await eventually { backend.disconnected.withLock { $0 } == ["u2:true"] })
    }

    @Test func twoTabsOfOneUserBothReceiveAndTheUserStaysOnlineUntilTheLastLeaves() async throws {
        let hub = Hub()
        let backend = TestBellBackend()
        let s1 = try await startSocketIO(hub: hub, backend: backend)
        let s2 = try await startSocketIO(hub: hub, backend: backend)
        s1.send(.text(#"40{"token":"good-u3"}"#))
        s2.send(.text(#"40{"token":"good-u3"}"#))
        #expect(await eventually { hub.connections(ofUser: "u3").count == 2 })
        #expect(hub.sendToUser(userId: "u3", event: "unreadCount:updated", json: #"{"count":1}"#) == 2)
        #expect(await eventually { s1.frames.last == s2.frames.last && s1.frames.last == #"42["unreadCount:updated",{"count":1}]"# })
        s1.leave()
        await s1.closed()
        #expect(await eventually { hub.snapshot().users == 1 })
        s2.leave()
        await s2.closed()
        #expect(await eventually { hub.snapshot().users == 0 })
        #expect(await eventually { backend.disconnected.withLock { $0 }.sorted() == ["u3:false", "u3:true"] })
    }

    @Test func aMissingTokenIsAConnectErrorOverTheWire() async throws {
        let hub = Hub()
        let socket = try await startSocketIO(hub: hub, backend: TestBellBackend())
        socket.send(.text("40"))
        #expect(await eventually { socket.frames.last == #"44{"message":"missing token"}"# })
        socket.leave()
        await socket.closed()
    }

    @Test func shutdownSaysGoodbyeToEveryConnection() async throws {
        let hub = Hub(configuration: .init(shutdownGracePeriod: .seconds(2)))
        let stompSocket = try await startSTOMP(hub: hub, backend: TestLiveRoomBackend())
        let bellSocket = try await startSocketIO(hub: hub, backend: TestBellBackend())
        stompSocket.send(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        #expect(await eventually { hub.snapshot().connections == 2 && stompSocket.frames.count == 1 })
        await hub.shutdown()
        await stompSocket.closed()
        await bellSocket.closed()
        #expect(stompSocket.frames.last?.hasPrefix("ERROR\nmessage:server shutting down") == true)
        #expect(bellSocket.frames.last == "1")
        #expect(stompSocket.closedWith == 1001)
        #expect(await eventually { hub.snapshot().connections == 0 })
        stompSocket.leave()
        bellSocket.leave()
    }
}
