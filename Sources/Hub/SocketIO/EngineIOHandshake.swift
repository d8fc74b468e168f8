/// Checks the query string of `GET /socket.io/?EIO=4&transport=websocket` before the Server
/// upgrades a WebSocket-only session (engine.io-protocol v4 "Handshake"; parameters in any order,
/// extra ones such as python-engineio's `t=` are ignored). A `sid` names a long-polling session to
/// upgrade: `EngineIOPolling.upgradeVerdict` routes those before asking here.
public enum EngineIOHandshake {
    /// An HTTP error answer in engine.io's format: `{"code":N,"message":"…"}` with status 400.
    public struct Rejection: Sendable, Hashable, Error {
        public var status: Int
        public var code: Int
        public var message: String
        public var body: String { #"{"code":\#(self.code),"message":"\#(self.message)"}"# }
    }

    /// nil if the request may be upgraded.
    public static func validate(query: [String: String]) -> Rejection? {
        guard query["EIO"] == "4" else {
            return Rejection(status: 400, code: 5, message: "Unsupported protocol version")
        }
        guard query["transport"] == "websocket" else {
            return Rejection(status: 400, code: 0, message: "Transport unknown")
        }
        if let sid = query["sid"], !sid.isEmpty {
            // An upgrade from long-polling is `EngineIOPolling`'s.
            return Rejection(status: 400, code: 1, message: "Session ID unknown")
        }
        return nil
    }
}
