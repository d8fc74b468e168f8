import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

@Suite struct SystemTests {
    @Test func healthzAnswersOk() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                let decoded = try object(response)
                #expect(decoded["status"] as? String == "ok")
            }
        }
    }

    @Test func metricsCountRequestsByRouteAndRoomsByStatus() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            _ = try await client.execute(uri: "/v1/notifications/live/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"m"}"#))
            _ = try await client.execute(uri: "/v1/notifications/live/rooms/missing", method: .get)
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: response.body ?? ByteBuffer())
                #expect(text.contains("livehub_uptime_seconds"))
                #expect(text.contains(#"livehub_rooms{status="PENDING"} 1"#))
                #expect(text.contains(#"livehub_rooms{status="LIVE"} 0"#))
                #expect(text.contains(#"route="/v1/notifications/live/rooms""#) && text.contains(#"status="201""#))
                #expect(text.contains(#"route="/v1/notifications/live/rooms/{id}""#) && text.contains(#"status="404""#))
                #expect(!text.contains("missing"), "raw ids must not become labels")
            }
        }
    }

    @Test func corsPreflightAndHeadersAreAnswered() async throws {
        let t = try await TestHub.make()
        try await t.hub.application.test(.router) { client in
            try await client.execute(uri: "/v1/notifications/live/rooms", method: .options, headers: [.origin: "https://shop.example", .accessControlRequestMethod: "POST"]) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowOrigin] == "*")
                #expect(response.headers[.accessControlAllowMethods]?.contains("POST") == true)
            }
            try await client.execute(uri: "/v1/notifications/live/rooms/none", method: .get, headers: [.origin: "https://shop.example"]) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.accessControlAllowOrigin] == "*")
            }
        }
        let strict = try await TestHub.make { $0.corsOrigins = ["https://shop.example"] }
        try await strict.hub.application.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get, headers: [.origin: "https://shop.example"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == "https://shop.example")
            }
            try await client.execute(uri: "/healthz", method: .get, headers: [.origin: "https://evil.example"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
        }
    }

    @Test func migrationsRunOnAnEmptyFileAndKeepDataOnAnExistingOne() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("migrate-\(UUID().uuidString)/livehub.sqlite").path
        let first = try AppDatabase.open(path: path)
        #expect(try first.journalMode == "wal")
        try first.writer.write { db in
            for table in ["room", "live_product", "live_chat", "notification", "processed_order", "live_timeline_event"] {
                #expect(try db.tableExists(table), "\(table) missing")
            }
            try db.execute(sql: "INSERT INTO room (id, shopOwnerId, title, streamKey, status, createdAt, updatedAt) VALUES ('r1','o','t','k','PENDING','2026-01-01T00:00:00.000Z','2026-01-01T00:00:00.000Z')")
        }
        try first.close()
        let second = try AppDatabase.open(path: path)
        let applied = try second.writer.read { db in try AppDatabase.migrator.appliedMigrations(db) }
        #expect(applied == ["v1-rooms-products-chats-notifications-orders", "v2-processed-order-ordered-at", "v3-live-timeline-event", "v4-flash-deals"])
        let room = try second.writer.read { db in try RoomRecord.fetchOne(db, key: "r1") }
        #expect(room?.title == "t")
        #expect(room?.createdAt == ISOTime.date("2026-01-01T00:00:00.000Z"))
        try second.close()
    }

    @Test func configurationReadsEveryVariableAndRefusesBadValues() throws {
        let configuration = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_HTTP_PORT": "9090", "LIVEHUB_RTMP_PORT": "19350", "LIVEHUB_DATA_DIR": "/tmp/x",
            "LIVEHUB_JWT_SECRET": "s", "LIVEHUB_INTERNAL_TOKEN": "i", "LIVEHUB_CORS_ORIGINS": "https://a, https://b",
            "LIVEHUB_RECONNECT_GRACE": "5", "LIVEHUB_HLS_VARIANT": "mpegts", "LIVEHUB_HLS_SEGMENT_SECONDS": "3",
            "LIVEHUB_HLS_PART_SECONDS": "0.3", "LIVEHUB_HLS_WINDOW": "8", "LIVEHUB_TLS_CERT": "/c", "LIVEHUB_TLS_KEY": "/k",
            "LIVEHUB_RTMPS_PORT": "1937", "LIVEHUB_RTMP_RECEIVE_COALESCING": "0.02",
        ])
        #expect(configuration.httpPort == 9090)
        #expect(configuration.rtmpPort == 19350)
        #expect(configuration.databasePath == "/tmp/x/livehub.sqlite")
        #expect(!configuration.isDevMode)
        #expect(configuration.corsOrigins == ["https://a", "https://b"])
        #expect(configuration.reconnectGrace == .seconds(5))
        #expect(configuration.hlsVariant == .mpegts)
        #expect(configuration.hlsSegmentSeconds == 3)
        #expect(configuration.hlsWindowSegments == 8)
        #expect(configuration.rtmpsPort == 1937)
        #expect(configuration.rtmpReceiveCoalescing == .milliseconds(20))
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_RTMP_RECEIVE_COALESCING": "0"]).rtmpReceiveCoalescing == .zero)
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_RTMP_RECEIVE_COALESCING": "0.5"]) }
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_RTMP_RECEIVE_COALESCING": "-1"]) }
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_HTTP_PORT": "eighty"]) }
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_HLS_VARIANT": "dash"]) }
        #expect(throws: ConfigurationError.self) { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_HTTP_PORT": "70000"]) }
        // Numbers that used to trap when turned into milliseconds, and the publisher limits' ranges.
        for (name, value) in [
            ("LIVEHUB_RECONNECT_GRACE", "1e300"), ("LIVEHUB_PUBLISHER_IDLE_TIMEOUT", "inf"), ("LIVEHUB_SOCKETIO_PING_INTERVAL", "nan"),
            ("LIVEHUB_RTMP_PUBLISH_DEADLINE", "-1"), ("LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP", "0"), ("LIVEHUB_RTMP_BUFFER_BYTES", "99999999999999999999"),
            ("LIVEHUB_HLS_MAX_SEGMENTS_PER_10S", "1"), ("LIVEHUB_HLS_WINDOW", "100000"),
        ] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
        let limits = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_RTMP_PUBLISH_DEADLINE": "3", "LIVEHUB_RTMP_MAX_CONNECTIONS": "10", "LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP": "2",
            "LIVEHUB_RTMP_MAX_CHUNK_STREAMS": "8", "LIVEHUB_RTMP_MAX_MESSAGE_BYTES": "1048576", "LIVEHUB_RTMP_BUFFER_BYTES_BEFORE_PUBLISH": "65536",
            "LIVEHUB_RTMP_BUFFER_BYTES": "4194304", "LIVEHUB_HLS_MAX_SEGMENT_BYTES": "1048576", "LIVEHUB_HLS_MAX_SEGMENTS_PER_10S": "30",
            "LIVEHUB_HLS_DISCOVERY_BUFFER_BYTES": "1048576",
        ])
        #expect(limits.rtmpPublishDeadline == .seconds(3))
        let counts: [Int] = [
            limits.rtmpMaxConnections, limits.rtmpMaxConnectionsPerAddress, limits.rtmpMaxChunkStreams, limits.rtmpMaxMessageBytes,
            limits.rtmpBufferBytesBeforePublish, limits.rtmpBufferBytes, limits.hlsMaxSegmentBytes, limits.hlsMaxSegmentsPerTenSeconds,
            limits.hlsDiscoveryBufferBytes,
        ]
        #expect(counts == [10, 2, 8, 1_048_576, 65_536, 4_194_304, 1_048_576, 30, 1_048_576])
    }

    @Test func devModeKeepsItsSecretAcrossRestarts() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dev-\(UUID().uuidString)").path
        let first = try await TestHub.make(directory: directory) { $0.jwtSecret = nil; $0.internalToken = nil; $0.isDevMode = true }
        let token = try #require(try await first.hub.devTokens()).owner
        try first.hub.database!.close()
        let second = try await TestHub.make(directory: directory) { $0.jwtSecret = nil; $0.internalToken = nil; $0.isDevMode = true }
        #expect(try second.hub.verifier.verify(token).isShopOwner)
        #expect(first.hub.internalToken == second.hub.internalToken)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/jwt-secret")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }
}
