import Hummingbird
import NIOCore

/// The request context of every LiveHub route: Hummingbird's core storage, the peer address
/// (the nginx-rtmp callbacks accept loopback callers). WebSocket upgrades never reach the router
/// (`LiveHubHTTPChannel`).
public struct LiveHubRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The request's connection (SockJS's held requests watch whether it is still open).
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
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
