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

/// Runs hub connections on NIO channels: `attach` (ChannelConnection.swift) and `refuse`; with no
/// task while a connection is idle.
enum ConnectionRunner {}

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
