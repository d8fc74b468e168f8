import NIOCore
import Synchronization

/// One room's HLS output in RAM: initialization sections, the sliding window of segments with their
/// parts, recently removed files that stay downloadable, the thumbnail, and the requests waiting for
/// something to appear (blocking playlist reload, RFC 8216bis §6.2.5.2; preload-hinted parts,
/// §4.4.5.3). Written by one packager task, read by any number of HTTP requests.
final class SegmentStore: Sendable {
    struct Part: Sendable {
        var duration: Double
        var independent: Bool
        /// The part's bytes while they are on the heap; empty once its segment is in a memory file.
        var bytes: ByteBuffer
        /// Where the part lies in its finished segment's bytes.
        var offset = 0
        var length: Int
    }

    struct Segment: Sendable {
        var msn: Int
        var duration: Double
        var independent: Bool
        var parts: [Part]
        /// On the heap until `closeSegment` has moved it into an `HLSMemoryFile`.
        var body: HLSBody
        var byteCount: Int
        var initIndex: Int?
        var discontinuity: Bool
        var programDateTimeMs: Int64
    }

    struct OpenSegment: Sendable {
        var msn: Int
        var parts: [Part] = []
        var initIndex: Int?
        var discontinuity: Bool
        var programDateTimeMs: Int64
    }

    /// What a waiting request needs before it can be answered.
    enum Condition: Sendable, Hashable {
        /// The first segment exists (the target duration is known).
        case ready
        /// `_HLS_msn=M`: segment M is complete.
        case segment(Int)
        /// `_HLS_msn=M&_HLS_part=N`, or a request for part (M, N): that part is complete (an index past
        /// the end of M is satisfied by a later segment's first part).
        case part(Int, Int)
    }

    /// Stream facts for the multivariant playlist.
    struct StreamInfo: Sendable, Hashable {
        var codecs: [String] = []
        var resolution: VideoDimensions?
        var frameRate: Double?
        var hasVideo = false
    }

    fileprivate struct Waiter {
        var condition: Condition
        var continuation: CheckedContinuation<Bool, Never>
        var timer: Task<Void, Never>?
    }

    struct State {
        var targetDuration: Int?
        var inits: [Int: ByteBuffer] = [:]
        var currentInit: Int?
        var segments: [Segment] = []
        var retired: [(segment: Segment, expires: ContinuousClock.Instant)] = []
        var open: OpenSegment?
        var nextMSN = 0
        var lastCompleteMSN = -1
        var discontinuitySequence = 0
        var pendingDiscontinuity = false
        var ended = false
        var endedAt: ContinuousClock.Instant?
        var version = 0
        var cachedPlaylist: (version: Int, body: ByteBuffer)?
        var cachedMultivariant: (version: Int, body: ByteBuffer)?
        var info = StreamInfo()
        fileprivate var waiters: [Int: Waiter] = [:]
        var nextWaiterID = 0

        var lastPart: (msn: Int, index: Int)? {
            if let open, !open.parts.isEmpty { return (open.msn, open.parts.count - 1) }
            if let last = segments.last, !last.parts.isEmpty { return (last.msn, last.parts.count - 1) }
            return nil
        }

        func isSatisfied(_ condition: Condition) -> Bool {
            if ended { return true }
            switch condition {
            case .ready:
                return targetDuration != nil
            case .segment(let msn):
                return lastCompleteMSN >= msn
            case .part(let msn, let index):
                if let last = lastPart, last.msn > msn || (last.msn == msn && last.index >= index) { return true }
                // Segments without parts (plain variants) satisfy part requests for earlier segments.
                return lastCompleteMSN > msn
            }
        }
    }

    let variant: HLSVariant
    let configuration: HLSConfiguration
    /// `thumbnail.jpg`, made on request from the latest keyframe.
    let thumbnails: Thumbnailer
    private let state = Mutex(State())

    init(configuration: HLSConfiguration) {
        self.configuration = configuration
        self.variant = configuration.variant
        self.thumbnails = Thumbnailer(width: configuration.thumbnailWidth, maxAge: configuration.thumbnailInterval)
    }

    // MARK: Packager side

    /// Registers an initialization section; identical bytes reuse the current one (no new EXT-X-MAP).
    func setInitSection(_ bytes: ByteBuffer) {
        mutate { state in
            if let current = state.currentInit, state.inits[current] == bytes { return }
            let index = (state.inits.keys.max() ?? -1) + 1
            state.inits[index] = bytes
            state.currentInit = index
        }
    }

    /// The next segment is preceded by `EXT-X-DISCONTINUITY` (publisher reconnect, codec change).
    func markDiscontinuity() {
        mutate { state in
            if state.lastCompleteMSN >= 0 || state.open != nil { state.pendingDiscontinuity = true }
        }
    }

    func setStreamInfo(_ info: StreamInfo) {
        mutate { $0.info = info }
    }

    /// Appends a completed part to the open segment (opening it if needed).
    func addPart(_ bytes: ByteBuffer, duration: Double, independent: Bool, programDateTimeMs: Int64) {
        mutate { state in
            if state.open == nil { state.open = Self.openSegment(&state, programDateTimeMs: programDateTimeMs) }
            state.open!.parts.append(Part(duration: duration, independent: independent, bytes: bytes, length: bytes.readableBytes))
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
        var file: HLSMemoryFile?
        if configuration.segmentsInMemoryFiles {
            let pieces = bytes.map { [$0] } ?? state.withLock { $0.open?.parts.map(\.bytes) ?? [] }
            file = HLSMemoryFile.make(copying: pieces)
        }
        mutate { state in
            var open = state.open ?? Self.openSegment(&state, programDateTimeMs: programDateTimeMs)
            state.open = nil
            if bytes != nil { open.parts = [] }
            var offset = 0
            for index in open.parts.indices {
                open.parts[index].offset = offset
                offset += open.parts[index].length
            }
            let body: HLSBody
            if let file {
                body = .file(file, offset: 0, length: file.size)
                for index in open.parts.indices { open.parts[index].bytes = ByteBuffer() }
            } else if let bytes {
                body = .bytes(bytes)
            } else {
                var joined = ByteBufferAllocator().buffer(capacity: offset)
                for part in open.parts { joined.writeImmutableBuffer(part.bytes) }
                // The parts become views into the segment's storage: each byte is held once, not
                // twice (measured: ~15 MB per live stream before, with the window plus retention).
                for index in open.parts.indices {
                    open.parts[index].bytes = joined.getSlice(at: joined.readerIndex + open.parts[index].offset, length: open.parts[index].length)!
                }
                body = .bytes(joined)
            }
            let segment = Segment(
                msn: open.msn, duration: duration, independent: independent, parts: open.parts, body: body,
                byteCount: body.count, initIndex: open.initIndex, discontinuity: open.discontinuity,
                programDateTimeMs: open.programDateTimeMs)
            state.segments.append(segment)
            state.lastCompleteMSN = open.msn
            if state.targetDuration == nil { state.targetDuration = targetDuration ?? Int(duration.rounded(.up)) }
            let now = ContinuousClock.now
            let windowSeconds = Double(state.targetDuration ?? 2) * Double(configuration.windowSegments)
            // The window slides by whole segments; a segment that does not start on a keyframe (the
            // second one with LL-HLS, or one cut inside a GOP longer than the target) never opens
            // the window, so a player that starts at the first listed segment can decode it.
            var slid = false
            while state.segments.count > configuration.windowSegments
                || (slid && state.segments.count > 1 && state.segments.first?.independent == false)
            {
                let removed = state.segments.removeFirst()
                slid = true
                if removed.discontinuity { state.discontinuitySequence += 1 }
                // RFC 8216 §6.2.2: keep a removed segment available for its duration plus the
                // playlist's duration; parts go with it (RFC 8216bis §6.2.2 asks ≥ 3 target durations).
                let keep = min(removed.duration + max(windowSeconds, 3 * Double(state.targetDuration ?? 2)), 3600)
                state.retired.append((removed, now + .milliseconds(Int64(keep * 1000))))
            }
            state.retired.removeAll { $0.expires < now }
            // However fast segments come, a room holds a bounded number of them.
            if state.retired.count > configuration.maxRetiredSegments {
                state.retired.removeFirst(state.retired.count - configuration.maxRetiredSegments)
            }
            let referenced = Set(state.segments.compactMap(\.initIndex) + state.retired.compactMap(\.segment.initIndex))
            for key in state.inits.keys where !referenced.contains(key) && key != state.currentInit {
                state.inits.removeValue(forKey: key)
            }
        }
    }

    /// `EXT-X-ENDLIST`: wakes every waiting request.
    func end() {
        mutate { state in
            state.ended = true
            state.endedAt = .now
        }
    }

    private static func openSegment(_ state: inout State, programDateTimeMs: Int64) -> OpenSegment {
        let open = OpenSegment(
            msn: state.nextMSN, initIndex: state.currentInit, discontinuity: state.pendingDiscontinuity,
            programDateTimeMs: programDateTimeMs)
        state.nextMSN += 1
        state.pendingDiscontinuity = false
        return open
    }

    private func mutate(_ body: (inout State) -> Void) {
        let ready: [CheckedContinuation<Bool, Never>] = state.withLock { state in
            body(&state)
            state.version += 1
            var ready: [CheckedContinuation<Bool, Never>] = []
            for (id, waiter) in state.waiters where state.isSatisfied(waiter.condition) {
                ready.append(waiter.continuation)
                waiter.timer?.cancel()
                state.waiters.removeValue(forKey: id)
            }
            return ready
        }
        for continuation in ready { continuation.resume(returning: true) }
    }

    // MARK: Request side

    var isEnded: Bool { state.withLock { $0.ended } }
    var targetDuration: Int? { state.withLock { $0.targetDuration } }
    var lastCompleteMSN: Int { state.withLock { $0.lastCompleteMSN } }

    func isSatisfied(_ condition: Condition) -> Bool { state.withLock { $0.isSatisfied(condition) } }

    /// Waits until `condition` holds (true) or `timeout` passes (false). Cancellation answers false.
    func wait(for condition: Condition, timeout: Duration) async -> Bool {
        let id: Int = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let satisfied = state.withLock { state -> Bool in
                    if state.isSatisfied(condition) { return true }
                    state.waiters[id] = Waiter(condition: condition, continuation: continuation)
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
                let resolved = state.withLock { state -> Bool in
                    guard state.waiters[id] != nil else { return true }
                    state.waiters[id]?.timer = timer
                    return false
                }
                if resolved { timer.cancel() }
            }
        } onCancel: {
            self.expireWaiter(id)
        }
    }

    private func expireWaiter(_ id: Int) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter?.timer?.cancel()
        waiter?.continuation.resume(returning: false)
    }

    /// Fails every waiting request (shutdown).
    func cancelWaiters() {
        let all = state.withLock { state -> [Waiter] in
            let all = Array(state.waiters.values)
            state.waiters.removeAll()
            return all
        }
        for waiter in all {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: false)
        }
    }

    func initSection(_ index: Int) -> ByteBuffer? { state.withLock { $0.inits[index] } }

    func segmentBody(msn: Int) -> HLSBody? {
        state.withLock { state in
            if let segment = state.segments.first(where: { $0.msn == msn }) { return segment.body }
            let now = ContinuousClock.now
            return state.retired.first { $0.segment.msn == msn && $0.expires >= now }?.segment.body
        }
    }

    /// The segment's bytes on the heap (a copy when it is in a memory file).
    func segmentBytes(msn: Int) -> ByteBuffer? { segmentBody(msn: msn)?.bytes }

    func partBody(msn: Int, index: Int) -> HLSBody? {
        func body(_ segment: Segment) -> HLSBody? {
            guard segment.parts.indices.contains(index) else { return nil }
            let part = segment.parts[index]
            switch segment.body {
            case .bytes: return .bytes(part.bytes)
            case .file(let file, let offset, _): return .file(file, offset: offset + part.offset, length: part.length)
            }
        }
        return state.withLock { state in
            if let open = state.open, open.msn == msn { return open.parts.indices.contains(index) ? .bytes(open.parts[index].bytes) : nil }
            if let segment = state.segments.first(where: { $0.msn == msn }) { return body(segment) }
            let now = ContinuousClock.now
            if let retired = state.retired.first(where: { $0.segment.msn == msn && $0.expires >= now }) {
                return body(retired.segment)
            }
            return nil
        }
    }

    /// The next part the packager will produce (the preload hint target).
    var nextPart: (msn: Int, index: Int) {
        state.withLock { state in
            if let open = state.open { return (open.msn, open.parts.count) }
            return (state.nextMSN, 0)
        }
    }


    /// The rendered media playlist (cached per store version). nil before the first segment.
    func mediaPlaylist() -> ByteBuffer? {
        let snapshot: (Int, MediaPlaylist)? = state.withLock { state in
            if let cached = state.cachedPlaylist, cached.version == state.version { return nil }
            guard let playlist = Self.makeMediaPlaylist(state, variant: variant, configuration: configuration) else {
                return nil
            }
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

    /// The multivariant playlist (RFC 8216bis §4.4.6.2) with measured BANDWIDTH.
    func multivariantPlaylist() -> ByteBuffer? {
        state.withLock { state in
            if let cached = state.cachedMultivariant, cached.version == state.version { return cached.body }
            guard state.targetDuration != nil else { return nil }
            var peak = 0.0
            var totalBits = 0.0
            var totalSeconds = 0.0
            for segment in state.segments where segment.duration > 0 {
                let bits = Double(segment.byteCount * 8)
                peak = max(peak, bits / segment.duration)
                totalBits += bits
                totalSeconds += segment.duration
            }
            let playlist = MultivariantPlaylist(
                version: variant == .mpegts ? 3 : 6,
                independentSegments: false,
                bandwidth: max(1, Int(peak.rounded(.up))),
                averageBandwidth: totalSeconds > 0 ? Int((totalBits / totalSeconds).rounded(.up)) : nil,
                codecs: state.info.codecs,
                resolution: state.info.resolution,
                frameRate: state.info.frameRate,
                uri: HLSFileName.media.description)
            let body = ByteBuffer(string: playlist.render())
            state.cachedMultivariant = (state.version, body)
            return body
        }
    }

    static func makeMediaPlaylist(_ state: State, variant: HLSVariant, configuration: HLSConfiguration) -> MediaPlaylist? {
        guard let targetDuration = state.targetDuration else { return nil }
        let ext = variant.segmentExtension
        let partsListedFrom = (state.segments.last?.msn ?? 0) - 1
        func mapURI(_ index: Int?) -> String? { variant.usesFragmentedMP4 ? index.map { HLSFileName.initSection($0).description } : nil }
        func parts(_ msn: Int, _ parts: [Part]) -> [MediaPlaylist.Part] {
            parts.enumerated().map { index, part in
                MediaPlaylist.Part(duration: part.duration, uri: HLSFileName.part(msn: msn, index: index).description, independent: part.independent)
            }
        }
        var segments = state.segments.map { segment in
            MediaPlaylist.Segment(
                duration: segment.duration, uri: HLSFileName.segment(msn: segment.msn, ext: ext).description,
                parts: variant.hasParts && segment.msn >= partsListedFrom ? parts(segment.msn, segment.parts) : [],
                discontinuity: segment.discontinuity, mapURI: mapURI(segment.initIndex),
                programDateTimeMs: segment.programDateTimeMs)
        }
        if variant.hasParts, let open = state.open, !open.parts.isEmpty {
            segments.append(
                MediaPlaylist.Segment(
                    duration: nil, uri: HLSFileName.segment(msn: open.msn, ext: ext).description, parts: parts(open.msn, open.parts),
                    discontinuity: open.discontinuity, mapURI: mapURI(open.initIndex),
                    programDateTimeMs: open.programDateTimeMs))
        }
        var hint: String?
        if variant.hasParts && !state.ended {
            let next = state.open.map { ($0.msn, $0.parts.count) } ?? (state.nextMSN, 0)
            hint = HLSFileName.part(msn: next.0, index: next.1).description
        }
        let mediaSequence = state.segments.first?.msn ?? state.open?.msn ?? state.nextMSN
        return MediaPlaylist(
            version: variant == .mpegts ? 3 : 6,
            targetDuration: targetDuration,
            mediaSequence: mediaSequence,
            discontinuitySequence: state.discontinuitySequence,
            independentSegments: false,
            serverControl: variant.hasParts
                ? .init(
                    canBlockReload: true, partHoldBack: 3 * configuration.partTargetDuration,
                    holdBack: 3 * Double(targetDuration))
                : nil,
            partTarget: variant.hasParts ? configuration.partTargetDuration : nil,
            segments: segments,
            preloadHintURI: hint,
            ended: state.ended)
    }
}
