import Testing

@testable import Server

/// Issue 19: the bell's long-polling limits come from the environment, within ranges.
@Suite struct SocketIOPollingConfigTests {
    @Test func theLongPollingLimitsAreReadAndChecked() throws {
        let defaults = LiveHubConfiguration()
        #expect(defaults.socketIOMaxPayload == 1_000_000 && defaults.socketIOMaxPollingSessions == 10_000)
        let c = try LiveHubConfiguration.fromEnvironment(["LIVEHUB_SOCKETIO_MAX_PAYLOAD": "4096", "LIVEHUB_SOCKETIO_MAX_POLLING_SESSIONS": "0"])
        #expect(c.socketIOMaxPayload == 4096 && c.socketIOMaxPollingSessions == 0)
        #expect(defaults.socketIOConnectTimeout == .seconds(45))
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_SOCKETIO_CONNECT_TIMEOUT": "1.5"]).socketIOConnectTimeout == .milliseconds(1500))
        for (name, value) in [
            ("LIVEHUB_SOCKETIO_MAX_PAYLOAD", "100"), ("LIVEHUB_SOCKETIO_MAX_PAYLOAD", "2000000"), ("LIVEHUB_SOCKETIO_MAX_PAYLOAD", "1e9"),
            ("LIVEHUB_SOCKETIO_MAX_POLLING_SESSIONS", "-1"), ("LIVEHUB_SOCKETIO_MAX_POLLING_SESSIONS", "99999999999999999999"),
            ("LIVEHUB_SOCKETIO_CONNECT_TIMEOUT", "0"), ("LIVEHUB_SOCKETIO_CONNECT_TIMEOUT", "1e300"), ("LIVEHUB_SOCKETIO_CONNECT_TIMEOUT", "nan"),
        ] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
    }
}
