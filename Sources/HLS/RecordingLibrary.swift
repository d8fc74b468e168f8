import Dispatch
import Foundation
import Logging
import Metrics
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where and how much LiveHub records (issue 21).
public struct RecordingConfiguration: Sendable {
    /// `LIVEHUB_RECORDINGS_DIR`: one directory per room below it.
    public var directory: String
    /// `LIVEHUB_RECORDING_RETENTION_DAYS`: recordings older than this (by end, else last write) go;
    /// nil keeps them forever.
    public var retention: Duration?
    /// `LIVEHUB_RECORDINGS_MAX_BYTES`: above it the oldest recordings go first; 0 = no quota.
    public var maxBytes: Int64
    /// `LIVEHUB_RECORDINGS_MIN_FREE_BYTES`: a recording is refused (or stops) below this free space.
    public var minFreeBytes: Int64
    /// `LIVEHUB_RECORDING_MAX_BACKLOG_BYTES`: bytes queued for the disk per recording; over it the
    /// recording stops (a disk slower than the stream must not grow the process's memory).
    public var maxBacklogBytes: Int
    /// Indexes of ended recordings kept parsed in memory (the active ones always are).
    public var cachedIndexes: Int

    public init(
        directory: String = "./data/recordings", retention: Duration? = .seconds(30 * 86_400), maxBytes: Int64 = 50 << 30,
        minFreeBytes: Int64 = 1 << 30, maxBacklogBytes: Int = 64 << 20, cachedIndexes: Int = 64
    ) {
        self.directory = directory
        self.retention = retention
        self.maxBytes = max(0, maxBytes)
        self.minFreeBytes = max(0, minFreeBytes)
        self.maxBacklogBytes = max(1 << 20, maxBacklogBytes)
        self.cachedIndexes = max(1, cachedIndexes)
    }
}

/// What the Server needs about one room's recording.
public struct RecordingInfo: Sendable {
    public var roomId: String
    /// This process is writing it now (live).
    public var isRecording: Bool
    public var startedAtMs: Int64
    /// The `end` line, or nil (live, or cut short by a crash).
    public var endedAtMs: Int64?
    /// Sum of the recorded segments' durations.
    public var durationSeconds: Double
    public var bytes: Int64
    public var segmentCount: Int
    public var chapters: [RecordingChapter]
}

public struct RecordingChapter: Sendable {
    public var id: String
    /// Wall clock.
    public var startMs: Int64
    public var endMs: Int64?
    /// Position in the VOD timeline.
    public var mediaSeconds: Double
    /// X-PRODUCT-ID, X-PRODUCT-NAME.
    public var attributes: [String: String]
    /// "chapter-3.jpg" (served under /hls/{roomId}/).
    public var thumbnailFile: String?
}

/// Every recording under `configuration.directory`: starts them (`begin`, from `HLSService.attach`),
/// answers what is recorded (from the parsed `index.jsonl`: the active recordings' indexes live in
/// memory, ended ones in a bounded cache), deletes them, and keeps the disk within its limits.
public final class RecordingLibrary: Sendable {
    public enum DeleteOutcome: Sendable { case deleted, notFound, recording /* still being written */ }

    private struct State {
        var active: [String: RoomRecorder] = [:]
        var cache: [String: (index: RecordingIndex, used: Int)] = [:]
        var tick = 0
    }

    public let configuration: RecordingConfiguration
    let logger: Logger
    let wallClock: @Sendable () -> Int64
    private let state = Mutex(State())
    /// Rendered DVR/VOD playlists per room and type, for one index revision (a DVR playlist of a
    /// long show is re-rendered once per segment, not per request). Bounded like the index cache.
    private let renderedPlaylists = Mutex<[String: (revision: Int, body: ByteBuffer)]>([:])
    /// `hasReplay` answers, keyed by the index file's size and change time (so any write or a
    /// deletion makes them stale by itself); at most `maxReplayMemo` rooms, then it starts over.
    private let replayMemo = Mutex<[String: (size: Int64, changedNs: Int64, replayable: Bool)]>([:])
    static let maxReplayMemo = 16_384
    let bytesWritten: Counter
    private let activeGauge: Gauge
    private let metricsFactory: any MetricsFactory

    public init(
        configuration: RecordingConfiguration, logger: Logger,
        wallClock: @escaping @Sendable () -> Int64 = HLSService.systemWallClock,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.logger = logger
        self.wallClock = wallClock
        self.metricsFactory = metricsFactory
        self.bytesWritten = Counter(label: "livehub_recording_bytes_written_total", factory: metricsFactory)
        self.activeGauge = Gauge(label: "livehub_recordings_active", factory: metricsFactory)
    }

    func refused(_ reason: String) {
        Counter(label: "livehub_recordings_refused_total", dimensions: [("reason", reason)], factory: metricsFactory).increment()
    }

    func directory(roomId: String) -> String { configuration.directory + "/" + roomId }

    // MARK: Recording

    /// Starts (or continues: a new publish session of a room already recorded, here or on disk)
    /// the room's recording. nil when refused (free space below the floor, the directory cannot be
    /// made): logged and counted, the live goes on.
    func begin(roomId: String, variant: HLSVariant, targetDuration: Int) -> RecordingSession? {
        guard HLSService.isValidRoomId(roomId) else { return nil }
        if let recorder = state.withLock({ $0.active[roomId] }), let session = recorder.newSession() {
            return session
        }
        let directory = directory(roomId: roomId)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            logger.error("recording refused: cannot make its directory", metadata: ["room": "\(roomId)", "error": "\(error)"])
            refused("io")
            return nil
        }
        if let free = Self.freeBytes(path: directory), free < configuration.minFreeBytes {
            logger.error(
                "recording refused: free disk space below LIVEHUB_RECORDINGS_MIN_FREE_BYTES",
                metadata: ["room": "\(roomId)", "free": "\(free)", "floor": "\(configuration.minFreeBytes)"])
            refused("disk_space")
            return nil
        }
        let existing = Self.readIndex(directory: directory)
        if existing.startedAtMs != nil, existing.variant != variant {
            logger.error(
                "recording refused: the room was recorded with another HLS variant",
                metadata: ["room": "\(roomId)", "recorded": "\(existing.variant.rawValue)", "live": "\(variant.rawValue)"])
            refused("variant")
            return nil
        }
        guard let recorder = RoomRecorder(
            library: self, roomId: roomId, directory: directory, index: existing, variant: variant, targetDuration: targetDuration)
        else {
            refused("io")
            return nil
        }
        let replaced = state.withLock { state -> RoomRecorder? in
            state.cache.removeValue(forKey: roomId)
            defer { state.active[roomId] = recorder }
            return state.active[roomId]
        }
        replaced?.stop(reason: "replaced")
        updateGauge()
        logger.info("recording started", metadata: ["room": "\(roomId)", "appended": "\(existing.lastMSN != nil)"])
        return recorder.newSession()
    }

    /// The last media sequence number recorded for the room (queued included), to continue after.
    func lastRecordedMSN(roomId: String) -> Int? {
        guard HLSService.isValidRoomId(roomId) else { return nil }
        if let recorder = state.withLock({ $0.active[roomId] }) { return recorder.lastQueuedMSN }
        return index(roomId: roomId)?.lastMSN
    }

    /// A recorder finished (ended, stopped): its index moves to the cache.
    func finished(_ recorder: RoomRecorder, index: RecordingIndex) {
        state.withLock { state in
            guard state.active[recorder.roomId] === recorder else { return }
            state.active.removeValue(forKey: recorder.roomId)
            remember(&state, roomId: recorder.roomId, index: index)
        }
        updateGauge()
    }

    private func updateGauge() {
        activeGauge.record(state.withLock { $0.active.count })
    }

    private func remember(_ state: inout State, roomId: String, index: RecordingIndex) {
        state.tick += 1
        state.cache[roomId] = (index, state.tick)
        if state.cache.count > configuration.cachedIndexes,
            let oldest = state.cache.min(by: { $0.value.used < $1.value.used })?.key
        {
            state.cache.removeValue(forKey: oldest)
        }
    }

    // MARK: Reading

    /// The room's recording index: the active recorder's (in memory), the cached one, or read from
    /// disk (then cached). nil without a recording.
    func index(roomId: String) -> RecordingIndex? {
        guard HLSService.isValidRoomId(roomId) else { return nil }
        enum Found { case active(RoomRecorder), cached(RecordingIndex), none }
        let found: Found = state.withLock { state in
            if let recorder = state.active[roomId] { return .active(recorder) }
            if let cached = state.cache[roomId] {
                state.tick += 1
                state.cache[roomId]!.used = state.tick
                return .cached(cached.index)
            }
            return .none
        }
        switch found {
        case .active(let recorder): return recorder.index
        case .cached(let index): return index
        case .none:
            let directory = directory(roomId: roomId)
            guard FileManager.default.fileExists(atPath: directory + "/index.jsonl") else { return nil }
            let index = Self.readIndex(directory: directory)
            state.withLock { remember(&$0, roomId: roomId, index: index) }
            return index
        }
    }

    func isRecording(roomId: String) -> Bool { state.withLock { $0.active[roomId] != nil } }

    /// Whether the room has a finished recording with at least one segment: what `replayUrl`
    /// needs, asked for every ENDED room of a room list. One `stat` of the index while the answer
    /// is memoised, so a list never parses indexes again (`index(roomId:)` keeps only 64).
    public func hasReplay(roomId: String) -> Bool {
        guard HLSService.isValidRoomId(roomId), !isRecording(roomId: roomId) else { return false }
        var file = stat()
        guard stat(directory(roomId: roomId) + "/index.jsonl", &file) == 0 else { return false }
        let size = Int64(file.st_size)
        let changedNs = Int64(file.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(file.st_mtim.tv_nsec)
        if let memo = replayMemo.withLock({ $0[roomId] }), memo.size == size, memo.changedNs == changedNs {
            return memo.replayable
        }
        let replayable = index(roomId: roomId)?.segments.isEmpty == false
        replayMemo.withLock { memo in
            if memo.count >= Self.maxReplayMemo { memo.removeAll(keepingCapacity: true) }
            memo[roomId] = (size, changedNs, replayable)
        }
        return replayable
    }

    public func info(roomId: String) -> RecordingInfo? {
        guard let index = index(roomId: roomId), let started = index.startedAtMs ?? index.segments.first?.programDateTimeMs else { return nil }
        return RecordingInfo(
            roomId: roomId, isRecording: isRecording(roomId: roomId), startedAtMs: started, endedAtMs: index.endedAtMs,
            durationSeconds: index.durationSeconds, bytes: index.bytes, segmentCount: index.segments.count,
            chapters: index.chapters.map { chapter in
                RecordingChapter(
                    id: chapter.id, startMs: chapter.startMs, endMs: chapter.endMs,
                    mediaSeconds: index.mediaSeconds(wallClockMs: chapter.startMs), attributes: chapter.attributes,
                    thumbnailFile: chapter.thumbnailFile)
            })
    }

    /// Seconds into the show for a wall-clock instant (`RecordingIndex.mediaSeconds`); nil without
    /// a recording with segments.
    public func mediaSeconds(roomId: String, wallClockMs: Int64) -> Double? {
        guard let index = index(roomId: roomId), !index.segments.isEmpty else { return nil }
        return index.mediaSeconds(wallClockMs: wallClockMs)
    }

    /// The inverse (`RecordingIndex.wallClockMs`).
    public func wallClockMs(roomId: String, mediaSeconds: Double) -> Int64? {
        index(roomId: roomId)?.wallClockMs(mediaSeconds: mediaSeconds)
    }

    /// The room's DVR (`EVENT`) or VOD playlist as served; nil without a recorded segment.
    func playlistBody(roomId: String, index: RecordingIndex, type: MediaPlaylist.PlaylistType) -> ByteBuffer? {
        let key = type.rawValue + "/" + roomId
        if let cached = renderedPlaylists.withLock({ $0[key] }), cached.revision == index.revision { return cached.body }
        guard let playlist = index.playlist(type: type) else { return nil }
        let body = ByteBuffer(string: playlist.render())
        renderedPlaylists.withLock { cache in
            if cache.count >= 2 * configuration.cachedIndexes + 2 * state.withLock({ $0.active.count }) { cache.removeAll() }
            cache[key] = (index.revision, body)
        }
        return body
    }

    /// A recorded file (`rec-…`, `chapter-….jpg`) opened read-only, when the index lists it.
    func openFile(roomId: String, name: HLSFileName) -> HLSMemoryFile? {
        guard let onDisk = name.fileNameOnDisk, let index = index(roomId: roomId) else { return nil }
        switch name {
        case .recordedInit(let n):
            guard index.variant.usesFragmentedMP4, index.inits.contains(n) else { return nil }
        case .recordedSegment(let msn, let ext):
            guard ext == index.variant.segmentExtension, index.segments.contains(where: { $0.msn == msn }) else { return nil }
        case .chapterThumbnail:
            guard index.chapters.contains(where: { $0.thumbnailFile == onDisk }) else { return nil }
        default:
            return nil
        }
        return HLSMemoryFile.openReadOnly(path: directory(roomId: roomId) + "/" + onDisk)
    }

    static func readIndex(directory: String) -> RecordingIndex {
        guard let handle = FileHandle(forReadingAtPath: directory + "/index.jsonl") else { return RecordingIndex() }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: RecordingIndex.maxFileBytes)) ?? Data()
        return RecordingIndex.parse(data)
    }

    // MARK: Deleting and limits

    public func delete(roomId: String) -> DeleteOutcome {
        guard HLSService.isValidRoomId(roomId) else { return .notFound }
        if isRecording(roomId: roomId) { return .recording }
        let directory = directory(roomId: roomId)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { return .notFound }
        do {
            try FileManager.default.removeItem(atPath: directory)
        } catch {
            logger.error("recording delete failed", metadata: ["room": "\(roomId)", "error": "\(error)"])
        }
        state.withLock { _ = $0.cache.removeValue(forKey: roomId) }
        renderedPlaylists.withLock { cache in
            for type in [MediaPlaylist.PlaylistType.event, .vod] { cache.removeValue(forKey: type.rawValue + "/" + roomId) }
        }
        logger.info("recording deleted", metadata: ["room": "\(roomId)"])
        return .deleted
    }

    /// Retention (by end time, else last write) and quota (oldest first, never the ones being
    /// written; when only active recordings are over quota they stop recording, logged). Returns
    /// the room ids it removed.
    @discardableResult
    public func enforceLimits() -> [String] {
        struct Entry {
            var roomId: String
            var bytes: Int64
            var startedAtMs: Int64
            var lastMs: Int64
            var active: Bool
        }
        let root = configuration.directory
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        let active = state.withLock { Set($0.active.keys) }
        var entries: [Entry] = []
        for name in names where HLSService.isValidRoomId(name) {
            let directory = root + "/" + name
            var info = stat()
            guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { continue }
            var bytes: Int64 = 0
            var lastWrite = Int64(min(max(info.st_mtim.tv_sec, 0), 10_000_000_000)) * 1000
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                var fileInfo = stat()
                guard lstat(directory + "/" + file, &fileInfo) == 0 else { continue }
                bytes += Int64(fileInfo.st_size)
                lastWrite = max(lastWrite, Int64(min(max(fileInfo.st_mtim.tv_sec, 0), 10_000_000_000)) * 1000)
            }
            let index = active.contains(name) ? nil : self.index(roomId: name)
            entries.append(Entry(
                roomId: name, bytes: bytes, startedAtMs: index?.startedAtMs ?? lastWrite, lastMs: index?.endedAtMs ?? lastWrite,
                active: active.contains(name)))
        }
        var removed: [String] = []
        let now = wallClock()
        if let retention = configuration.retention {
            let (seconds, attoseconds) = retention.components
            let limitMs = seconds.multipliedReportingOverflow(by: 1000).partialValue + attoseconds / 1_000_000_000_000_000
            for entry in entries where !entry.active && now - entry.lastMs > limitMs {
                if delete(roomId: entry.roomId) == .deleted { removed.append(entry.roomId) }
            }
            entries.removeAll { removed.contains($0.roomId) }
        }
        if configuration.maxBytes > 0 {
            var total = entries.reduce(Int64(0)) { $0 + $1.bytes }
            for entry in entries.filter({ !$0.active }).sorted(by: { $0.startedAtMs < $1.startedAtMs }) where total > configuration.maxBytes {
                if delete(roomId: entry.roomId) == .deleted {
                    removed.append(entry.roomId)
                    total -= entry.bytes
                }
            }
            if total > configuration.maxBytes {
                let recorders = state.withLock { Array($0.active.values) }
                for recorder in recorders {
                    logger.error("recording stopped: the recordings are over LIVEHUB_RECORDINGS_MAX_BYTES", metadata: ["room": "\(recorder.roomId)"])
                    recorder.stop(reason: "quota")
                }
            }
        }
        if !removed.isEmpty { logger.info("recordings removed by retention or quota", metadata: ["rooms": "\(removed)"]) }
        return removed
    }

    /// Free bytes for an unprivileged writer on the file system holding `path` (`statvfs`).
    static func freeBytes(path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        let (product, overflow) = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        return overflow || product > UInt64(Int64.max) ? Int64.max : Int64(product)
    }
}

/// One attachment (publish session) of a room's packager to its recorder: events of a session the
/// recorder has moved past (a replaced packager ending) are ignored.
final class RecordingSession: Sendable {
    let recorder: RoomRecorder
    let number: Int

    init(recorder: RoomRecorder, number: Int) {
        self.recorder = recorder
        self.number = number
    }

    func initSection(liveIndex: Int, bytes: ByteBuffer) { recorder.initSection(session: number, liveIndex: liveIndex, bytes: bytes) }

    /// Whether segments are still being recorded (false once the recorder stopped).
    var isActive: Bool { recorder.isActive(session: number) }

    /// Queues a sealed segment; false when it is not recorded (stopped, refused). `stored` is then
    /// not called; otherwise it is called once on the recorder's queue with the written file
    /// opened read-only, or nil when it could not be written.
    @discardableResult
    func segment(
        msn: Int, duration: Double, programDateTimeMs: Int64, discontinuity: Bool, liveInit: Int?, body: HLSBody,
        stored: (@Sendable (HLSMemoryFile?) -> Void)? = nil
    ) -> Bool {
        recorder.segment(
            session: number, msn: msn, duration: duration, programDateTimeMs: programDateTimeMs, discontinuity: discontinuity,
            liveInit: liveInit, body: body, stored: stored)
    }

    func chapter(id: String, atMs: Int64, attributes: [String: String]) { recorder.chapter(id: id, atMs: atMs, attributes: attributes) }
    func chapterEnd(id: String, atMs: Int64) { recorder.append(.chapterEnd(id: id, endMs: atMs)) }
    func thumbnail(id: String, jpeg: ByteBuffer) { recorder.thumbnail(id: id, jpeg: jpeg) }
    func end() { recorder.end(session: number) }
}

/// One room's recording being written: the packager's thread hands over sealed segments and init
/// sections (references, no copy); a serial queue of the room's own writes them (`*.tmp`, renamed
/// into place) and then appends their `index.jsonl` line, so a file the index names is complete.
/// The queued bytes are bounded (`maxBacklogBytes`); over it, or when a write fails or the free
/// space drops below the floor, the recording stops (logged) and the live goes on.
final class RoomRecorder: Sendable {
    private struct State {
        /// What is on disk (updated on the queue after each write).
        var index: RecordingIndex
        var session = 0
        /// The current session's init sections: live index → recorded number.
        var initMap: [Int: Int] = [:]
        var nextInit: Int
        var nextThumbnail: Int
        var lastQueuedMSN: Int?
        /// The next recorded segment starts a new session (after one that recorded something).
        var discontinuityPending = false
        var backlogBytes = 0
        var stopped = false
    }

    let roomId: String
    let directory: String
    private let library: RecordingLibrary
    let variant: HLSVariant
    private let queue: DispatchQueue
    private let state: Mutex<State>
    private let indexDescriptor: CInt

    init?(library: RecordingLibrary, roomId: String, directory: String, index: RecordingIndex, variant: HLSVariant, targetDuration: Int) {
        let fd = open(directory + "/index.jsonl", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            library.logger.error("recording refused: cannot open its index", metadata: ["room": "\(roomId)", "errno": "\(errno)"])
            return nil
        }
        self.indexDescriptor = fd
        self.library = library
        self.roomId = roomId
        self.directory = directory
        self.variant = variant
        self.queue = DispatchQueue(label: "livehub.recording.\(roomId)", qos: .utility)
        self.state = Mutex(State(
            index: index, nextInit: index.nextInitNumber, nextThumbnail: index.nextThumbnailNumber, lastQueuedMSN: index.lastMSN,
            discontinuityPending: index.lastMSN != nil))
        // A torn last line (kill -9) must not swallow the next one: start on a fresh line.
        var info = stat()
        if fstat(fd, &info) == 0, info.st_size > 0 { writeLine("\n") }
        append(.start(ms: library.wallClock(), variant: variant, targetDuration: targetDuration))
    }

    deinit { close(indexDescriptor) }

    var index: RecordingIndex { state.withLock { $0.index } }
    var lastQueuedMSN: Int? { state.withLock { $0.lastQueuedMSN } }

    /// A new publish session (a packager attached): its first segment gets a discontinuity when
    /// anything was recorded before. nil when the recorder has stopped.
    func newSession() -> RecordingSession? {
        state.withLock { state -> RecordingSession? in
            guard !state.stopped else { return nil }
            state.session += 1
            state.initMap = [:]
            if state.lastQueuedMSN != nil { state.discontinuityPending = true }
            return RecordingSession(recorder: self, number: state.session)
        }
    }

    func initSection(session: Int, liveIndex: Int, bytes: ByteBuffer) {
        let number: Int? = state.withLock { state in
            guard !state.stopped, state.session == session, state.initMap[liveIndex] == nil else { return nil }
            let number = state.nextInit
            state.nextInit += 1
            state.initMap[liveIndex] = number
            return number
        }
        guard let number else { return }
        enqueue(bytes: bytes.readableBytes) { recorder in
            try recorder.writeFile(named: "init-\(number).mp4", body: .bytes(bytes))
            recorder.appendNow(.initSection(n: number))
        }
    }

    func isActive(session: Int) -> Bool { state.withLock { !$0.stopped && $0.session == session } }

    func segment(
        session: Int, msn: Int, duration: Double, programDateTimeMs: Int64, discontinuity: Bool, liveInit: Int?, body: HLSBody,
        stored: (@Sendable (HLSMemoryFile?) -> Void)?
    ) -> Bool {
        let line: RecordingIndex.Line? = state.withLock { state in
            guard !state.stopped, state.session == session, msn > (state.lastQueuedMSN ?? -1) else { return nil }
            var initIndex: Int?
            if let liveInit {
                guard let mapped = state.initMap[liveInit] else { return nil }
                initIndex = mapped
            }
            let disc = discontinuity || state.discontinuityPending
            state.discontinuityPending = false
            state.lastQueuedMSN = msn
            return .segment(
                msn: msn, duration: duration, programDateTimeMs: programDateTimeMs, discontinuity: disc, initIndex: initIndex,
                bytes: Int64(body.count))
        }
        guard let line else { return false }
        let name = "seg-\(msn).\(variant.segmentExtension)"
        let minFree = library.configuration.minFreeBytes
        return enqueue(bytes: body.count, onFailure: { stored?(nil) }) { recorder in
            if let free = RecordingLibrary.freeBytes(path: recorder.directory), free < minFree {
                recorder.library.refused("disk_space")
                recorder.stop(reason: "free disk space below LIVEHUB_RECORDINGS_MIN_FREE_BYTES")
                stored?(nil)
                return
            }
            try recorder.writeFile(named: name, body: body)
            recorder.appendNow(line)
            if let stored { stored(HLSMemoryFile.openReadOnly(path: recorder.directory + "/" + name)) }
        }
    }

    func chapter(id: String, atMs: Int64, attributes: [String: String]) {
        let sanitized = Dictionary(
            attributes.filter { DateRange.isValidAttributeName($0.key) }.prefix(RecordingIndex.maxAttributes).map { ($0.key, DateRange.sanitized($0.value)) },
            uniquingKeysWith: { first, _ in first })
        append(.chapter(id: id, startMs: atMs, attributes: sanitized, className: RecordingIndex.chapterClass))
    }

    func thumbnail(id: String, jpeg: ByteBuffer) {
        let number: Int? = state.withLock { state in
            guard !state.stopped else { return nil }
            defer { state.nextThumbnail += 1 }
            return state.nextThumbnail
        }
        guard let number else { return }
        let file = HLSFileName.chapterThumbnail(number).description
        enqueue(bytes: jpeg.readableBytes) { recorder in
            try recorder.writeFile(named: file, body: .bytes(jpeg))
            recorder.appendNow(.thumbnail(id: id, file: file))
        }
    }

    /// The stream ended: the `end` line, then the library's limits.
    func end(session: Int) {
        let current = state.withLock { !$0.stopped && $0.session == session }
        guard current else { return }
        queue.async { [self] in
            appendNow(.end(ms: library.wallClock()))
            let finalIndex = state.withLock { state in
                state.stopped = true
                return state.index
            }
            library.finished(self, index: finalIndex)
            library.logger.info("recording ended", metadata: ["room": "\(roomId)", "segments": "\(finalIndex.segments.count)"])
            _ = library.enforceLimits()
        }
    }

    /// Stops recording (the live goes on); what is on disk stays playable.
    func stop(reason: String) {
        let wasRunning = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard wasRunning else { return }
        library.logger.error("recording stopped", metadata: ["room": "\(roomId)", "reason": "\(reason)"])
        library.finished(self, index: index)
    }

    // MARK: On the queue

    /// Appends a line to the index (on the queue, after the file it names) and folds it in.
    func append(_ line: RecordingIndex.Line) {
        queue.async { [self] in appendNow(line) }
    }

    /// `append` on the queue itself.
    func appendNow(_ line: RecordingIndex.Line) {
        guard writeLine(line.encoded) else {
            stop(reason: "index write failed")
            return
        }
        state.withLock { $0.index.apply(line) }
    }

    /// Runs `work` on the queue when the backlog allows; false when it was not queued. `onFailure`
    /// runs on the queue instead of (or after) `work` when the recorder stopped meanwhile or `work` threw.
    @discardableResult
    private func enqueue(
        bytes: Int, onFailure: (@Sendable () -> Void)? = nil, _ work: @escaping @Sendable (RoomRecorder) throws -> Void
    ) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            if state.backlogBytes + bytes > library.configuration.maxBacklogBytes { return false }
            state.backlogBytes += bytes
            return true
        }
        guard accepted else {
            if !state.withLock({ $0.stopped }) {
                library.refused("backlog")
                stop(reason: "the disk is behind: LIVEHUB_RECORDING_MAX_BACKLOG_BYTES queued")
            }
            return false
        }
        queue.async { [self] in
            defer { state.withLock { $0.backlogBytes -= bytes } }
            guard !state.withLock({ $0.stopped }) else {
                onFailure?()
                return
            }
            do {
                try work(self)
            } catch {
                library.refused("io")
                stop(reason: "write failed: \(error)")
                onFailure?()
            }
        }
        return true
    }

    @discardableResult
    private func writeLine(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { Self.writeAll(indexDescriptor, UnsafeRawBufferPointer($0)) }
    }

    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    /// Writes `body` to `name.tmp` and renames it to `name`: a file that exists is complete.
    private func writeFile(named name: String, body: HLSBody) throws {
        let path = directory + "/" + name
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(description: "open \(name): errno \(errno)") }
        var ok: Bool
        switch body {
        case .bytes(let buffer):
            ok = buffer.withUnsafeReadableBytes { Self.writeAll(fd, $0) }
        case .file(let file, let offset, let length):
            // The sealed memfd's pages go to the file without a trip through user memory.
            var from = off_t(offset)
            var left = length
            ok = true
            while left > 0 {
                let n = sendfile(fd, file.descriptor, &from, left)
                if n < 0, errno == EINTR { continue }
                if n <= 0 {
                    ok = false
                    break
                }
                left -= n
            }
            if !ok {  // sendfile unsupported here: copy through the heap
                ok = body.bytes.withUnsafeReadableBytes { raw in
                    ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0 && Self.writeAll(fd, raw)
                }
            }
        }
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw WriteError(description: "write \(name): errno \(errno)")
        }
        library.bytesWritten.increment(by: body.count)
    }

    private static func writeAll(_ fd: CInt, _ raw: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }
}
