/// Which HLS flavour the packager produces.
public enum HLSVariant: String, Sendable, Hashable, CaseIterable {
    /// fMP4/CMAF segments with ~0.5 s parts, preload hints and blocking playlist reload
    /// (RFC 8216bis §4.4.3.7 EXT-X-PART, §4.4.5.3 EXT-X-PRELOAD-HINT, §6.2.5.2 blocking reload).
    case fmp4LowLatency
    /// fMP4/CMAF segments, no parts (RFC 8216bis §3.1.2 Fragmented MPEG-4).
    case fmp4
    /// MPEG-2 transport stream segments, no parts (RFC 8216bis §3.1.1). H.264/HEVC + AAC only.
    case mpegts

    var usesFragmentedMP4: Bool { self != .mpegts }
    var hasParts: Bool { self == .fmp4LowLatency }
    var segmentExtension: String { self == .mpegts ? "ts" : "m4s" }
}

/// Packaging parameters (DESIGN.md defaults: ~2 s segments cut on keyframes, ~0.5 s parts,
/// a 6-segment window).
public struct HLSConfiguration: Sendable {
    public var variant: HLSVariant
    /// Segments are cut only at video keyframes, at the first one once this much media has
    /// accumulated; the first segment is the first GOP (audio-only: cut on time; `Segmenter`).
    /// `EXT-X-TARGETDURATION` is this rounded up with LL-HLS (declared with the first part), or
    /// fixed when the first segment closes, and never changes afterwards (RFC 8216bis §4.4.3.1).
    public var targetSegmentDuration: Double
    /// `EXT-X-PART-INF:PART-TARGET` (RFC 8216bis §4.4.3.7); parts never exceed it.
    public var partTargetDuration: Double
    /// Number of complete segments listed in the live playlist (older ones are freed).
    public var windowSegments: Int
    /// How long the final window stays downloadable after `EXT-X-ENDLIST`.
    public var retainAfterEnd: Duration
    /// The oldest `thumbnail.jpg` served while a newer keyframe exists (it is made on request).
    public var thumbnailInterval: Duration
    /// Width of `thumbnail.jpg` in pixels (height keeps the aspect ratio).
    public var thumbnailWidth: Int
    /// A blocked playlist request gives up (503) after this many target durations
    /// (RFC 8216bis §6.2.5.2: "three times the Target Duration").
    public var blockingReloadTimeoutMultiplier: Double
    /// How long the packager waits (in media time) for missing sequence headers before it starts
    /// muxing with the tracks it has.
    public var trackDiscoveryTimeoutMilliseconds: Int64
    /// Finished segments move from the heap into sealed in-memory files (`HLSMemoryFile`), which
    /// the server sends with `sendfile(2)`. Off, or where memfds are unavailable: they stay on the heap.
    public var segmentsInMemoryFiles: Bool
    /// Payload bytes one segment may hold; more refuses the publisher (its segment is closed and
    /// the ingest disconnects it). Default 48 MiB: a 2.5 s segment at ~150 Mbit/s.
    public var maxSegmentBytes: Int
    /// Segments that may end within ten seconds of wall-clock time; more refuses the publisher.
    /// Segments are cut on media time, so a publisher whose timestamps jump by a segment per frame
    /// would otherwise make a memory file per frame. Default 50 (ten times real time at 2 s).
    public var maxSegmentsPerTenSeconds: Int
    /// Payload bytes held while waiting for the tracks' sequence headers (oldest dropped first).
    /// Default 32 MiB.
    public var trackDiscoveryBufferBytes: Int

    /// Segments kept after they left the live window (still downloadable for players that are
    /// behind, RFC 8216 §6.2.2): at most twice the window plus four, the oldest dropped first.
    /// With the open segment a room holds at most `3 × windowSegments + 5` segments.
    public var maxRetiredSegments: Int { 2 * windowSegments + 4 }

    public init(
        variant: HLSVariant = .fmp4LowLatency,
        targetSegmentDuration: Double = 2,
        partTargetDuration: Double = 0.5,
        windowSegments: Int = 6,
        retainAfterEnd: Duration = .seconds(300),
        thumbnailInterval: Duration = .seconds(10),
        thumbnailWidth: Int = 480,
        blockingReloadTimeoutMultiplier: Double = 3,
        trackDiscoveryTimeoutMilliseconds: Int64 = 1000,
        segmentsInMemoryFiles: Bool = true,
        maxSegmentBytes: Int = 48 << 20,
        maxSegmentsPerTenSeconds: Int = 50,
        trackDiscoveryBufferBytes: Int = 32 << 20
    ) {
        self.variant = variant
        self.targetSegmentDuration = max(0.1, targetSegmentDuration)
        self.partTargetDuration = max(0.05, partTargetDuration)
        self.windowSegments = max(1, windowSegments)
        self.retainAfterEnd = retainAfterEnd
        self.thumbnailInterval = thumbnailInterval
        self.thumbnailWidth = thumbnailWidth
        self.blockingReloadTimeoutMultiplier = blockingReloadTimeoutMultiplier
        self.trackDiscoveryTimeoutMilliseconds = trackDiscoveryTimeoutMilliseconds
        self.segmentsInMemoryFiles = segmentsInMemoryFiles
        self.maxSegmentBytes = max(1, maxSegmentBytes)
        self.maxSegmentsPerTenSeconds = max(1, maxSegmentsPerTenSeconds)
        self.trackDiscoveryBufferBytes = max(1, trackDiscoveryBufferBytes)
    }
}
