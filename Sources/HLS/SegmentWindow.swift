import NIOCore

/// One room's HLS output as a value: initialization sections, the open segment and its parts, the
/// sliding window of finished segments (RFC 8216bis §6.2.2), the segments that left it but stay
/// downloadable, and the facts the multivariant playlist needs. Pure: no lock, no clock (callers
/// pass `now`), no waiting — `SegmentStore` guards it with a lock and wakes its waiters.
struct SegmentWindow: Sendable {
    struct Part: Sendable {
        var duration: Double
        var independent: Bool
        /// The part's bytes while they are on the heap; a view into its segment's bytes, or empty
        /// once its segment is in a memory file.
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
        /// On the heap, or in an `HLSMemoryFile` (`SegmentStore.closeSegment`).
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
        /// The first segment is complete: a playlist any client can play (plain HLS readers need a
        /// whole segment; LL-HLS parts before it are reached with `.part`).
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

    let windowSegments: Int
    let maxRetiredSegments: Int

    private(set) var targetDuration: Int?
    private(set) var inits: [Int: ByteBuffer] = [:]
    private(set) var currentInit: Int?
    private(set) var segments: [Segment] = []
    private(set) var retired: [(segment: Segment, expires: ContinuousClock.Instant)] = []
    private(set) var open: OpenSegment?
    private(set) var nextMSN = 0
    private(set) var lastCompleteMSN = -1
    /// The media sequence number this window's first segment has: 0, or where another origin's
    /// numbering of the room stopped (`continueNumbering`).
    private(set) var firstMSN = 0
    private(set) var discontinuitySequence = 0
    private var pendingDiscontinuity = false
    private(set) var ended = false
    var info = StreamInfo()

    init(windowSegments: Int, maxRetiredSegments: Int) {
        self.windowSegments = windowSegments
        self.maxRetiredSegments = maxRetiredSegments
    }

    // MARK: Writing (the packager, through the store)

    /// Registers an initialization section; identical bytes reuse the current one (no new EXT-X-MAP).
    mutating func setInitSection(_ bytes: ByteBuffer) {
        if let current = currentInit, inits[current] == bytes { return }
        let index = (inits.keys.max() ?? -1) + 1
        inits[index] = bytes
        currentInit = index
    }

    /// The next segment is preceded by `EXT-X-DISCONTINUITY` (publisher reconnect, codec change).
    mutating func markDiscontinuity() {
        if lastCompleteMSN >= firstMSN || open != nil { pendingDiscontinuity = true }
    }

    /// Where the numbering stands: the next segment's media sequence number, and the discontinuity
    /// sequence number a playlist starting at it would declare (every discontinuity listed so far
    /// counted, RFC 8216bis §4.4.3.3).
    var position: HLSPosition {
        let listed = segments.filter(\.discontinuity).count + (open?.discontinuity == true ? 1 : 0)
        return HLSPosition(nextMediaSequence: open.map { $0.msn + 1 } ?? nextMSN, discontinuitySequence: discontinuitySequence + listed)
    }

    /// Continues the numbering of a room another origin packaged before (issue 20): the first
    /// segment here gets `after.nextMediaSequence` and is preceded by `EXT-X-DISCONTINUITY`
    /// (RFC 8216bis §6.2.2: a client switching origins sees sequence numbers go on). Only a window
    /// that has produced nothing yet can be renumbered; false otherwise.
    mutating func continueNumbering(after: HLSPosition) -> Bool {
        guard open == nil, segments.isEmpty, retired.isEmpty, nextMSN == firstMSN, after.nextMediaSequence > 0 else { return false }
        firstMSN = after.nextMediaSequence
        nextMSN = after.nextMediaSequence
        lastCompleteMSN = after.nextMediaSequence - 1
        discontinuitySequence = max(0, after.discontinuitySequence)
        pendingDiscontinuity = true
        return true
    }

    /// Appends a completed part to the open segment (opening it if needed). A `targetDuration`
    /// given here is the stream's from now on (LL-HLS declares it with the first part, so the parts
    /// can be listed before the first segment ends; it never changes afterwards).
    mutating func addPart(_ bytes: ByteBuffer, duration: Double, independent: Bool, programDateTimeMs: Int64, targetDuration proposed: Int? = nil) {
        if targetDuration == nil { targetDuration = proposed }
        if open == nil { open = openSegment(programDateTimeMs: programDateTimeMs) }
        open!.parts.append(Part(duration: duration, independent: independent, bytes: bytes, length: bytes.readableBytes))
    }

    /// The bytes the open segment's parts hold, in order (what a memory file of the segment copies).
    var openPartBytes: [ByteBuffer] { open?.parts.map(\.bytes) ?? [] }

    /// Completes the open segment, then slides the window. With parts, the segment's bytes are the
    /// parts' bytes (in `file` when given, else joined on the heap); otherwise `bytes`.
    mutating func closeSegment(
        duration: Double, independent: Bool, bytes: ByteBuffer?, file: HLSMemoryFile?, programDateTimeMs: Int64,
        targetDuration proposed: Int?, now: ContinuousClock.Instant
    ) {
        var closing = open ?? openSegment(programDateTimeMs: programDateTimeMs)
        open = nil
        if bytes != nil { closing.parts = [] }
        let body = Self.seal(&closing.parts, bytes: bytes, file: file)
        segments.append(
            Segment(
                msn: closing.msn, duration: duration, independent: independent, parts: closing.parts, body: body,
                byteCount: body.count, initIndex: closing.initIndex, discontinuity: closing.discontinuity,
                programDateTimeMs: closing.programDateTimeMs))
        lastCompleteMSN = closing.msn
        if targetDuration == nil { targetDuration = proposed ?? Int(duration.rounded(.up)) }
        slide(now: now)
        dropExpiredRetired(now: now)
        dropUnreferencedInits()
    }

    /// Segment `msn`, still on the heap, is served from `file` from now on (the same bytes: its
    /// recorded copy on disk, or a memory file made late); its parts become ranges of the file.
    /// False when the segment is gone, already in a file, or `file` does not have its size.
    mutating func adoptFile(_ file: HLSMemoryFile, msn: Int) -> Bool {
        func adopt(_ segment: inout Segment) -> Bool {
            guard case .bytes(let bytes) = segment.body, bytes.readableBytes == file.size else { return false }
            segment.body = .file(file, offset: 0, length: file.size)
            for index in segment.parts.indices { segment.parts[index].bytes = ByteBuffer() }
            return true
        }
        if let index = segments.firstIndex(where: { $0.msn == msn }) { return adopt(&segments[index]) }
        if let index = retired.firstIndex(where: { $0.segment.msn == msn }) { return adopt(&retired[index].segment) }
        return false
    }

    /// `EXT-X-ENDLIST`: every condition now holds.
    mutating func end() {
        ended = true
    }

    /// Lays the parts out in the segment's bytes and returns the segment's body: the memory file,
    /// `bytes` (a segment without parts), or the parts joined on the heap — the parts then become
    /// views into it, so each byte is held once, not twice (measured: ~15 MB per live stream before,
    /// with the window plus retention).
    private static func seal(_ parts: inout [Part], bytes: ByteBuffer?, file: HLSMemoryFile?) -> HLSBody {
        var offset = 0
        for index in parts.indices {
            parts[index].offset = offset
            offset += parts[index].length
        }
        if let file {
            for index in parts.indices { parts[index].bytes = ByteBuffer() }
            return .file(file, offset: 0, length: file.size)
        }
        if let bytes { return .bytes(bytes) }
        var joined = ByteBufferAllocator().buffer(capacity: offset)
        for part in parts { joined.writeImmutableBuffer(part.bytes) }
        for index in parts.indices {
            parts[index].bytes = joined.getSlice(at: joined.readerIndex + parts[index].offset, length: parts[index].length)!
        }
        return .bytes(joined)
    }

    /// The window slides by whole segments; a segment that does not start on a keyframe (one cut
    /// inside a GOP longer than the target duration, `Segmenter`) never opens the window, so a
    /// player that starts at the first listed segment can decode it. RFC 8216 §6.2.2: a removed
    /// segment stays available for its duration plus the playlist's; its parts go with it (RFC
    /// 8216bis §6.2.2 asks ≥ 3 target durations).
    private mutating func slide(now: ContinuousClock.Instant) {
        let windowSeconds = Double(targetDuration ?? 2) * Double(windowSegments)
        var slid = false
        while segments.count > windowSegments || (slid && segments.count > 1 && segments.first?.independent == false) {
            let removed = segments.removeFirst()
            slid = true
            if removed.discontinuity { discontinuitySequence += 1 }
            let keep = min(removed.duration + max(windowSeconds, 3 * Double(targetDuration ?? 2)), 3600)
            retired.append((removed, now + .milliseconds(Int64(keep * 1000))))
        }
    }

    /// Retired segments past their time go; however fast segments come, a room holds a bounded
    /// number of them (`maxRetiredSegments`).
    private mutating func dropExpiredRetired(now: ContinuousClock.Instant) {
        retired.removeAll { $0.expires < now }
        if retired.count > maxRetiredSegments {
            retired.removeFirst(retired.count - maxRetiredSegments)
        }
    }

    /// Initialization sections no listed or retired segment refers to go (the current one stays).
    private mutating func dropUnreferencedInits() {
        let referenced = Set(segments.compactMap(\.initIndex) + retired.compactMap(\.segment.initIndex))
        for key in inits.keys where !referenced.contains(key) && key != currentInit {
            inits.removeValue(forKey: key)
        }
    }

    private mutating func openSegment(programDateTimeMs: Int64) -> OpenSegment {
        let segment = OpenSegment(
            msn: nextMSN, initIndex: currentInit, discontinuity: pendingDiscontinuity, programDateTimeMs: programDateTimeMs)
        nextMSN += 1
        pendingDiscontinuity = false
        return segment
    }

    // MARK: Reading (requests, through the store)

    var lastPart: (msn: Int, index: Int)? {
        if let open, !open.parts.isEmpty { return (open.msn, open.parts.count - 1) }
        if let last = segments.last, !last.parts.isEmpty { return (last.msn, last.parts.count - 1) }
        return nil
    }

    /// The next part the packager will produce (the preload hint target).
    var nextPart: (msn: Int, index: Int) {
        if let open { return (open.msn, open.parts.count) }
        return (nextMSN, 0)
    }

    func isSatisfied(_ condition: Condition) -> Bool {
        if ended { return true }
        switch condition {
        case .ready:
            return lastCompleteMSN >= firstMSN
        case .segment(let msn):
            return lastCompleteMSN >= msn
        case .part(let msn, let index):
            if let last = lastPart, last.msn > msn || (last.msn == msn && last.index >= index) { return true }
            // Segments without parts (plain variants) satisfy part requests for earlier segments.
            return lastCompleteMSN > msn
        }
    }

    /// A listed segment, or a retired one not yet expired.
    func segment(msn: Int, now: ContinuousClock.Instant) -> Segment? {
        if let segment = segments.first(where: { $0.msn == msn }) { return segment }
        return retired.first { $0.segment.msn == msn && $0.expires >= now }?.segment
    }

    func partBody(msn: Int, index: Int, now: ContinuousClock.Instant) -> HLSBody? {
        if let open, open.msn == msn { return open.parts.indices.contains(index) ? .bytes(open.parts[index].bytes) : nil }
        guard let segment = segment(msn: msn, now: now), segment.parts.indices.contains(index) else { return nil }
        let part = segment.parts[index]
        switch segment.body {
        case .bytes: return .bytes(part.bytes)
        case .file(let file, let offset, _): return .file(file, offset: offset + part.offset, length: part.length)
        }
    }

    /// The media playlist of the window (RFC 8216bis §4.4.3, LL-HLS §4.4.4.9 and §4.4.5.3); nil
    /// while the target duration is unknown. With LL-HLS it lists the first parts before the first
    /// segment is complete (no `EXTINF` yet). Every URI is `HLSFileName`'s.
    func mediaPlaylist(variant: HLSVariant, partTargetDuration: Double) -> MediaPlaylist? {
        guard let targetDuration else { return nil }
        let ext = variant.segmentExtension
        let partsListedFrom = (segments.last?.msn ?? 0) - 1
        func mapURI(_ index: Int?) -> String? { variant.usesFragmentedMP4 ? index.map { HLSFileName.initSection($0).description } : nil }
        func parts(_ msn: Int, _ parts: [Part]) -> [MediaPlaylist.Part] {
            parts.enumerated().map { index, part in
                MediaPlaylist.Part(duration: part.duration, uri: HLSFileName.part(msn: msn, index: index).description, independent: part.independent)
            }
        }
        var listed = segments.map { segment in
            MediaPlaylist.Segment(
                duration: segment.duration, uri: HLSFileName.segment(msn: segment.msn, ext: ext).description,
                parts: variant.hasParts && segment.msn >= partsListedFrom ? parts(segment.msn, segment.parts) : [],
                discontinuity: segment.discontinuity, mapURI: mapURI(segment.initIndex),
                programDateTimeMs: segment.programDateTimeMs)
        }
        if variant.hasParts, let open, !open.parts.isEmpty {
            listed.append(
                MediaPlaylist.Segment(
                    duration: nil, uri: HLSFileName.segment(msn: open.msn, ext: ext).description, parts: parts(open.msn, open.parts),
                    discontinuity: open.discontinuity, mapURI: mapURI(open.initIndex),
                    programDateTimeMs: open.programDateTimeMs))
        }
        var hint: String?
        if variant.hasParts && !ended {
            hint = HLSFileName.part(msn: nextPart.msn, index: nextPart.index).description
        }
        return MediaPlaylist(
            version: variant == .mpegts ? 3 : 6,
            targetDuration: targetDuration,
            mediaSequence: segments.first?.msn ?? open?.msn ?? nextMSN,
            discontinuitySequence: discontinuitySequence,
            independentSegments: false,
            serverControl: variant.hasParts
                ? .init(canBlockReload: true, partHoldBack: 3 * partTargetDuration, holdBack: 3 * Double(targetDuration))
                : nil,
            partTarget: variant.hasParts ? partTargetDuration : nil,
            segments: listed,
            preloadHintURI: hint,
            ended: ended)
    }

    /// The multivariant playlist (RFC 8216bis §4.4.6.2) with BANDWIDTH measured over the window;
    /// nil before the first segment is complete (its BANDWIDTH is measured on segments).
    func multivariantPlaylist(variant: HLSVariant) -> MultivariantPlaylist? {
        guard lastCompleteMSN >= firstMSN else { return nil }
        var peak = 0.0
        var totalBits = 0.0
        var totalSeconds = 0.0
        for segment in segments where segment.duration > 0 {
            let bits = Double(segment.byteCount * 8)
            peak = max(peak, bits / segment.duration)
            totalBits += bits
            totalSeconds += segment.duration
        }
        return MultivariantPlaylist(
            version: variant == .mpegts ? 3 : 6,
            independentSegments: false,
            bandwidth: max(1, Int(peak.rounded(.up))),
            averageBandwidth: totalSeconds > 0 ? Int((totalBits / totalSeconds).rounded(.up)) : nil,
            codecs: info.codecs,
            resolution: info.resolution,
            frameRate: info.frameRate,
            uri: HLSFileName.media.description)
    }
}

/// Where a room's HLS numbering stands (`SegmentWindow.position`), for a new origin to go on from
/// (issue 20: the cluster's stream lease carries it).
public struct HLSPosition: Sendable, Hashable {
    public var nextMediaSequence: Int
    public var discontinuitySequence: Int

    public init(nextMediaSequence: Int, discontinuitySequence: Int) {
        self.nextMediaSequence = nextMediaSequence
        self.discontinuitySequence = discontinuitySequence
    }
}
