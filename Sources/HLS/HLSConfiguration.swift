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
    /// Segments are cut at the first video keyframe once this much media has accumulated
    /// (audio-only: cut on time). `EXT-X-TARGETDURATION` is fixed when the first segment closes
    /// and never changes afterwards (RFC 8216bis §4.4.3.1).
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
        segmentsInMemoryFiles: Bool = true
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
    }
}
