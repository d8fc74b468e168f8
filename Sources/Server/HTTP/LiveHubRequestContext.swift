import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The request context of every LiveHub route: Hummingbird's core storage, the peer address
/// (the nginx-rtmp callbacks accept loopback callers) and the WebSocket upgrade slot.
public struct LiveHubRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public let remoteAddress: SocketAddress?
    /// The connection's channel (the hub writes upgraded WebSockets on it directly).
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }

    /// True when the peer is on this machine (127.0.0.0/8 or ::1).
    public var isLoopbackPeer: Bool {
        guard let remoteAddress else { return false }
        switch remoteAddress {
        case .v4(let address):
            return (UInt32(bigEndian: address.address.sin_addr.s_addr) >> 24) == 127
        case .v6:
            guard let ip = remoteAddress.ipAddress else { return false }
            return ip == "::1" || ip.hasPrefix("::ffff:127.")
        case .unixDomainSocket:
            return true
        }
    }
}
