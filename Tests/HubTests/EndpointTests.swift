import Hub
import Testing

@Suite("WebSocket glue (in-memory sockets)")
struct EndpointTests {
    let fast = STOMPConfiguration(tickInterval: .milliseconds(20))

    func startSTOMP(
        hub: Hub, backend: TestLiveRoomBackend, socket: RecordingSocket, framing: STOMPFraming = .raw,
        queryToken: String? = nil, configuration: STOMPConfiguration? = nil
    ) -> (AsyncStream<HubInboundFrame>.Continuation, Task<Void, Never>) {
        let (stream, input) = AsyncStream<HubInboundFrame>.makeStream()
        let endpoint = STOMPEndpoint(hub: hub, backend: backend, authenticator: TestAuthenticator(), configuration: configuration ?? self.fast)
        let task = Task {
            await endpoint.serve(inbound: stream, socket: socket, framing: framing, queryToken: queryToken, logger: testLogger)
        }
        return (input, task)
    }

    @Test func aStompClientConnectsSubscribesReceivesAndDisconnects() async throws {
        let hub = Hub()
        let backend = TestLiveRoomBackend()
        let socket = RecordingSocket()
        let (input, task) = startSTOMP(hub: hub, backend: backend, socket: socket)
        // two frames in one WebSocket message, as a binary frame
        input.yield(.binary(Array("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u{0}SUBSCRIBE\nid:sub-0\ndestination:/topic/live/1/chat\nreceipt:r1\n\n\u{0}".utf8)))
        #expect(await eventually { socket.frames.count == 2 })
        #expect(socket.frames.first?.hasPrefix("CONNECTED\nversion:1.2\n") == true)
        #expect(socket.frames.last == "RECEIPT\nreceipt-id:r1\n\n\u{0}")
        #expect(hub.publish(topic: "/topic/live/1/chat", json: #"{"message":"hello"}"#) == 1)
        #expect(await eventually { socket.frames.count == 3 })
        #expect(socket.frames[2].contains("subscription:sub-0\n"))
        #expect(socket.frames[2].hasSuffix("\n\n{\"message\":\"hello\"}\u{0}"))
        input.yield(.text("DISCONNECT\nreceipt:close-1\n\n\u{0}"))
        await task.value
        #expect(socket.frames.last == "RECEIPT\nreceipt-id:close-1\n\n\u{0}")
        #expect(socket.closedWith == 1000)
        #expect(backend.closed.withLock { $0.count } == 1)
        #expect(hub.snapshot().connections == 0)
        input.finish()
    }

    @Test func aGuestChatIsRefusedOnTheErrorsQueueAndTheConnectionStays() async throws {
        let hub = Hub()
        let backend = TestLiveRoomBackend()
        let socket = RecordingSocket()
        let (input, task) = startSTOMP(hub: hub, backend: backend, socket: socket)
        input.yield(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        input.yield(.text("SUBSCRIBE\nid:sub-1\ndestination:/user/queue/errors\n\n\u{0}"))
        input.yield(.text("SEND\ndestination:/app/live/1/chat\ncontent-type:application/json\n\n{\"message\":\"hi\"}\u{0}"))
        input.yield(.text("SEND\ndestination:/app/live/1/join\nreceipt:j\n\n\u{0}"))
        #expect(await eventually { socket.frames.count == 3 })
        #expect(socket.frames[1].contains("destination:/user/queue/errors\n"))
        #expect(socket.frames[1].contains(#""error":"unauthorized""#))
        #expect(socket.frames[2] == "RECEIPT\nreceipt-id:j\n\n\u{0}")
        #expect(backend.sends.withLock { $0.map(\.destination) } == ["/app/live/1/chat", "/app/live/1/join"])
        #expect(socket.closedWith == nil)
        input.finish()
        await task.value
    }

    @Test func aSignedInUserIsRateLimitedToFiveSendsPerSecondWithATwoSecondBurst() async throws {
        let hub = Hub(clock: ManualHubClock().clock)
        let backend = TestLiveRoomBackend()
        let socket = RecordingSocket()
        let (input, task) = startSTOMP(hub: hub, backend: backend, socket: socket, queryToken: "good-u1")
        input.yield(.text("CONNECT\naccept-version:1.2\n\n\u{0}SUBSCRIBE\nid:e\ndestination:/user/queue/errors\n\n\u{0}"))
        #expect(RateLimit.stompSend.burst == 10)
        for i in 0..<12 {
            input.yield(.text("SEND\ndestination:/app/live/1/chat\n\n{\"message\":\"\(i)\"}\u{0}"))
        }
        input.yield(.text("SEND\ndestination:/app/live/1/chat\nreceipt:last\n\nx\u{0}"))
        #expect(await eventually { socket.frames.last?.hasPrefix("RECEIPT\nreceipt-id:last") == true })
        #expect(backend.sends.withLock { $0.count } == 10)
        #expect(backend.sends.withLock { $0.first?.userId } == "u1")
        #expect(socket.frames.filter { $0.contains(#""error":"rate-limited""#) }.count == 3)
        #expect(socket.frames.last?.contains("status:refused") == true)
        input.finish()
        await task.value
    }

    @Test func anExpiredQueryTokenGetsAnErrorFrameAndTheSocketIsClosed() async {
        let hub = Hub()
        let socket = RecordingSocket()
        let (input, task) = startSTOMP(hub: hub, backend: TestLiveRoomBackend(), socket: socket, queryToken: "expired")
        input.yield(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        await task.value
        #expect(socket.frames.first?.hasPrefix("ERROR\nmessage:invalid token (token expired)\n") == true)
        #expect(socket.closedWith == 1008)
        input.finish()
    }

    @Test func anOversizedFrameGetsAClearErrorAndClose() async {
        let hub = Hub()
        let socket = RecordingSocket()
        let (input, task) = startSTOMP(hub: hub, backend: TestLiveRoomBackend(), socket: socket)
        input.yield(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        input.yield(.text("SEND\ndestination:/app/x\n\n" + String(repeating: "y", count: 70_000) + "\u{0}"))
        await task.value
        #expect(socket.frames.last?.contains("message:frame body too large (max 65536 bytes)") == true)
        input.finish()
    }

    @Test func sockJSFramingOpensWrapsFramesAndSaysGoAway() async {
        let hub = Hub()
        let socket = RecordingSocket()
        let (input, task) = startSTOMP(hub: hub, backend: TestLiveRoomBackend(), socket: socket, framing: .sockJS)
        input.yield(.text(#"["CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u0000","SUBSCRIBE\nid:sub-0\ndestination:/topic/t\n\n\u0000"]"#))
        #expect(await eventually { socket.frames.count >= 2 })
        #expect(socket.frames[0] == "o")
        #expect(socket.frames[1].hasPrefix(#"a["CONNECTED\nversion:1.2\n"#))
        #expect(await eventually { hub.subscriberCount(topic: "/topic/t") == 1 })
        hub.publish(topic: "/topic/t", json: "{}")
        #expect(await eventually { socket.frames.contains { $0.hasPrefix(#"a["MESSAGE\ndestination:/topic/t\n"#) } })
        input.yield(.text(#"["DISCONNECT\n\n\u0000"]"#))
        await task.value
        #expect(socket.frames.last == #"c[3000,"Go away!"]"#)
        input.finish()
    }

    @Test func aStuckSocketIsDroppedWithoutBlockingThePublisher() async throws {
        let hub = Hub(configuration: .init(outboundQueue: .init(maxFrames: 8, maxBytes: 1 << 20)))
        let backend = TestLiveRoomBackend()
        let socket = RecordingSocket(stuck: true)
        let (input, task) = startSTOMP(hub: hub, backend: backend, socket: socket)
        input.yield(.text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u{0}SUBSCRIBE\nid:s\ndestination:/topic/t\n\n\u{0}"))
        #expect(await eventually { hub.subscriberCount(topic: "/topic/t") == 1 })
        let start = ContinuousClock.now
        for _ in 0..<100 { hub.publish(topic: "/topic/t", json: "{}") }
        #expect(ContinuousClock.now - start < .seconds(1))
        await task.value
        #expect(hub.snapshot().slowClientDrops == 1)
        #expect(hub.snapshot().connections == 0)
        #expect(backend.closed.withLock { $0.count } == 1)
        input.finish()
    }

    @Test func heartbeatsFlowToTheClientAndASilentClientIsDropped() async {
        let hub = Hub()
        let socket = RecordingSocket()
        let config = STOMPConfiguration(heartBeatSend: 50, heartBeatReceive: 50, tickInterval: .milliseconds(10))
        let (input, task) = startSTOMP(hub: hub, backend: TestLiveRoomBackend(), socket: socket, configuration: config)
        // server → client every max(50, 50) ms; client → server expected every max(300, 50) ms
        input.yield(.text("CONNECT\naccept-version:1.2\nheart-beat:300,50\n\n\u{0}"))
        #expect(await eventually { socket.frames.filter { $0 == "\n" }.count >= 1 })
        await task.value  // no client heart-beats: closed after 2 × 300 ms of silence
        #expect(socket.closedWith == 1000)
        #expect(hub.snapshot().connections == 0)
        input.finish()
    }

    // MARK: Socket.IO

    func startSocketIO(
        hub: Hub, backend: TestBellBackend, socket: RecordingSocket, configuration: SocketIOConfiguration = .init(tickInterval: .milliseconds(20))
    ) -> (AsyncStream<HubInboundFrame>.Continuation, Task<Void, Never>) {
        let (stream, input) = AsyncStream<HubInboundFrame>.makeStream()
        let endpoint = SocketIOEndpoint(hub: hub, backend: backend, authenticator: TestAuthenticator(), configuration: configuration)
        let task = Task { await endpoint.serve(inbound: stream, socket: socket, logger: testLogger) }
        return (input, task)
    }

    @Test func aSocketIOClientConnectsWithATokenReceivesPushesAndGetsAcks() async throws {
        let hub = Hub()
        let backend = TestBellBackend()
        let socket = RecordingSocket()
        let (input, task) = startSocketIO(hub: hub, backend: backend, socket: socket)
        #expect(await eventually { socket.frames.first?.hasPrefix(#"0{"sid":""#) == true })
        input.yield(.text(#"40{"token":"good-u1"}"#))
        #expect(await eventually { socket.frames.count == 2 })
        #expect(socket.frames[1].hasPrefix(#"40{"sid":""#))
        #expect(await eventually { backend.connected.withLock { $0 } == ["u1:true"] })
        #expect(hub.sendToUser(userId: "u1", event: "notification:new", json: #"{"notificationId":"n1"}"#) == 1)
        #expect(await eventually { socket.frames.last == #"42["notification:new",{"notificationId":"n1"}]"# })
        input.yield(.text(#"427["notification:read",{"notificationId":"n1"}]"#))
        #expect(await eventually { socket.frames.last == #"437[{"ok":true,"notificationId":"n1"}]"# })
        input.yield(.text(#"428["notification:read",{"wrong":1}]"#))
        #expect(await eventually { socket.frames.last == #"438[{"error":"bad_payload","message":"notificationId required"}]"# })
        input.yield(.text("41"))
        #expect(await eventually { backend.disconnected.withLock { $0 } == ["u1:true"] })
        #expect(hub.snapshot().users == 0)
        input.finish()
        await task.value
        #expect(backend.disconnected.withLock { $0.count } == 1)
    }

    @Test func elevenEventsInASecondGetOneRateLimitedAckAndTheSocketStays() async throws {
        let hub = Hub(clock: ManualHubClock().clock)
        let backend = TestBellBackend()
        let socket = RecordingSocket()
        let (input, task) = startSocketIO(hub: hub, backend: backend, socket: socket)
        input.yield(.text(#"40{"token":"good-u2"}"#))
        for i in 1...11 { input.yield(.text("42\(i)[\"notification:read-all\"]")) }
        #expect(await eventually { socket.frames.contains { $0.hasPrefix("4311[") } })
        #expect(socket.frames.contains(#"4311[{"error":"rate_limited","message":"too many messages"}]"#))
        #expect(backend.events.withLock { $0.count } == 10)
        #expect(socket.closedWith == nil)
        input.finish()
        await task.value
        #expect(backend.disconnected.withLock { $0 } == ["u2:true"])
    }

    @Test func twoTabsOfOneUserBothReceiveAndTheUserStaysOnlineUntilTheLastLeaves() async throws {
        let hub = Hub()
        let backend = TestBellBackend()
        let s1 = RecordingSocket()
        let s2 = RecordingSocket()
        let (in1, t1) = startSocketIO(hub: hub, backend: backend, socket: s1)
        let (in2, t2) = startSocketIO(hub: hub, backend: backend, socket: s2)
        in1.yield(.text(#"40{"token":"good-u3"}"#))
        in2.yield(.text(#"40{"token":"good-u3"}"#))
        #expect(await eventually { hub.connections(ofUser: "u3").count == 2 })
        #expect(hub.sendToUser(userId: "u3", event: "unreadCount:updated", json: #"{"count":1}"#) == 2)
        #expect(await eventually { s1.frames.last == s2.frames.last && s1.frames.last == #"42["unreadCount:updated",{"count":1}]"# })
        in1.finish()
        await t1.value
        #expect(hub.snapshot().users == 1)
        in2.finish()
        await t2.value
        #expect(hub.snapshot().users == 0)
        #expect(backend.disconnected.withLock { $0 }.sorted() == ["u3:false", "u3:true"])
    }

    @Test func aMissingTokenIsAConnectErrorOverTheWire() async {
        let hub = Hub()
        let socket = RecordingSocket()
        let (input, task) = startSocketIO(hub: hub, backend: TestBellBackend(), socket: socket)
        input.yield(.text("40"))
        #expect(await eventually { socket.frames.last == #"44{"message":"missing token"}"# })
        input.finish()
        await task.value
    }

    @Test func shutdownSaysGoodbyeToEveryConnection() async throws {
        let hub = Hub(configuration: .init(shutdownGracePeriod: .seconds(2)))
        let stompSocket = RecordingSocket()
        let bellSocket = RecordingSocket()
        let (in1, t1) = startSTOMP(hub: hub, backend: TestLiveRoomBackend(), socket: stompSocket)
        let (in2, t2) = startSocketIO(hub: hub, backend: TestBellBackend(), socket: bellSocket)
        in1.yield(.text("CONNECT\naccept-version:1.2\n\n\u{0}"))
        #expect(await eventually { hub.snapshot().connections == 2 && stompSocket.frames.count == 1 })
        await hub.shutdown()
        await t1.value
        await t2.value
        #expect(stompSocket.frames.last?.hasPrefix("ERROR\nmessage:server shutting down") == true)
        #expect(bellSocket.frames.last == "1")
        #expect(stompSocket.closedWith == 1001)
        #expect(hub.snapshot().connections == 0)
        in1.finish()
        in2.finish()
    }
}
