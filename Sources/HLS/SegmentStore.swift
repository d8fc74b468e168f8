import NIOCore
import Synchronization

/// One room's HLS output in RAM, shared by one packager (writing) and any number of HTTP requests
/// (reading): a `SegmentWindow` (the segments, parts, init sections and playlists' facts, a pure
/// value) and the `SegmentWaiters` (requests waiting for something to appear: blocking playlist
/// reload, RFC 8216bis §6.2.5.2; preload-hinted parts, §4.4.5.3), behind one lock, plus the rendered
/// playlists cached per change and the thumbnailer.
final class SegmentStore: Sendable {
    typealias Condition = SegmentWindow.Condition
    typealias StreamInfo = SegmentWindow.StreamInfo

    private struct State {
        var window: SegmentWindow
        var waiters = SegmentWaiters()
        /// Bumped by every change; the cached playlists are for one version.
        var version = 0
        var cachedPlaylist: (version: Int, body: ByteBuffer)?
        var cachedMultivariant: (version: Int, body: ByteBuffer)?
        /// Chapters (issue 21) for the live playlist's DATERANGE tags, the latest `maxChapters`.
        var chapters: [DateRange] = []
    }

    static let maxChapters = 64

    let variant: HLSVariant
    let configuration: HLSConfiguration
    /// `thumbnail.jpg`, made on request from the latest keyframe.
    let thumbnails: Thumbnailer
    private let state: Mutex<State>
    /// Where sealed segments and init sections go besides the window (issue 21); nil: not recorded.
    let recording: RecordingSession?

    init(configuration: HLSConfiguration, recording: RecordingSession? = nil) {
        self.configuration = configuration
        self.recording = recording
        self.variant = configuration.variant
        self.thumbnails = Thumbnailer(width: configuration.thumbnailWidth, maxAge: configuration.thumbnailInterval)
        self.state = Mutex(State(window: SegmentWindow(
            windowSegments: configuration.windowSegments, maxRetiredSegments: configuration.maxRetiredSegments)))
    }

    // MARK: Packager side

    /// Registers an initialization section; identical bytes reuse the current one (no new EXT-X-MAP).
    func setInitSection(_ bytes: ByteBuffer) {
        var current: Int?
        change {
            $0.setInitSection(bytes)
            current = $0.currentInit
        }
        if let recording, let current, variant.usesFragmentedMP4 { recording.initSection(liveIndex: current, bytes: bytes) }
    }

    // MARK: Chapters (issue 21)

    func addChapter(_ chapter: DateRange) {
        state.withLock { state in
            state.chapters.removeAll { $0.id == chapter.id }
            state.chapters.append(chapter)
            if state.chapters.count > Self.maxChapters { state.chapters.removeFirst(state.chapters.count - Self.maxChapters) }
            state.version += 1
        }
    }

    func endChapter(id: String, atMs: Int64) {
        state.withLock { state in
            guard let index = state.chapters.firstIndex(where: { $0.id == id }), state.chapters[index].endMs == nil else { return }
            state.chapters[index].endMs = max(atMs, state.chapters[index].startMs)
            state.version += 1
        }
    }

    /// The next segment is preceded by `EXT-X-DISCONTINUITY` (publisher reconnect, codec change).
    func markDiscontinuity() {
        change { $0.markDiscontinuity() }
    }

    /// `SegmentWindow.continueNumbering`.
    func continueNumbering(after position: HLSPosition) -> Bool {
        var applied = false
        change { applied = $0.continueNumbering(after: position) }
        return applied
    }

    var position: HLSPosition { state.withLock { $0.window.position } }

    func setStreamInfo(_ info: StreamInfo) {
        change { $0.info = info }
    }

    /// Appends a completed part to the open segment (opening it if needed). `targetDuration`: the
    /// stream's `EXT-X-TARGETDURATION` when it is declared before the first segment ends (LL-HLS).
    func addPart(_ bytes: ByteBuffer, duration: Double, independent: Bool, programDateTimeMs: Int64, targetDuration: Int? = nil) {
        change {
            $0.addPart(bytes, duration: duration, independent: independent, programDateTimeMs: programDateTimeMs, targetDuration: targetDuration)
        }
    }

    /// Completes the open segment. With parts, its bytes are the parts' bytes; otherwise `bytes`.
    /// The finished segment is kept in a sealed `HLSMemoryFile` (when
    /// `configuration.segmentsInMemoryFiles`, and on the heap if that fails), so that the server
    /// can `sendfile` it and its parts.
    func closeSegment(
        duration: Double, independent: Bool, bytes: ByteBuffer?, programDateTimeMs: Int64, targetDuration: Int?
    ) {
        // The file is written before the lock is taken, straight from the parts (no heap copy of the
        // whole segment first). Only the packager adds parts and closes segments, so the open
        // segment's parts cannot change in between.
        //
        // Recorded (issue 21): no memory file. The segment stays on the heap until the recorder has
        // written its file to disk, then the window serves that file (`adoptFile`), from the page
        // cache with sendfile like a memory file. So a recorded segment is copied out of user memory
        // once, as an unrecorded one is: recording costs the disk's bookkeeping, not a second copy.
        let recordedToDisk = configuration.segmentsInMemoryFiles && recording?.isActive == true
        var file: HLSMemoryFile?
        if configuration.segmentsInMemoryFiles && !recordedToDisk {
            file = HLSMemoryFile.make(copying: bytes.map { [$0] } ?? state.withLock { $0.window.openPartBytes })
        }
        let now = ContinuousClock.now
        var closed: SegmentWindow.Segment?
        change {
            $0.closeSegment(
                duration: duration, independent: independent, bytes: bytes, file: file, programDateTimeMs: programDateTimeMs,
                targetDuration: targetDuration, now: now)
            closed = $0.segments.last
        }
        guard let recording, let closed else { return }
        let msn = closed.msn
        var stored: (@Sendable (HLSMemoryFile?) -> Void)?
        if recordedToDisk {
            stored = { [weak self] diskFile in
                self?.adoptFile(diskFile, msn: msn)
            }
        }
        let queued = recording.segment(
            msn: msn, duration: closed.duration, programDateTimeMs: closed.programDateTimeMs,
            discontinuity: closed.discontinuity, liveInit: variant.usesFragmentedMP4 ? closed.initIndex : nil, body: closed.body,
            stored: stored)
        if recordedToDisk && !queued { adoptFile(nil, msn: msn) }
    }

    /// The recorder wrote segment `msn` to disk (`diskFile`, opened read-only) or could not (nil):
    /// the window serves that file from now on, or a memory file made from the heap bytes, as an
    /// unrecorded segment would have had from the start.
    func adoptFile(_ diskFile: HLSMemoryFile?, msn: Int) {
        let now = ContinuousClock.now
        var file = diskFile
        if file == nil {
            guard let heap = state.withLock({ $0.window.segment(msn: msn, now: now)?.body }), case .bytes(let bytes) = heap else { return }
            file = HLSMemoryFile.make(copying: [bytes])
        }
        guard let file else { return }
        state.withLock { _ = $0.window.adoptFile(file, msn: msn) }
    }

    /// `EXT-X-ENDLIST`: wakes every waiting request; the recording gets its `end` line.
    func end() {
        change { $0.end() }
        recording?.end()
    }

    /// Applies a change to the window and wakes the requests it satisfies (outside the lock).
    private func change(_ body: (inout SegmentWindow) -> Void) {
        let ready = state.withLock { state in
            body(&state.window)
            state.version += 1
            return state.waiters.takeSatisfied(by: state.window)
        }
        SegmentWaiters.resume(ready, satisfied: true)
    }

    // MARK: Request side

    var isEnded: Bool { state.withLock { $0.window.ended } }
    var targetDuration: Int? { state.withLock { $0.window.targetDuration } }
    var lastCompleteMSN: Int { state.withLock { $0.window.lastCompleteMSN } }

    func isSatisfied(_ condition: Condition) -> Bool { state.withLock { $0.window.isSatisfied(condition) } }

    /// Waits until `condition` holds (true) or `timeout` passes (false). Cancellation answers false.
    func wait(for condition: Condition, timeout: Duration) async -> Bool {
        let id = state.withLock { $0.waiters.newID() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let satisfied = state.withLock { state -> Bool in
                    if state.window.isSatisfied(condition) { return true }
                    state.waiters.add(id, condition: condition, continuation: continuation)
                    return false
                }
                if satisfied {
                    continuation.resume(returning: true)
                    return
                }
                let timer = Task { [weak self] in
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                    self?.expireWaiter(id)
                }
                let stillWaiting = state.withLock { $0.waiters.setTimer(timer, for: id) }
                if !stillWaiting { timer.cancel() }
            }
        } onCancel: {
            self.expireWaiter(id)
        }
    }

    private func expireWaiter(_ id: Int) {
        let waiter = state.withLock { $0.waiters.remove(id) }
        SegmentWaiters.resume(waiter.map { [$0] } ?? [], satisfied: false)
    }

    /// Fails every waiting request (shutdown).
    func cancelWaiters() {
        SegmentWaiters.resume(state.withLock { $0.waiters.removeAll() }, satisfied: false)
    }

    func initSection(_ index: Int) -> ByteBuffer? { state.withLock { $0.window.inits[index] } }

    func segmentBody(msn: Int) -> HLSBody? {
        let now = ContinuousClock.now
        return state.withLock { $0.window.segment(msn: msn, now: now)?.body }
    }

    /// The segment's bytes on the heap (a copy when it is in a memory file).
    func segmentBytes(msn: Int) -> ByteBuffer? { segmentBody(msn: msn)?.bytes }

    func partBody(msn: Int, index: Int) -> HLSBody? {
        let now = ContinuousClock.now
        return state.withLock { $0.window.partBody(msn: msn, index: index, now: now) }
    }

    /// The next part the packager will produce (the preload hint target).
    var nextPart: (msn: Int, index: Int) { state.withLock { $0.window.nextPart } }

    /// The rendered media playlist (cached per store version). nil until the target duration is
    /// known (the first part with LL-HLS, else the first segment). The text is rendered outside the lock.
    func mediaPlaylist() -> ByteBuffer? {
        let snapshot: (Int, MediaPlaylist)? = state.withLock { state in
            if let cached = state.cachedPlaylist, cached.version == state.version { return nil }
            guard var playlist = state.window.mediaPlaylist(variant: variant, partTargetDuration: configuration.partTargetDuration) else {
                return nil
            }
            // Chapters from the first listed segment on, and the ones still open.
            let firstPDT = playlist.segments.first?.programDateTimeMs ?? .max
            playlist.dateRanges = state.chapters.filter { $0.startMs >= firstPDT || $0.endMs == nil }
            return (state.version, playlist)
        }
        guard let (version, playlist) = snapshot else {
            return state.withLock { state in
                guard let cached = state.cachedPlaylist, cached.version == state.version else { return nil }
                return cached.body
            }
        }
        let body = ByteBuffer(string: playlist.render())
        state.withLock { state in
            if (state.cachedPlaylist?.version ?? -1) < version { state.cachedPlaylist = (version, body) }
        }
        return body
    }

    /// The multivariant playlist (RFC 8216bis §4.4.6.2) with measured BANDWIDTH (cached per version).
    func multivariantPlaylist() -> ByteBuffer? {
        state.withLock { state in
            if let cached = state.cachedMultivariant, cached.version == state.version { return cached.body }
            guard let playlist = state.window.multivariantPlaylist(variant: variant) else { return nil }
            let body = ByteBuffer(string: playlist.render())
            state.cachedMultivariant = (state.version, body)
            return body
        }
    }
}

/// The requests waiting on one store, each for a `SegmentWindow.Condition`, each with a timer that
/// answers it false when its time is up. Lives under the store's lock, beside the window.
struct SegmentWaiters {
    struct Waiter {
        var condition: SegmentWindow.Condition
        var continuation: CheckedContinuation<Bool, Never>
        var timer: Task<Void, Never>?
    }

    private var waiters: [Int: Waiter] = [:]
    private var lastID = 0

    mutating func newID() -> Int {
        lastID += 1
        return lastID
    }

    mutating func add(_ id: Int, condition: SegmentWindow.Condition, continuation: CheckedContinuation<Bool, Never>) {
        waiters[id] = Waiter(condition: condition, continuation: continuation)
    }

    /// Gives the waiter its timer; false when it was answered meanwhile (cancel the timer then).
    mutating func setTimer(_ timer: Task<Void, Never>, for id: Int) -> Bool {
        guard waiters[id] != nil else { return false }
        waiters[id]?.timer = timer
        return true
    }

    mutating func remove(_ id: Int) -> Waiter? { waiters.removeValue(forKey: id) }

    mutating func removeAll() -> [Waiter] {
        defer { waiters.removeAll() }
        return Array(waiters.values)
    }

    /// Removes and returns the waiters whose condition `window` now satisfies.
    mutating func takeSatisfied(by window: SegmentWindow) -> [Waiter] {
        guard !waiters.isEmpty else { return [] }
        var ready: [Waiter] = []
        for (id, waiter) in waiters where window.isSatisfied(waiter.condition) {
            ready.append(waiter)
            waiters.removeValue(forKey: id)
        }
        return ready
    }

    /// Answers waiters taken out from under the lock: their timers stop, their requests go on.
    static func resume(_ taken: [Waiter], satisfied: Bool) {
        for waiter in taken {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: satisfied)
        }
    }
}
