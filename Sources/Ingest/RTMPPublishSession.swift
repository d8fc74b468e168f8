import MediaCore
import NIOCore

/// A message the server sends: where (chunk stream, message stream) and what.
public struct RTMPOutboundMessage: Sendable {
    public var chunkStreamId: UInt32
    public var messageStreamId: UInt32
    public var timestamp: UInt32
    public var message: RTMPMessage

    public init(chunkStreamId: UInt32, messageStreamId: UInt32 = 0, timestamp: UInt32 = 0, message: RTMPMessage) {
        self.chunkStreamId = chunkStreamId
        self.messageStreamId = messageStreamId
        self.timestamp = timestamp
        self.message = message
    }

    /// RTMP 1.0 §5.4: protocol control messages go on chunk stream 2, message stream 0.
    static func control(_ message: RTMPMessage) -> RTMPOutboundMessage {
        RTMPOutboundMessage(chunkStreamId: 2, message: message)
    }
}

/// A publish session's protocol violations. Each closes the connection.
public enum RTMPSessionError: Error, Hashable, Sendable, CustomStringConvertible {
    case unexpectedCommand(String)
    case wrongArgumentType(command: String, argument: String)
    case malformedMedia(FLVDemuxError)

    public var description: String {
        switch self {
        case .malformedMedia(let error): return error.description
        case .unexpectedCommand(let name): return "unexpected command \(name.prefix(32))"
        case .wrongArgumentType(let command, let argument): return "\(command.prefix(32)): \(argument) has the wrong AMF type"
        }
    }
}

/// The publish side of RTMP's NetConnection/NetStream commands (RTMP 1.0 §7.2, and the
/// sequence ffmpeg and OBS use, PROTOCOLS.md §1). Pure: messages in, actions out.
public struct RTMPPublishSession: Sendable {
    public struct Configuration: Sendable {
        /// The only application accepted (`rtmp://host/<app>/<key>`).
        public var app: String
        /// Announced in Window Acknowledgement Size and Set Peer Bandwidth.
        public var windowAckSize: UInt32
        /// Our outbound chunk size, announced right after connect.
        public var outboundChunkSize: UInt32
        /// Enhanced RTMP FourCCs we accept; echoed (intersected) in the connect `_result`.
        public var supportedFourCCs: [String]

        public init(
            app: String = "live", windowAckSize: UInt32 = 2_500_000, outboundChunkSize: UInt32 = 4096,
            supportedFourCCs: [String] = ["avc1", "hvc1", "av01"]
        ) {
            self.app = app
            self.windowAckSize = windowAckSize
            self.outboundChunkSize = outboundChunkSize
            self.supportedFourCCs = supportedFourCCs
        }
    }

    public enum State: Sendable, Hashable {
        case awaitingConnect
        /// `connect` accepted with this app (query stripped).
        case connected(app: String)
        /// `publish` received; the authorizer is being asked.
        case authorizing(app: String, streamKey: String, messageStreamId: UInt32)
        case publishing(messageStreamId: UInt32)
        /// Refused or unpublished: nothing more is processed.
        case finished
    }

    public enum Action: Sendable {
        case send(RTMPOutboundMessage)
        /// Ask the authorizer; then call `authorizationAccepted()` or `authorizationRejected(_:)`.
        case authorize(app: String, streamKey: String)
        /// The publish was refused (BadName already queued): count it, flush, close.
        case refuse(PublishRejection)
        /// A media event for the stream.
        case emit(StreamEvent)
        /// FCUnpublish / deleteStream / closeStream: the publisher is done; close.
        case unpublish
        /// Worth one log line (unsupported codec, ignored track).
        case notice(String)
    }

    public let configuration: Configuration
    public private(set) var state: State = .awaitingConnect
    private var demuxer = FLVMediaDemuxer()
    private var nextStreamId: Double = 1
    private var implausibleMetadataReported = false

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public var isAwaitingAuthorization: Bool {
        if case .authorizing = state { return true }
        return false
    }

    public var isPublishing: Bool {
        if case .publishing = state { return true }
        return false
    }

    /// Process one decoded message that arrived on `messageStreamId`.
    public mutating func receive(_ message: RTMPMessage, messageStreamId: UInt32) throws(RTMPSessionError) -> [Action] {
        switch message {
        case .command(let command):
            return try receive(command, messageStreamId: messageStreamId)
        case .data(let values):
            guard isPublishing else { return [] }
            var rest = values[...]
            if rest.first == .string("@setDataFrame") { rest = rest.dropFirst() }
            guard rest.first == .string("onMetaData") else { return [] }
            rest = rest.dropFirst()
            guard let object = rest.first?.objectValue else { return [] }
            let (metadata, ignored) = StreamMetadata.parse(onMetaData: object)
            var actions: [Action] = [.emit(.metadata(metadata))]
            if !ignored.isEmpty, !implausibleMetadataReported {
                // Metadata is advisory: an impossible value is dropped, the stream goes on. Said
                // once per connection, so a publisher repeating it cannot flood the log.
                implausibleMetadataReported = true
                actions.append(.notice("ignoring implausible onMetaData values: \(ignored.prefix(8).joined(separator: ", "))"))
            }
            return actions
        case .audio(let timestamp, let payload):
            guard isPublishing else { return [] }
            return try media { (demuxer: inout FLVMediaDemuxer) throws(FLVDemuxError) in
                try demuxer.audio(timestamp: timestamp, payload: payload)
            }
        case .video(let timestamp, let payload):
            guard isPublishing else { return [] }
            return try media { (demuxer: inout FLVMediaDemuxer) throws(FLVDemuxError) in
                try demuxer.video(timestamp: timestamp, payload: payload)
            }
        case .userControl(.pingRequest(let value)):
            return [.send(.control(.userControl(.pingResponse(value))))]
        default:
            return []
        }
    }

    private mutating func media(_ body: (inout FLVMediaDemuxer) throws(FLVDemuxError) -> [StreamEvent]) throws(RTMPSessionError) -> [Action] {
        let events: [StreamEvent]
        do {
            events = try body(&demuxer)
        } catch {
            throw .malformedMedia(error)
        }
        var actions = events.map { Action.emit($0) }
        actions += demuxer.takeNotices().map { Action.notice($0) }
        return actions
    }

    private mutating func receive(_ command: RTMPCommand, messageStreamId: UInt32) throws(RTMPSessionError) -> [Action] {
        switch command.name {
        case "connect":
            guard case .awaitingConnect = state else { throw .unexpectedCommand("connect") }
            guard let object = command.arguments.first?.objectValue else {
                throw .wrongArgumentType(command: "connect", argument: "command object")
            }
            guard case .string(let rawApp)? = object["app"] else {
                throw .wrongArgumentType(command: "connect", argument: "app")
            }
            let app = Self.stripQuery(rawApp).trimmingSlashes()
            state = .connected(app: app)
            return connectResponse(transactionId: command.transactionId, object: object)

        case "releaseStream":
            return [.send(commandMessage("_result", command.transactionId, [.null]))]

        case "FCPublish":
            return [
                .send(
                    commandMessage(
                        "onFCPublish", 0,
                        [.null, .object(["code": .string("NetStream.Publish.Start"), "description": .string("FCPublish")])]))
            ]

        case "createStream":
            let id = nextStreamId
            nextStreamId += 1
            return [.send(commandMessage("_result", command.transactionId, [.null, .number(id)]))]

        case "publish":
            guard case .connected(let app) = state else { throw .unexpectedCommand("publish") }
            guard command.arguments.count >= 2, case .string(let rawKey) = command.arguments[1] else {
                throw .wrongArgumentType(command: "publish", argument: "stream name")
            }
            let streamId = messageStreamId == 0 ? 1 : messageStreamId
            let key = Self.stripQuery(rawKey)
            if app != configuration.app {
                return refuse(.wrongApp, streamId: streamId)
            }
            if key.isEmpty || key.contains("/") {
                return refuse(.malformedURL, streamId: streamId)
            }
            state = .authorizing(app: app, streamKey: key, messageStreamId: streamId)
            return [.authorize(app: app, streamKey: key)]

        case "FCUnpublish", "deleteStream", "closeStream":
            guard isPublishing else { return [] }
            state = .finished
            return [.unpublish]

        default:
            // getStreamLength, _checkbw, ping, play… : not for a publish-only server.
            return []
        }
    }

    /// The authorizer accepted and the stream is ready: RTMP StreamBegin + NetStream.Publish.Start.
    public mutating func authorizationAccepted() -> [Action] {
        guard case .authorizing(_, let key, let streamId) = state else { return [] }
        state = .publishing(messageStreamId: streamId)
        return [
            .send(.control(.userControl(.streamBegin(streamId)))),
            .send(
                onStatus(
                    streamId: streamId,
                    [
                        "level": .string("status"), "code": .string("NetStream.Publish.Start"),
                        "description": .string("\(key) is now published"), "details": .string(key),
                    ])),
        ]
    }

    public mutating func authorizationRejected(_ reason: PublishRejection) -> [Action] {
        guard case .authorizing(_, _, let streamId) = state else { return [] }
        return refuse(reason, streamId: streamId)
    }

    /// Never `_error`: OBS would wait for its time-out (PROTOCOLS.md §1 "Refusing a bad key").
    private mutating func refuse(_ reason: PublishRejection, streamId: UInt32) -> [Action] {
        state = .finished
        return [
            .send(
                onStatus(
                    streamId: streamId,
                    [
                        "level": .string("error"), "code": .string("NetStream.Publish.BadName"),
                        "description": .string("Publishing refused (\(reason.rawValue))"),
                    ])),
            .refuse(reason),
        ]
    }

    private func connectResponse(transactionId: Double, object: AMF0Object) -> [Action] {
        var properties: AMF0Object = ["fmsVer": .string("FMS/3,0,1,123"), "capabilities": .number(31)]
        // Enhanced RTMP v2: echo the FourCCs we support out of those offered.
        if case .strictArray(let offered)? = object["fourCcList"] {
            let offeredNames = offered.compactMap(\.stringValue)
            let echoed =
                offeredNames.contains("*")
                ? configuration.supportedFourCCs
                : configuration.supportedFourCCs.filter(offeredNames.contains)
            properties["fourCcList"] = .strictArray(echoed.map { .string($0) })
        }
        let information: AMF0Object = [
            "level": .string("status"), "code": .string("NetConnection.Connect.Success"),
            "description": .string("Connection succeeded."), "objectEncoding": .number(0),
        ]
        return [
            .send(.control(.windowAcknowledgementSize(configuration.windowAckSize))),
            .send(.control(.setPeerBandwidth(configuration.windowAckSize, limitType: 2))),
            .send(.control(.userControl(.streamBegin(0)))),
            .send(.control(.setChunkSize(configuration.outboundChunkSize))),
            .send(commandMessage("_result", transactionId, [.object(properties), .object(information)])),
        ]
    }

    private func commandMessage(_ name: String, _ transactionId: Double, _ arguments: [AMF0Value]) -> RTMPOutboundMessage {
        RTMPOutboundMessage(
            chunkStreamId: 3, message: .command(RTMPCommand(name: name, transactionId: transactionId, arguments: arguments)))
    }

    private func onStatus(streamId: UInt32, _ information: AMF0Object) -> RTMPOutboundMessage {
        RTMPOutboundMessage(
            chunkStreamId: 5, messageStreamId: streamId,
            message: .command(RTMPCommand(name: "onStatus", transactionId: 0, arguments: [.null, .object(information)])))
    }

    static func stripQuery(_ value: String) -> String {
        if let index = value.firstIndex(of: "?") { return String(value[..<index]) }
        return value
    }
}

extension String {
    func trimmingSlashes() -> String {
        var result = Substring(self)
        while result.hasPrefix("/") { result = result.dropFirst() }
        while result.hasSuffix("/") { result = result.dropLast() }
        return String(result)
    }
}
