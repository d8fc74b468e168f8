import NIOCore
import NIOWebSocket
public import WSCore

/// `HubSocketWriter` over WSCore's `WebSocketOutboundWriter`. Text frames are written as
/// `.custom` frames so the shared `ByteBuffer` goes to the socket without a String round trip.
public struct WSCoreSocketWriter: HubSocketWriter {
    public let outbound: WebSocketOutboundWriter

    public init(_ outbound: WebSocketOutboundWriter) {
        self.outbound = outbound
    }

    public func write(_ frame: HubOutboundFrame) async throws {
        switch frame {
        case .text(let b):
            try await self.outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: b)))
        case .binary(let b):
            try await self.outbound.write(.binary(b))
        }
    }

    public func close(code: UInt16, reason: String?) async {
        try? await self.outbound.close(WebSocketErrorCode(codeNumber: Int(code)), reason: reason)
    }
}

/// WSCore's inbound stream as `HubInboundFrame`s.
public struct WSCoreInboundFrames: AsyncSequence, Sendable {
    public typealias Element = HubInboundFrame
    public let stream: WebSocketInboundStream

    public init(_ stream: WebSocketInboundStream) {
        self.stream = stream
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: WebSocketInboundStream.AsyncIterator

        public mutating func next() async throws -> HubInboundFrame? {
            guard let f = try await self.base.next() else { return nil }
            let kind: HubInboundFrame.Kind
            switch f.opcode {
            case .text: kind = .text
            case .binary: kind = .binary
            case .continuation: kind = .continuation
            }
            return HubInboundFrame(kind: kind, data: f.data, fin: f.fin)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.stream.makeAsyncIterator())
    }
}
