public import NIOCore

/// One inbound WebSocket data frame, independent of the WebSocket library (NIO's `WebSocketFrame`
/// maps to it in `HubWebSocketFrameHandler`; tests build these directly).
public struct HubInboundFrame: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case text
        case binary
        case continuation
    }

    public var kind: Kind
    public var data: ByteBuffer
    /// Last frame of the WebSocket message.
    public var fin: Bool

    public init(kind: Kind, data: ByteBuffer, fin: Bool = true) {
        self.kind = kind
        self.data = data
        self.fin = fin
    }

    public static func text(_ string: String, fin: Bool = true) -> HubInboundFrame {
        HubInboundFrame(kind: .text, data: ByteBuffer(string: string), fin: fin)
    }

    public static func binary(_ bytes: [UInt8], fin: Bool = true) -> HubInboundFrame {
        HubInboundFrame(kind: .binary, data: ByteBuffer(bytes: bytes), fin: fin)
    }

    public static func continuation(_ string: String, fin: Bool) -> HubInboundFrame {
        HubInboundFrame(kind: .continuation, data: ByteBuffer(string: string), fin: fin)
    }
}

/// The outbound half of a WebSocket as the hub needs it when it is written by a writer task
/// (`ConnectionRunner.run`); tests use an in-memory recorder.
public protocol HubSocketWriter: Sendable {
    /// Write one complete WebSocket message (text or binary), sharing the buffer.
    func write(_ frame: HubOutboundFrame) async throws
    /// Send a close frame (RFC 6455 code + reason).
    func close(code: UInt16, reason: String?) async
}

/// Collects complete WebSocket messages out of data frames with a size cap.
struct MessageAssembler {
    let maxSize: Int
    private var parts: ByteBuffer?
    private var isText = true

    init(maxSize: Int) { self.maxSize = maxSize }

    enum Result {
        case message(isText: Bool, ByteBuffer)
        case partial
        case tooLarge
    }

    mutating func add(_ frame: HubInboundFrame) -> Result {
        switch frame.kind {
        case .text, .binary:
            self.isText = frame.kind == .text
            if frame.fin {
                self.parts = nil
                guard frame.data.readableBytes <= self.maxSize else { return .tooLarge }
                return .message(isText: self.isText, frame.data)
            }
            self.parts = frame.data
        case .continuation:
            guard self.parts != nil else { return .partial }
            var d = frame.data
            self.parts!.writeBuffer(&d)
        }
        guard let parts = self.parts else { return .partial }
        if parts.readableBytes > self.maxSize {
            self.parts = nil
            return .tooLarge
        }
        if frame.fin {
            self.parts = nil
            return .message(isText: self.isText, parts)
        }
        return .partial
    }
}

/// Runs hub connections. `run` (any transport: tests, other WebSocket libraries): a writer task
/// draining the hub queue onto the socket, a reader task, a ticker, and a watchdog that ends
/// everything when the connection starts closing (at once for a slow consumer, after `closeGrace`
/// otherwise, so the goodbye frames can be flushed). `attach` (ChannelConnection.swift): the
/// server's way, on a NIO channel with no task while idle.
enum ConnectionRunner {
    enum Ended: Sendable {
        /// Reader stopped because the client went away.
        case inboundFinished
        /// Reader stopped because the session asked to close; keep the writer running.
        case readerStopped
        case writerFinished
        case tickerStopped
        case watchdog
    }

    static func run<Inbound: AsyncSequence & Sendable, Socket: HubSocketWriter>(
        connection: HubConnection,
        socket: Socket,
        inbound: Inbound,
        clock: HubClock,
        tickInterval: Duration,
        closeGrace: Duration = .seconds(5),
        coalesce: @escaping @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame],
        goodbye: @escaping @Sendable (HubCloseReason) -> [HubOutboundFrame],
        onFrame: @escaping @Sendable (HubInboundFrame) async -> Bool,
        onTick: @escaping @Sendable () async -> Bool
    ) async where Inbound.Element == HubInboundFrame {
        await withTaskGroup(of: Ended.self) { group in
            group.addTask {
                await Self.writeLoop(connection: connection, socket: socket, clock: clock, coalesce: coalesce, goodbye: goodbye)
                return .writerFinished
            }
            group.addTask {
                do {
                    for try await frame in inbound {
                        if !(await onFrame(frame)) { return .readerStopped }
                    }
                } catch {}
                return .inboundFinished
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: tickInterval)
                    if Task.isCancelled { break }
                    if !(await onTick()) { return .tickerStopped }
                }
                return .tickerStopped
            }
            group.addTask {
                await connection.waitUntilClosing()
                if Task.isCancelled { return .watchdog }
                if !connection.wasDroppedAsSlow {
                    try? await Task.sleep(for: closeGrace)
                }
                return .watchdog
            }
            while let ended = await group.next() {
                switch ended {
                case .readerStopped, .tickerStopped:
                    continue
                case .inboundFinished, .writerFinished, .watchdog:
                    group.cancelAll()
                    return
                }
            }
        }
    }

    static func writeLoop(
        connection: HubConnection, socket: some HubSocketWriter, clock: HubClock,
        coalesce: @Sendable ([HubOutboundFrame]) -> [HubOutboundFrame],
        goodbye: @Sendable (HubCloseReason) -> [HubOutboundFrame]
    ) async {
        while true {
            let items = await connection.nextOutbound()
            if items.isEmpty { return }  // cancelled
            var frames: [HubOutboundFrame] = []
            var closeReason: HubCloseReason?
            for item in items {
                switch item {
                case .frame(let f): frames.append(f)
                case .close(let r):
                    closeReason = r
                }
                if closeReason != nil { break }
            }
            do {
                for f in coalesce(frames) {
                    try await socket.write(f)
                    connection.noteWrite(at: clock.now())
                }
                if let reason = closeReason {
                    for f in goodbye(reason) { try await socket.write(f) }
                    await socket.close(code: reason.webSocketCloseCode, reason: reason.text)
                    return
                }
            } catch {
                return
            }
        }
    }
}

/// Runs `body` on a task of its own and waits for it. For the calls a connection makes into the
/// server (token checks, database reads, chat commits) from its long-lived task: a task keeps the
/// memory its deepest call chain needed until it ends, so one GRDB read on a viewer's connection
/// task left ~7 KiB per idle viewer (measured with `bench/hub/idle_memory.py`); a short task gives
/// it back. Costs a task creation (~µs), paid per SUBSCRIBE/SEND/auth, never per delivery.
func onOwnTask<T: Sendable>(_ body: sending @escaping @isolated(any) () async -> T) async -> T {
    await Task(operation: body).value
}

/// Random session ids (URL-safe).
enum SessionID {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_".utf8)

    static func make(length: Int = 20) -> String {
        var g = SystemRandomNumberGenerator()
        return String(decoding: (0..<length).map { _ in self.alphabet[Int(g.next() % 64)] }, as: UTF8.self)
    }
}
