import Ingest
import MediaCore
import NIOCore
import Testing

@Suite("Publish session")
struct PublishSessionTests {
    private func sends(_ actions: [RTMPPublishSession.Action]) -> [RTMPOutboundMessage] {
        actions.compactMap { if case .send(let message) = $0 { return message } else { return nil } }
    }

    private func command(_ name: String, _ tx: Double, _ args: [AMF0Value]) -> RTMPMessage {
        .command(RTMPCommand(name: name, transactionId: tx, arguments: args))
    }

    private func describe(_ message: RTMPOutboundMessage) -> String {
        switch message.message {
        case .windowAcknowledgementSize(let size): return "csid\(message.chunkStreamId) WinAckSize(\(size))"
        case .setPeerBandwidth(let size, let type): return "csid\(message.chunkStreamId) SetPeerBandwidth(\(size),\(type))"
        case .userControl(.streamBegin(let id)): return "csid\(message.chunkStreamId) StreamBegin(\(id))"
        case .setChunkSize(let size): return "csid\(message.chunkStreamId) SetChunkSize(\(size))"
        case .command(let command): return "csid\(message.chunkStreamId) msid\(message.messageStreamId) \(command.name)(\(Int(command.transactionId)))"
        default: return "other"
        }
    }

    @Test("connect is answered with WinAckSize, SetPeerBandwidth, StreamBegin, SetChunkSize and _result")
    func connectResponseSequence() throws {
        var session = RTMPPublishSession()
        let connect = command("connect", 1, [.object(["app": .string("live"), "type": .string("nonprivate"), "fourCcList": .strictArray([.string("av01"), .string("vp09"), .string("hvc1")])])])
        let out = sends(try session.receive(connect, messageStreamId: 0))
        #expect(out.map(describe) == [
            "csid2 WinAckSize(2500000)", "csid2 SetPeerBandwidth(2500000,2)", "csid2 StreamBegin(0)",
            "csid2 SetChunkSize(4096)", "csid3 msid0 _result(1)",
        ])
        guard case .command(let result) = out.last?.message else { Issue.record("no _result"); return }
        let properties = try #require(result.arguments.first?.objectValue)
        #expect(properties.properties.map(\.name) == ["fmsVer", "capabilities", "fourCcList"])
        #expect(properties["fmsVer"] == .string("FMS/3,0,1,123"))
        #expect(properties["capabilities"] == .number(31))
        #expect(properties["fourCcList"] == .strictArray([.string("hvc1"), .string("av01")]))
        let information = try #require(result.arguments.dropFirst().first?.objectValue)
        #expect(information == ["level": .string("status"), "code": .string("NetConnection.Connect.Success"),
                                "description": .string("Connection succeeded."), "objectEncoding": .number(0)])
    }

    @Test("the whole publish sequence gets the answers ffmpeg and OBS expect, then media flows")
    func publishSequence() throws {
        var session = RTMPPublishSession()
        _ = try session.receive(command("connect", 1, [.object(["app": .string("live")])]), messageStreamId: 0)
        var out: [RTMPOutboundMessage] = []
        out += sends(try session.receive(command("releaseStream", 2, [.null, .string("key")]), messageStreamId: 0))
        out += sends(try session.receive(command("FCPublish", 3, [.null, .string("key")]), messageStreamId: 0))
        out += sends(try session.receive(command("createStream", 4, [.null]), messageStreamId: 0))
        #expect(out.map(describe) == ["csid3 msid0 _result(2)", "csid3 msid0 onFCPublish(0)", "csid3 msid0 _result(4)"])
        if case .command(let created) = out.last?.message {
            #expect(created.arguments == [.null, .number(1)])  // the stream id is the 4th AMF value
        }
        let publish = try session.receive(command("publish", 5, [.null, .string("secret?token=x"), .string("live")]), messageStreamId: 1)
        guard case .authorize(let app, let key)? = publish.first else { Issue.record("no authorize"); return }
        #expect(app == "live")
        #expect(key == "secret")
        #expect(session.isAwaitingAuthorization)

        let accepted = sends(session.authorizationAccepted())
        #expect(accepted.map(describe) == ["csid2 StreamBegin(1)", "csid5 msid1 onStatus(0)"])
        if case .command(let status) = accepted.last?.message {
            #expect(status.arguments.last?.objectValue?["code"] == .string("NetStream.Publish.Start"))
            #expect(status.arguments.last?.objectValue?["level"] == .string("status"))
        }
        let media = try session.receive(.audio(timestamp: 0, payload: ByteBuffer(bytes: [0xAF, 0x00, 0x11, 0x90])), messageStreamId: 1)
        guard case .emit(.config(let config))? = media.first else { Issue.record("no config"); return }
        #expect(config == TrackConfig(codec: .aac, extradata: [0x11, 0x90]))

        let end = try session.receive(command("FCUnpublish", 6, [.null, .string("secret")]), messageStreamId: 0)
        guard case .unpublish? = end.first else { Issue.record("FCUnpublish did not unpublish"); return }
    }

    @Test("a rejected key is answered with onStatus error NetStream.Publish.BadName, never _error")
    func rejectedKeyGetsBadName() throws {
        var session = RTMPPublishSession()
        _ = try session.receive(command("connect", 1, [.object(["app": .string("live")])]), messageStreamId: 0)
        _ = try session.receive(command("publish", 5, [.null, .string("nope"), .string("live")]), messageStreamId: 1)
        let actions = session.authorizationRejected(.unknownKey)
        let out = sends(actions)
        #expect(out.map(describe) == ["csid5 msid1 onStatus(0)"])
        if case .command(let status) = out.first?.message {
            #expect(status.arguments.last?.objectValue?["level"] == .string("error"))
            #expect(status.arguments.last?.objectValue?["code"] == .string("NetStream.Publish.BadName"))
        }
        guard case .refuse(.unknownKey)? = actions.last else { Issue.record("no refuse action"); return }
        #expect(session.state == .finished)
    }

    @Test("a publish to another app is refused as wrongApp without asking the authorizer")
    func wrongAppIsRefusedWithoutAsking() throws {
        var session = RTMPPublishSession()
        _ = try session.receive(command("connect", 1, [.object(["app": .string("other")])]), messageStreamId: 0)
        let actions = try session.receive(command("publish", 5, [.null, .string("key"), .string("live")]), messageStreamId: 1)
        #expect(!actions.contains { if case .authorize = $0 { return true } else { return false } })
        guard case .refuse(.wrongApp)? = actions.last else { Issue.record("not refused as wrongApp"); return }
    }

    @Test("an empty stream key is refused as malformedURL")
    func emptyKeyIsMalformed() throws {
        var session = RTMPPublishSession()
        _ = try session.receive(command("connect", 1, [.object(["app": .string("live/")])]), messageStreamId: 0)
        let actions = try session.receive(command("publish", 5, [.null, .string("?x=1"), .string("live")]), messageStreamId: 1)
        guard case .refuse(.malformedURL)? = actions.last else { Issue.record("not refused as malformedURL"); return }
    }

    @Test("a PingRequest is answered with a PingResponse carrying the same value")
    func pingIsAnswered() throws {
        var session = RTMPPublishSession()
        let out = sends(try session.receive(.userControl(.pingRequest(1234)), messageStreamId: 0))
        guard case .userControl(.pingResponse(1234))? = out.first?.message else { Issue.record("no ping response"); return }
    }

    @Test("commands with arguments of the wrong AMF type are protocol errors")
    func wrongTypesAreErrors() {
        var session = RTMPPublishSession()
        #expect(throws: RTMPSessionError.wrongArgumentType(command: "connect", argument: "command object")) {
            try session.receive(command("connect", 1, [.number(3)]), messageStreamId: 0)
        }
        var connected = RTMPPublishSession()
        _ = try? connected.receive(command("connect", 1, [.object(["app": .string("live")])]), messageStreamId: 0)
        #expect(throws: RTMPSessionError.wrongArgumentType(command: "publish", argument: "stream name")) {
            try connected.receive(command("publish", 5, [.null, .number(42)]), messageStreamId: 1)
        }
    }

    @Test("onMetaData becomes StreamMetadata with FourCC codec ids tolerated")
    func metadataIsParsed() throws {
        var session = RTMPPublishSession()
        _ = try session.receive(command("connect", 1, [.object(["app": .string("live")])]), messageStreamId: 0)
        _ = try session.receive(command("publish", 5, [.null, .string("k"), .string("live")]), messageStreamId: 1)
        _ = session.authorizationAccepted()
        let data: RTMPMessage = .data([.string("@setDataFrame"), .string("onMetaData"), .ecmaArray([
            "width": .number(1280), "height": .number(720), "framerate": .number(30), "videocodecid": .number(1752589105),
            "videodatarate": .number(2500), "audiodatarate": .number(128), "audiosamplerate": .number(48000),
            "audiochannels": .number(2), "encoder": .string("obs-output module (libobs version 29.0.2)"),
        ])])
        let actions = try session.receive(data, messageStreamId: 1)
        guard case .emit(.metadata(let metadata))? = actions.first else { Issue.record("no metadata"); return }
        #expect(metadata == StreamMetadata(width: 1280, height: 720, frameRate: 30, videoBitrateKbps: 2500, audioBitrateKbps: 128,
                                           audioSampleRate: 48000, audioChannels: 2, encoder: "obs-output module (libobs version 29.0.2)"))
    }
}

@Suite struct StreamKeyTagTests {
    @Test func aKeyIsLoggedAsAStableTagThatHoldsNoneOfIt() {
        let key = "Zx9aQ3mK7pLw2Rt5Yc8Vb1Nd4Hf6Jg0Ks3Lq9Pe7Wu2"
        let tag = streamKeyTag(key)
        #expect(tag == streamKeyTag(key))
        #expect(tag != streamKeyTag(key + "x"))
        #expect(tag.hasPrefix("key#") && tag.count == 12)
        #expect(!tag.contains(String(key.prefix(4))))
    }
}
