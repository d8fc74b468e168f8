/// The HTTP side of LiveHub's HLS, framework-neutral: the Server maps `GET /hls/{roomId}/{file}` to
/// `HLSService.handle(roomId:file:query:)` and copies the `HLSResponse` onto its HTTP response
/// (`OPTIONS` pre-flights are answered by the Server).
///
/// URL scheme (everything under `/hls/{roomId}/`, `roomId` = `[A-Za-z0-9_-]{1,128}`; file names are
/// matched exactly against these patterns — anything else, including `..`, `/`, `%2F`, signs or
/// leading zeros in numbers, is a 404, so no path can leave the room's in-memory store):
///
/// | file | what | Content-Type | Cache-Control |
/// |---|---|---|---|
/// | `index.m3u8` | multivariant playlist, one `EXT-X-STREAM-INF` (RFC 8216bis §4.4.6.2) | `application/vnd.apple.mpegurl` | `no-cache` |
/// | `media.m3u8` | media playlist; LL-HLS blocking reload with `_HLS_msn` / `_HLS_part` (§6.2.5.2). Without directives it is held until the first segment is complete; `_HLS_msn=0&_HLS_part=N` is answered from the first part on | `application/vnd.apple.mpegurl` | `no-cache` |
/// | `init-{n}.mp4` | fMP4 initialization section `n` (`EXT-X-MAP`, §4.4.4.5) | `video/mp4` | `public, max-age=3600, immutable` |
/// | `seg-{msn}.m4s` / `seg-{msn}.ts` | segment with media sequence number `msn` | `video/mp4` / `video/mp2t` | `public, max-age=3600, immutable` |
/// | `part-{msn}-{i}.m4s` | part `i` of segment `msn` (`EXT-X-PART`, §4.4.4.9); the preload-hinted part is held until complete (§4.4.5.3) | `video/mp4` | `public, max-age=3600, immutable` |
/// | `thumbnail.jpg` | a recent keyframe (made on request, at most `thumbnailInterval` old), ~480 px wide | `image/jpeg` | `no-cache` |
/// | `dvr.m3u8` | issue 21: the recording so far, `EXT-X-PLAYLIST-TYPE:EVENT` (§4.4.3.5), `EXT-X-ENDLIST` once ended | `application/vnd.apple.mpegurl` | `no-cache` |
/// | `vod.m3u8` | the finished recording, `EXT-X-PLAYLIST-TYPE:VOD`; 404 while recording | `application/vnd.apple.mpegurl` | `no-cache` |
/// | `rec-init-{n}.mp4`, `rec-{msn}.m4s` / `rec-{msn}.ts` | recorded files, from disk (`RecordingLibrary`) | `video/mp4` / `video/mp2t` | `public, max-age=31536000, immutable` |
/// | `chapter-{n}.jpg` | a chapter's thumbnail, from disk | `image/jpeg` | `public, max-age=31536000, immutable` |
///
/// Status codes: 200; 400 for malformed or contradictory delivery directives (`_HLS_part` without
/// `_HLS_msn`, `_HLS_msn` more than two segments ahead); 503 when a blocking request is still
/// unsatisfied after `blockingReloadTimeoutMultiplier` × target duration; 404 for unknown rooms and
/// files. Every response carries `Access-Control-Allow-Origin: *`. Bodies are the stored
/// `ByteBuffer`s, or for finished segments and their parts a range of the segment's sealed memory
/// file (`HLSBody`; no copy per request either way).
import CLibAV
import Logging
import MediaCore
import Metrics
import NIOCore
import Synchronization

/// A response of the HLS handler.
public struct HLSResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    /// Heap bytes, or a range of a finished segment's memory file (send it with `sendfile`).
    public var content: HLSBody

    /// The body on the heap (copied out of the memory file for a finished segment's bytes).
    public var body: ByteBuffer { content.bytes }

    public init(status: Int, headers: [(String, String)], content: HLSBody) {
        self.status = status
        self.headers = headers
        self.content = content
    }

    public init(status: Int, headers: [(String, String)], body: ByteBuffer) {
        self.init(status: status, headers: headers, content: .bytes(body))
    }

    /// The value of the first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// Owns one packager per live stream and answers HLS requests from their in-memory stores.
public final class HLSService: Sendable {
    private struct Room: Sendable {
        let token: Int
        let store: SegmentStore
        let stream: LiveStream
        let sink: PackagerSink
        /// Frees the room `retainAfterEnd` after the stream ended.
        var retention: Task<Void, Never>?
    }

    public let configuration: HLSConfiguration
    /// Issue 21: where every live is recorded; nil = recording off.
    public let recordings: RecordingLibrary?
    private let metrics: HLSMetrics
    private let logger: Logger
    private let wallClock: @Sendable () -> Int64
    private let rooms = Mutex<[String: Room]>([:])
    /// Numbering to continue for rooms whose packager is not attached yet (`continueNumbering`);
    /// taken by `attach`, always under `rooms`' lock.
    private let continuations = Mutex<[String: HLSPosition]>([:])
    private let tokens = Atomic<Int>(0)

    /// - Parameters:
    ///   - metricsFactory: where the counters go (default: the bootstrapped `MetricsSystem.factory`).
    ///   - wallClock: milliseconds since 1970 for `EXT-X-PROGRAM-DATE-TIME` (injectable for tests).
    public init(
        configuration: HLSConfiguration = HLSConfiguration(),
        recordings: RecordingLibrary? = nil,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        logger: Logger = Logger(label: "livehub.hls"),
        wallClock: @escaping @Sendable () -> Int64 = HLSService.systemWallClock
    ) {
        self.configuration = configuration
        self.recordings = recordings
        self.metrics = HLSMetrics(factory: metricsFactory)
        self.logger = logger
        self.wallClock = wallClock
        // libav logs warnings (e.g. mov's "nonzero dts" note for an audio track that starts a few ms
        // after the video keyframe, which keeps A/V sync on purpose) to stderr; keep errors only
        // unless someone chose a level already.
        if av_log_get_level() == AV_LOG_INFO { av_log_set_level(AV_LOG_ERROR) }
    }

    /// Milliseconds since 1970 from the system clock.
    public static let systemWallClock: @Sendable () -> Int64 = {
        av_gettime() / 1000
    }

    /// Starts packaging `stream` under its room id. The packager is a sink of the stream: it runs
    /// on the publisher's thread, packet by packet, until the stream ends; the room keeps the final
    /// window for `retainAfterEnd`, then is freed. Attaching a room id again replaces the previous
    /// packager.
    ///
    /// Issue 21: the room's recording starts (or goes on, one directory per room id: a room already
    /// recorded continues its numbering after the last recorded segment, with a discontinuity, so
    /// live and recorded numbers agree and files never collide).
    public func attach(stream: LiveStream) {
        let recording = recordings?.begin(
            roomId: stream.id, variant: configuration.variant, targetDuration: Int(configuration.targetSegmentDuration.rounded(.up)))
        let lastRecorded = recordings?.lastRecordedMSN(roomId: stream.id)
        let store = SegmentStore(configuration: configuration, recording: recording)
        let token = tokens.add(1, ordering: .relaxed).newValue
        var logger = self.logger
        logger[metadataKey: "room"] = "\(stream.id)"
        let packager = HLSPackager(
            configuration: configuration, store: store, metrics: metrics, wallClock: wallClock, logger: logger,
            onLimitExceeded: { [weak stream] reason in stream?.refusePublisher(reason: reason) })
        let retainAfterEnd = configuration.retainAfterEnd
        let roomId = stream.id
        let sink = PackagerSink(packager: packager) { [weak self] in
            let retention = Task { [weak self] in
                try? await Task.sleep(for: retainAfterEnd)
                self?.remove(roomId: roomId, token: token)
            }
            let orphan = self?.rooms.withLock { rooms -> Bool in
                guard rooms[roomId]?.token == token else { return true }
                rooms[roomId]?.retention = retention
                return false
            } ?? true
            if orphan { retention.cancel() }
        }
        let previous = rooms.withLock { rooms in
            let previous = rooms[stream.id]
            rooms[stream.id] = Room(token: token, store: store, stream: stream, sink: sink)
            var position = continuations.withLock { $0.removeValue(forKey: stream.id) }
            if let lastRecorded, lastRecorded + 1 > (position?.nextMediaSequence ?? 0) {
                position = HLSPosition(nextMediaSequence: lastRecorded + 1, discontinuitySequence: position?.discontinuitySequence ?? 0)
            }
            if let position {
                _ = store.continueNumbering(after: position)
            }
            return previous
        }
        if let previous { stop(previous) }
        stream.attachSink(sink)
    }

    /// Cluster mode (issue 20): the room was packaged by another origin before, up to `position`;
    /// this origin's playlist goes on after it, with `EXT-X-DISCONTINUITY`. Applies to a packager
    /// that has produced nothing yet, or to the next one attached; false when the room's current
    /// packager has already numbered segments (it keeps its own numbering).
    @discardableResult
    public func continueNumbering(roomId: String, after position: HLSPosition) -> Bool {
        rooms.withLock { rooms in
            guard let room = rooms[roomId] else {
                continuations.withLock { $0[roomId] = position }
                return true
            }
            return room.store.continueNumbering(after: position)
        }
    }

    /// Where the room's numbering stands (what a next origin would continue after); nil without
    /// HLS output.
    public func position(roomId: String) -> HLSPosition? {
        store(for: roomId)?.position
    }

    /// True while the room has HLS output (live, or ended but within `retainAfterEnd`).
    public func hasStream(roomId: String) -> Bool {
        rooms.withLock { $0[roomId] != nil }
    }

    /// Stops every packager and fails waiting requests.
    public func shutdown() async {
        let all = rooms.withLock { rooms -> [Room] in
            let all = Array(rooms.values)
            rooms.removeAll()
            return all
        }
        for room in all { stop(room) }
    }

    // MARK: Chapters (issue 21)

    /// A chapter (EXT-X-DATERANGE, RFC 8216bis §4.4.5.1) in the live, DVR and VOD playlists:
    /// CLASS="com.livehub.product", ID, START-DATE, optional END-DATE, and the X- attributes
    /// (values sanitised for quoted-string: no `"`, CR, LF; ≤ 200 UTF-8 bytes). Also makes
    /// chapter-{n}.jpg from the latest keyframe (async, best effort). No-op when the room has no HLS
    /// or the id is not `[A-Za-z0-9_-]{1,64}`.
    public func startChapter(roomId: String, id: String, atMs: Int64, attributes: [String: String]) {
        guard RecordingIndex.isValidChapterId(id), RecordingIndex.wallClockRange.contains(atMs), let store = store(for: roomId) else { return }
        let valid = attributes.filter { DateRange.isValidAttributeName($0.key) }.mapValues(DateRange.sanitized)
        store.addChapter(DateRange(id: id, className: RecordingIndex.chapterClass, startMs: atMs, endMs: nil, attributes: valid))
        guard let recording = store.recording else { return }
        recording.chapter(id: id, atMs: atMs, attributes: valid)
        Task {
            guard let jpeg = await store.thumbnails.current() else { return }
            recording.thumbnail(id: id, jpeg: jpeg)
        }
    }

    public func endChapter(roomId: String, id: String, atMs: Int64) {
        guard RecordingIndex.isValidChapterId(id), RecordingIndex.wallClockRange.contains(atMs), let store = store(for: roomId) else { return }
        store.endChapter(id: id, atMs: atMs)
        store.recording?.chapterEnd(id: id, atMs: atMs)
    }

    private func stop(_ room: Room) {
        room.stream.detachSink(room.sink)
        room.sink.finish()
        room.retention?.cancel()
        room.store.cancelWaiters()
    }

    private func remove(roomId: String, token: Int) {
        let room = rooms.withLock { rooms -> Room? in
            continuations.withLock { _ = $0.removeValue(forKey: roomId) }
            guard rooms[roomId]?.token == token else { return nil }
            return rooms.removeValue(forKey: roomId)
        }
        if let room {
            room.stream.detachSink(room.sink)
            room.store.cancelWaiters()
            logger.info("HLS output freed", metadata: ["room": "\(roomId)"])
        }
    }

    private func store(for roomId: String) -> SegmentStore? {
        rooms.withLock { $0[roomId]?.store }
    }

    /// The room's store (tests).
    func segmentStore(roomId: String) -> SegmentStore? { store(for: roomId) }

    // MARK: Requests

    /// What a request gets from the room's store as it is now: the answer, or a condition to wait
    /// for first (then the request is decided again).
    enum Decision {
        case answer(HLSResponse)
        /// Wait until `condition` holds, at most `timeout`; answer `onTimeout` if it does not.
        case wait(SegmentStore.Condition, timeout: Duration, onTimeout: HLSResponse)
        /// The thumbnail, made on request (libav, off the event loop).
        case thumbnail(SegmentStore)
    }

    /// Answers `GET /hls/{roomId}/{file}?{query}` at once when that needs no waiting, which is
    /// every request of a running stream except blocking reloads and preload-hinted parts not yet
    /// complete, and a thumbnail due to be made. nil: call `handle`. The Server calls this on the
    /// connection's event loop, so the common requests cost no task and no thread hop.
    public func respondNow(roomId: String, file: String, query: [String: String] = [:]) -> HLSResponse? {
        guard case .answer(let response) = decide(roomId: roomId, file: file, query: query) else { return nil }
        return response
    }

    /// Answers `GET /hls/{roomId}/{file}?{query}`: the one answer path — decide, wait for what the
    /// decision names, decide again.
    public func handle(roomId: String, file: String, query: [String: String] = [:]) async -> HLSResponse {
        // A request waits once at most (a plain playlist request for the first segment, a blocking
        // one for its segment or part, a hinted part for itself); further rounds only guard
        // against a store replaced meanwhile.
        for _ in 0..<3 {
            switch decide(roomId: roomId, file: file, query: query) {
            case .answer(let response):
                return response
            case .thumbnail(let store):
                guard let body = await store.thumbnails.current() else { return Self.error(404, "no thumbnail yet") }
                return served(body, Self.jpegHeaders)
            case .wait(let condition, let timeout, let onTimeout):
                guard let store = store(for: roomId), await store.wait(for: condition, timeout: timeout) else { return onTimeout }
            }
        }
        return Self.error(503, "the stream changed while the request waited")
    }

    /// The decision for one request; counts each playlist request once, when it is answered.
    func decide(roomId: String, file: String, query: [String: String]) -> Decision {
        guard Self.isValidRoomId(roomId), let name = HLSFileName(file) else { return .answer(Self.error(404, "not found")) }
        if let recorded = recordedAnswer(roomId: roomId, name: name) { return .answer(recorded) }
        guard let store = store(for: roomId) else {
            return .answer(Self.error(404, "not found"))
        }
        switch name {
        case .multivariant:
            if let body = store.multivariantPlaylist() {
                metrics.playlistRequestsNonBlocking.increment()
                return .answer(served(body, Self.playlistHeaders))
            }
            let noMedia = Self.error(404, "no media yet")
            guard !store.isSatisfied(.ready) else {
                metrics.playlistRequestsNonBlocking.increment()
                return .answer(noMedia)
            }
            return .wait(.ready, timeout: blockingTimeout(nil), onTimeout: noMedia)

        case .media:
            var condition: SegmentStore.Condition?
            if configuration.variant.hasParts {
                switch Self.deliveryDirectives(query) {
                case .failure(let error):
                    metrics.playlistRequestsBlocking.increment()
                    return .answer(Self.error(400, error.description))
                case .success(let directive):
                    condition = directive
                }
            }
            let counter = condition == nil ? metrics.playlistRequestsNonBlocking : metrics.playlistRequestsBlocking
            // A plain request waits for the first complete segment: a playlist of parts only is
            // empty to a non-LL reader (ffmpeg gives up on it). A blocking LL-HLS request waits only
            // for what it names, so `_HLS_msn=0&_HLS_part=0` is answered with the first part, one
            // part duration after the first keyframe, a GOP before the first segment is complete.
            if condition == nil, !store.isSatisfied(.ready) {
                return .wait(.ready, timeout: blockingTimeout(nil), onTimeout: Self.error(404, "no media yet"))
            }
            if let condition, !store.isEnded, !store.isSatisfied(condition) {
                let requested: Int
                switch condition {
                case .segment(let msn), .part(let msn, _): requested = msn
                case .ready: requested = 0
                }
                // RFC 8216bis §6.2.5.2: more than two segments ahead of the last one → 400.
                if requested > store.lastCompleteMSN + 2 {
                    counter.increment()
                    return .answer(Self.error(400, "_HLS_msn is too far ahead"))
                }
                return .wait(
                    condition, timeout: blockingTimeout(store.targetDuration),
                    onTimeout: Self.error(503, "the requested segment or part did not appear in time"))
            }
            counter.increment()
            guard let body = store.mediaPlaylist() else { return .answer(Self.error(404, "no media yet")) }
            return .answer(served(body, Self.playlistHeaders))

        case .initSection, .segment:
            return .answer(immediateFile(name, store: store))

        case .part(let msn, let index):
            guard configuration.variant.hasParts else { return .answer(Self.error(404, "not found")) }
            if let body = store.partBody(msn: msn, index: index) {
                return .answer(served(body, Self.mp4Headers))
            }
            // RFC 8216bis §4.4.5.3: a request for the preload-hinted part is held until it is complete.
            let next = store.nextPart
            let isHinted = (msn == next.msn && index >= next.index && index <= next.index + 1) || (msn == next.msn + 1 && index == 0)
            guard isHinted, !store.isEnded else { return .answer(Self.error(404, "not found")) }
            return .wait(.part(msn, index), timeout: blockingTimeout(store.targetDuration), onTimeout: Self.error(404, "not found"))

        case .thumbnail:
            return .thumbnail(store)

        case .dvr, .vod, .recordedInit, .recordedSegment, .chapterThumbnail:
            return .answer(Self.error(404, "not found"))  // answered by `recordedAnswer`
        }
    }

    /// Issue 21: the recording's playlists and files (nil for the live names). The playlists are
    /// rendered from the index in memory (the active recorder's, or the library's cache); files are
    /// opened read-only from disk and sent with `sendfile`.
    private func recordedAnswer(roomId: String, name: HLSFileName) -> HLSResponse? {
        switch name {
        case .dvr, .vod:
            guard let recordings, let index = recordings.index(roomId: roomId) else { return Self.error(404, "no recording") }
            if name == .vod, recordings.isRecording(roomId: roomId) { return Self.error(404, "still recording") }
            let type: MediaPlaylist.PlaylistType = name == .vod ? .vod : .event
            guard let body = recordings.playlistBody(roomId: roomId, index: index, type: type) else { return Self.error(404, "no recording") }
            metrics.playlistRequestsNonBlocking.increment()
            return served(body, Self.playlistHeaders)
        case .recordedInit, .recordedSegment, .chapterThumbnail:
            guard let file = recordings?.openFile(roomId: roomId, name: name) else { return Self.error(404, "not found") }
            let headers: [(String, String)]
            switch name {
            case .recordedInit: headers = Self.recordedMP4Headers
            case .recordedSegment(_, let ext): headers = ext == "ts" ? Self.recordedTSHeaders : Self.recordedMP4Headers
            default: headers = Self.recordedJPEGHeaders
            }
            return served(.file(file, offset: 0, length: file.size), headers)
        default:
            return nil
        }
    }

    /// How long a blocking request may wait: `blockingReloadTimeoutMultiplier` × the target
    /// duration (the configured one before the stream has its own), at most an hour.
    private func blockingTimeout(_ target: Int?) -> Duration {
        let seconds = Double(target ?? Int(configuration.targetSegmentDuration.rounded(.up)))
        return .milliseconds(Int64(min(seconds * configuration.blockingReloadTimeoutMultiplier, 3600) * 1000))
    }

    /// Init sections and segments: there or not, never waited for.
    private func immediateFile(_ name: HLSFileName, store: SegmentStore) -> HLSResponse {
        switch name {
        case .initSection(let index):
            guard configuration.variant.usesFragmentedMP4, let body = store.initSection(index) else {
                return Self.error(404, "not found")
            }
            return served(body, Self.mp4Headers)
        case .segment(let msn, let ext):
            guard ext == configuration.variant.segmentExtension, let body = store.segmentBody(msn: msn) else {
                return Self.error(404, "not found")
            }
            return served(body, ext == "ts" ? Self.tsHeaders : Self.mp4Headers)
        default:
            return Self.error(404, "not found")
        }
    }

    static let immutable = "public, max-age=3600, immutable"
    /// The CORS headers of every answer (the Server's cluster proxy puts them on forwarded ones too).
    public static let cors: [(String, String)] = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
        ("Access-Control-Expose-Headers", "Content-Length, Content-Type"),
    ]

    /// The header sets of every answer, built once: a response shares its array (and the Server's
    /// fast path keeps the encoded header block per array).
    static let playlistHeaders = [("Content-Type", "application/vnd.apple.mpegurl"), ("Cache-Control", "no-cache")] + cors
    static let mp4Headers = [("Content-Type", "video/mp4"), ("Cache-Control", immutable)] + cors
    static let tsHeaders = [("Content-Type", "video/mp2t"), ("Cache-Control", immutable)] + cors
    static let jpegHeaders = [("Content-Type", "image/jpeg"), ("Cache-Control", "no-cache")] + cors
    static let recordedImmutable = "public, max-age=31536000, immutable"
    static let recordedMP4Headers = [("Content-Type", "video/mp4"), ("Cache-Control", recordedImmutable)] + cors
    static let recordedTSHeaders = [("Content-Type", "video/mp2t"), ("Cache-Control", recordedImmutable)] + cors
    static let recordedJPEGHeaders = [("Content-Type", "image/jpeg"), ("Cache-Control", recordedImmutable)] + cors
    static let errorHeaders = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-cache")] + cors

    private func served(_ body: ByteBuffer, _ headers: [(String, String)]) -> HLSResponse {
        served(.bytes(body), headers)
    }

    private func served(_ body: HLSBody, _ headers: [(String, String)]) -> HLSResponse {
        metrics.bytesServed.increment(by: body.count)
        return HLSResponse(status: 200, headers: headers, content: body)
    }

    private static func error(_ status: Int, _ message: String) -> HLSResponse {
        HLSResponse(
            status: status,
            headers: errorHeaders,
            body: ByteBuffer(string: message + "\n"))
    }

    /// Whether `GET /hls/{roomId}/{file}` fits the URL table's grammar (the room id and one of the
    /// file names): the Server's cluster proxy forwards nothing else to an origin.
    public static func isServable(roomId: String, file: String) -> Bool {
        isValidRoomId(roomId) && HLSFileName(file) != nil
    }

    static func isValidRoomId(_ roomId: String) -> Bool {
        let utf8 = roomId.utf8
        return (1...128).contains(utf8.count)
            && utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }
    }

    /// RFC 8216bis §6.2.5.1 delivery directives: `_HLS_msn=M[&_HLS_part=N]`; `_HLS_skip` is ignored
    /// (CAN-SKIP-UNTIL is not advertised).
    static func deliveryDirectives(_ query: [String: String]) -> Result<SegmentStore.Condition?, DirectiveError> {
        let msn = query["_HLS_msn"]
        let part = query["_HLS_part"]
        if msn == nil && part == nil { return .success(nil) }
        guard let msn else { return .failure(DirectiveError("_HLS_part requires _HLS_msn")) }
        guard let m = HLSFileName.number(Substring(msn)) else { return .failure(DirectiveError("malformed _HLS_msn")) }
        guard let part else { return .success(.segment(m)) }
        guard let n = HLSFileName.number(Substring(part)) else { return .failure(DirectiveError("malformed _HLS_part")) }
        return .success(.part(m, n))
    }

    struct DirectiveError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

/// An `HLSPackager` as a `StreamSink`: the lock serialises the rare overlap of two publishers
/// around a takeover; it is uncontended otherwise.
final class PackagerSink: StreamSink {
    private let packager: Mutex<HLSPackager?>
    private let onEnded: @Sendable () -> Void

    init(packager: sending HLSPackager, onEnded: @escaping @Sendable () -> Void) {
        self.packager = Mutex(packager)
        self.onEnded = onEnded
    }

    func receive(_ event: StreamEvent) {
        let ended = packager.withLock { packager -> Bool in
            guard let current = packager else { return false }
            current.handle(event)
            guard case .ended = event else { return false }
            packager = nil
            return true
        }
        if ended { onEnded() }
    }

    /// Detached before the stream ended (replaced, shutdown): close the open part and segment and
    /// end the playlist so waiting players get `EXT-X-ENDLIST`.
    func finish() {
        packager.withLock { packager in
            packager?.finish()
            packager = nil
        }
    }
}
