import Foundation
import HLS
import Hummingbird
import HummingbirdTesting
import MediaCore
import NIOCore
import Testing

@testable import Server

private let base = "/v1/notifications/live"

/// Issue 21's Server side of recordings: configuration, `replayUrl`, `DELETE …/recording`, the
/// timeline adapter.
@Suite struct RecordingAPITests {
    /// A finished recording of two 2 s segments on disk, with one chapter and its thumbnail.
    func plantRecording(in directory: String, room: String, t0: Int64 = 1_764_038_400_000) throws {
        let path = "\(directory)/recordings/\(room)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let lines = [
            #"{"k":"start","ms":\#(t0),"variant":"fmp4LowLatency","td":2}"#,
            #"{"k":"init","n":0}"#,
            #"{"k":"seg","msn":0,"d":2.000,"pdt":\#(t0),"disc":false,"init":0,"bytes":3}"#,
            #"{"k":"chapter","id":"f4","start":\#(t0 + 2500),"attrs":{"X-PRODUCT-ID":"p1","X-PRODUCT-NAME":"Scarf"},"class":"com.livehub.product"}"#,
            #"{"k":"thumb","id":"f4","file":"chapter-0.jpg"}"#,
            #"{"k":"seg","msn":1,"d":2.000,"pdt":\#(t0 + 2000),"disc":false,"init":0,"bytes":3}"#,
            #"{"k":"end","ms":\#(t0 + 4000)}"#,
        ]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path + "/index.jsonl"))
        for file in ["init-0.mp4", "seg-0.m4s", "seg-1.m4s", "chapter-0.jpg"] {
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(path)/\(file)"))
        }
    }

    func endedRoom(_ client: some TestClientProtocol, _ t: TestHub) async throws -> String {
        let id = try await client.execute(
            uri: "\(base)/rooms", method: .post, headers: bearer(t.ownerToken), body: json(#"{"title":"Replay me"}"#)
        ) { try decode(RoomView.self, $0).id }
        try await client.execute(uri: "\(base)/rooms/\(id)/start", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
        try await client.execute(uri: "\(base)/rooms/\(id)/end", method: .put, headers: bearer(t.ownerToken)) { #expect($0.status == .ok) }
        return id
    }

    @Test func theConfigurationReadsTheRecordingVariables() throws {
        let defaults = try LiveHubConfiguration.fromEnvironment([:])
        #expect(defaults.recordingEnabled && defaults.recordingsDirectory == "./data/recordings")
        #expect(defaults.recordingRetentionDays == 30 && defaults.recordingsMaxBytes == 50 << 30 && defaults.recordingsMinFreeBytes == 1 << 30)
        let set = try LiveHubConfiguration.fromEnvironment([
            "LIVEHUB_RECORDING": "off", "LIVEHUB_RECORDINGS_DIR": "/srv/rec", "LIVEHUB_RECORDING_RETENTION_DAYS": "0",
            "LIVEHUB_RECORDINGS_MAX_BYTES": "0", "LIVEHUB_RECORDINGS_MIN_FREE_BYTES": "5", "LIVEHUB_RECORDING_SWEEP_SECONDS": "60",
            "LIVEHUB_RECORDING_MAX_BACKLOG_BYTES": "2097152",
        ])
        #expect(!set.recordingEnabled && set.recordingsDirectory == "/srv/rec" && set.recordingRetentionDays == 0)
        #expect(set.recordingsMaxBytes == 0 && set.recordingsMinFreeBytes == 5 && set.recordingSweep == .seconds(60))
        let recording = RecordingConfiguration(set)
        #expect(recording.retention == nil && recording.maxBytes == 0 && recording.maxBacklogBytes == 2 << 20)
        #expect(RecordingConfiguration(defaults).retention == .seconds(30 * 86_400))
        for (name, value) in [
            ("LIVEHUB_RECORDING", "maybe"), ("LIVEHUB_RECORDING_RETENTION_DAYS", "-1"), ("LIVEHUB_RECORDINGS_MAX_BYTES", "1e99"),
            ("LIVEHUB_RECORDINGS_MIN_FREE_BYTES", "-5"), ("LIVEHUB_RECORDING_SWEEP_SECONDS", "0"), ("LIVEHUB_RECORDING_MAX_BACKLOG_BYTES", "10"),
        ] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") { try LiveHubConfiguration.fromEnvironment([name: value]) }
        }
    }

    /// The Buy button's target (`LIVEHUB_SHOP_PRODUCT_URL`): validated at start, and written into
    /// the pages' `<meta name="livehub-shop-product-url">`, escaped.
    @Test func theShopProductURLIsValidatedAndFilledIntoThePages() throws {
        #expect(try LiveHubConfiguration.fromEnvironment([:]).shopProductURLTemplate == nil)
        let template = "https://shop.example/p/{productId}?live={roomId}&a=\"b\""
        #expect(try LiveHubConfiguration.fromEnvironment(["LIVEHUB_SHOP_PRODUCT_URL": template]).shopProductURLTemplate == template)
        for bad in ["https://shop.example/p/1", "/products/{productId}", "javascript:alert({productId})", "ftp://x/{productId}",
                    "https://shop.example/" + String(repeating: "a", count: 3000) + "{productId}"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try LiveHubConfiguration.fromEnvironment(["LIVEHUB_SHOP_PRODUCT_URL": bad]) }
        }
        let page = #"<head><meta name="livehub-shop-product-url" content=""></head>"#
        let assets = ["watch.html": WebController.Asset(bytes: ByteBuffer(string: page), contentType: "text/html")]
        #expect(String(buffer: WebController.configure(assets, shopProductURL: nil)["watch.html"]!.bytes) == page)
        let filled = String(buffer: WebController.configure(assets, shopProductURL: template)["watch.html"]!.bytes)
        #expect(filled == #"<head><meta name="livehub-shop-product-url" content="https://shop.example/p/{productId}?live={roomId}&amp;a=&quot;b&quot;"></head>"#)
    }

    @Test func anEndedRoomWithARecordingHasAReplayURLAndTheOwnerDeletesIt() async throws {
        let t = try await TestHub.make { $0.recordingsMinFreeBytes = 0 }
        try await t.hub.application.test(.router) { client in
            let id = try await endedRoom(client, t)
            try await client.execute(uri: "\(base)/rooms/\(id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.replayUrl == nil)
                #expect(!String(buffer: response.body).contains("replayUrl"))
            }
            try await client.execute(uri: "\(base)/rooms/\(id)/recording", method: .delete, headers: bearer(t.ownerToken)) { response in
                _ = try expectError(response, .notFound, "NOT_FOUND")
            }
            try plantRecording(in: t.directory, room: id)
            try await client.execute(uri: "\(base)/rooms/\(id)", method: .get) { response in
                let room = try decode(RoomView.self, response)
                #expect(room.replayUrl?.hasSuffix("/hls/\(id)/vod.m3u8") == true)
                #expect(room.replayUrl?.hasPrefix(String(room.hlsUrl.prefix { $0 != "/" }) + "//") == true)
            }
            try await client.execute(uri: "/hls/\(id)/vod.m3u8", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("#EXT-X-PLAYLIST-TYPE:VOD"))
            }
            try await client.execute(uri: "\(base)/rooms/\(id)/recording", method: .delete) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "\(base)/rooms/\(id)/recording", method: .delete, headers: bearer(t.otherOwnerToken)) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "\(base)/rooms/\(id)/recording", method: .delete, headers: bearer(t.ownerToken)) { response in
                #expect(response.status == .noContent)
            }
            #expect(!FileManager.default.fileExists(atPath: "\(t.directory)/recordings/\(id)"))
            try await client.execute(uri: "\(base)/rooms/\(id)/recording", method: .delete, headers: bearer(t.ownerToken)) { response in
                _ = try expectError(response, .notFound, "NOT_FOUND")
            }
            try await client.execute(uri: "\(base)/rooms/\(id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.replayUrl == nil)
            }
            try await client.execute(uri: "\(base)/rooms/nope/recording", method: .delete, headers: bearer(t.ownerToken)) { response in
                _ = try expectError(response, .notFound)
            }
        }
    }

    @Test func aRecordingStillBeingWrittenIsAConflict() async throws {
        let t = try await TestHub.make { $0.recordingsMinFreeBytes = 0 }
        try await t.hub.application.test(.router) { client in
            let id = try await endedRoom(client, t)
            let stream = LiveStream(id: id)
            t.hub.hls.attach(stream: stream)  // the recording starts with the packager
            try await client.execute(uri: "\(base)/rooms/\(id)/recording", method: .delete, headers: bearer(t.ownerToken)) { response in
                _ = try expectError(response, .conflict, "CONFLICT")
            }
            stream.end()
            await t.hub.hls.shutdown()
        }
    }

    @Test func recordingOffMeansNoRecordingsAndNoReplay() async throws {
        let t = try await TestHub.make { $0.recordingEnabled = false }
        #expect(t.hub.hls.recordings == nil)
        try await t.hub.application.test(.router) { client in
            let id = try await endedRoom(client, t)
            try plantRecording(in: t.directory, room: id)
            try await client.execute(uri: "\(base)/rooms/\(id)", method: .get) { response in
                let view = try decode(RoomView.self, response)
                #expect(view.replayUrl == nil)
            }
            try await client.execute(uri: "\(base)/rooms/\(id)/recording", method: .delete, headers: bearer(t.ownerToken)) { response in
                _ = try expectError(response, .notFound, "NOT_FOUND")
            }
        }
    }

    @Test func theTimelineAdapterMapsWallClockToMediaSecondsAndListsThumbnails() async throws {
        let t = try await TestHub.make { $0.recordingsMinFreeBytes = 0 }
        let t0: Int64 = 1_764_038_400_000
        try plantRecording(in: t.directory, room: "room-a", t0: t0)
        let replay: any ReplayRecordings = HLSReplayRecordings(hls: t.hub.hls)
        #expect(replay.mediaSeconds(roomId: "room-a", wallClockMs: t0 + 2500) == 2.5)
        #expect(replay.mediaSeconds(roomId: "room-a", wallClockMs: t0 - 1) == 0)
        #expect(replay.mediaSeconds(roomId: "room-a", wallClockMs: t0 + 60_000) == 4)
        #expect(replay.wallClockMs(roomId: "room-a", mediaSeconds: 3) == t0 + 3000)
        #expect(replay.mediaSeconds(roomId: "none", wallClockMs: t0) == nil)
        #expect(replay.chapterThumbnails(roomId: "room-a") == ["f4": "/hls/room-a/chapter-0.jpg"])
        // No HLS output for the room: a chapter is a no-op, nothing traps.
        replay.startChapter(roomId: "room-b", id: "f9", atMs: t0, productId: "p\"1", productName: nil)
        replay.endChapter(roomId: "room-b", id: "f9", atMs: t0)
    }
}
