/// Decides where partial segments and segments end (RFC 8216bis §3, §4.4.3.7). Pure: it sees only
/// the master track's sample times (video if the stream has video, else audio) and answers, before
/// each sample is written, which parts/segments end in front of it. The packager then flushes the
/// muxer once per ended part (one `moof`+`mdat`) and closes the segment.
///
/// Rules:
/// - With video, a segment ends only in front of a keyframe once `targetSegmentDuration` has
///   accumulated (less 10 %, for dts jitter around the keyframe grid), or at the first keyframe
///   of a segment that was cut without one. Audio-only streams cut on time.
/// - `EXT-X-TARGETDURATION` is fixed when the first segment ends (the larger of the configured
///   target rounded up and the first segment's rounded duration) and never changes (§4.4.3.1).
///   From then on a segment that would round above it is cut even without a keyframe.
/// - With `endsFirstSegmentWithItsFirstPart` (LL-HLS) the first segment is one part long, so a
///   playlist any client can play (one with a complete segment, not only parts, which ffmpeg and
///   other non-LL readers cannot use) exists ~0.5 s after publish start instead of after a whole
///   GOP; TARGETDURATION is then the configured target. The second segment starts between
///   keyframes and ends at the next keyframe, so by the third segment the grid is the GOP grid.
///   A publisher whose keyframe interval exceeds the target gets segments cut between keyframes
///   too (its parts still carry `INDEPENDENT=YES` where keyframes are).
/// - A part ends before the sample that would make it longer than `partTargetDuration`
///   (§4.4.3.7: parts never exceed PART-TARGET); a segment end is also a part end. A part
///   starting with a keyframe is independent (`INDEPENDENT=YES`).
public struct Segmenter: Sendable {
    public struct Configuration: Sendable, Hashable {
        public var targetSegmentDuration: Double
        /// nil: no parts.
        public var partTargetDuration: Double?
        /// true when the master track is video (cut on keyframes); false for audio-only.
        public var cutsOnKeyframes: Bool
        /// Upper bound for the first segment when keyframes never come.
        public var maximumFirstSegmentDuration: Double
        /// End the first segment where its first part ends.
        public var endsFirstSegmentWithItsFirstPart: Bool

        public init(
            targetSegmentDuration: Double, partTargetDuration: Double?, cutsOnKeyframes: Bool,
            maximumFirstSegmentDuration: Double = 10, endsFirstSegmentWithItsFirstPart: Bool = false
        ) {
            self.targetSegmentDuration = targetSegmentDuration
            self.partTargetDuration = partTargetDuration
            self.cutsOnKeyframes = cutsOnKeyframes
            self.maximumFirstSegmentDuration = max(maximumFirstSegmentDuration, targetSegmentDuration * 2)
            self.endsFirstSegmentWithItsFirstPart = endsFirstSegmentWithItsFirstPart
        }
    }

    /// A finished partial segment or segment, in master-track milliseconds.
    public struct Span: Sendable, Hashable {
        public var startMs: Int64
        public var durationMs: Int64
        /// Starts with a keyframe.
        public var independent: Bool
        public var duration: Double { Double(durationMs) / 1000 }
    }

    public enum Event: Sendable, Hashable {
        case partEnded(Span)
        case segmentEnded(Span)
    }

    public var configuration: Configuration
    /// `EXT-X-TARGETDURATION`, known once the first segment has ended.
    public private(set) var targetDuration: Int?

    private var segmentStart: Int64?
    private var segmentIndependent = false
    private var partStart: Int64 = 0
    private var partIndependent = false
    private var lastEnd: Int64 = 0

    public init(configuration: Configuration, targetDuration: Int? = nil) {
        self.configuration = configuration
        self.targetDuration = targetDuration
    }

    /// True between the first sample after `finish()` (or creation) and the next `finish()`.
    public var isSegmentOpen: Bool { segmentStart != nil }

    /// Call before writing each master-track sample: `timeMs` its decode time, `durationMs` the
    /// time to the next sample. Returns what ends in front of it (parts first, then the segment).
    public mutating func willWrite(timeMs: Int64, durationMs: Int64, isKeyframe: Bool) -> [Event] {
        let duration = max(0, durationMs)
        guard let segmentStart else {
            open(at: timeMs, keyframe: isKeyframe)
            lastEnd = timeMs + duration
            return []
        }
        defer { lastEnd = max(lastEnd, timeMs + duration) }
        let elapsed = Double(timeMs - segmentStart)
        guard elapsed > 0 else { return [] }
        let targetMs = configuration.targetSegmentDuration * 1000
        let endIfIncluded = Double(timeMs + duration - segmentStart)
        let partTargetMs = configuration.partTargetDuration.map { $0 * 1000 }
        let partDue = partTargetMs.map { Double(timeMs + duration - partStart) > $0 && timeMs > partStart } ?? false

        let limitMs: Double
        if let targetDuration {
            limitMs = (Double(targetDuration) + 0.5) * 1000 - 1
        } else {
            limitMs = configuration.maximumFirstSegmentDuration * 1000
        }

        var cutSegment = false
        if targetDuration == nil && configuration.endsFirstSegmentWithItsFirstPart && partDue {
            cutSegment = true
        } else if endIfIncluded > limitMs {
            cutSegment = true
        } else if configuration.cutsOnKeyframes {
            // A keyframe a little early still ends the segment: the first keyframe's dts sits earlier
            // by the B-frame reorder delay, so dts keyframe spacing is not perfectly regular.
            // A segment that had to start between keyframes (a GOP longer than the fixed target)
            // ends at the next keyframe, so segments realign with the GOPs.
            let tolerance = max(Double(duration) / 2, targetMs / 10)
            cutSegment = isKeyframe && (elapsed >= targetMs - tolerance || !segmentIndependent)
        } else if let partTargetMs {
            cutSegment = partDue && elapsed + partTargetMs / 2 >= targetMs
        } else {
            cutSegment = endIfIncluded > targetMs
        }

        if cutSegment {
            var events: [Event] = []
            if configuration.partTargetDuration != nil {
                events.append(.partEnded(Span(startMs: partStart, durationMs: timeMs - partStart, independent: partIndependent)))
            }
            let span = Span(startMs: segmentStart, durationMs: timeMs - segmentStart, independent: segmentIndependent)
            events.append(.segmentEnded(span))
            fixTargetDuration(afterSegmentOf: span.duration)
            open(at: timeMs, keyframe: isKeyframe)
            return events
        }
        if partDue {
            let span = Span(startMs: partStart, durationMs: timeMs - partStart, independent: partIndependent)
            partStart = timeMs
            partIndependent = isKeyframe
            return [.partEnded(span)]
        }
        return []
    }

    /// Ends the open part and segment at the end of the last sample (publisher gone, stream ended).
    public mutating func finish() -> [Event] {
        guard let segmentStart else { return [] }
        self.segmentStart = nil
        guard lastEnd > segmentStart else { return [] }
        var events: [Event] = []
        if configuration.partTargetDuration != nil, lastEnd > partStart {
            events.append(.partEnded(Span(startMs: partStart, durationMs: lastEnd - partStart, independent: partIndependent)))
        }
        let span = Span(startMs: segmentStart, durationMs: lastEnd - segmentStart, independent: segmentIndependent)
        events.append(.segmentEnded(span))
        fixTargetDuration(afterSegmentOf: span.duration)
        return events
    }

    private mutating func open(at time: Int64, keyframe: Bool) {
        segmentStart = time
        segmentIndependent = keyframe
        partStart = time
        partIndependent = keyframe
    }

    private mutating func fixTargetDuration(afterSegmentOf seconds: Double) {
        guard targetDuration == nil else { return }
        let configured = Int(configuration.targetSegmentDuration.rounded(.up))
        targetDuration = max(1, configured, Int(seconds.rounded()))
    }
}

/// Maps one track's incoming millisecond timestamps onto the packager's output timeline: starts at
/// `base` (0 for the first session), strictly increasing decode times, forward gaps above
/// `maximumGapMs` and backward jumps squashed to one typical sample duration (an encoder restart or
/// clock jump must not stall the playlist).
/// Timestamps arrive already unwrapped to 64 bits (PROTOCOLS.md §1), so values near or beyond 2^32
/// need nothing special here.
public struct TrackTimeline: Sendable {
    public var maximumGapMs: Int64
    private var offset: Int64?
    private var lastOutput: Int64 = 0
    public private(set) var typicalDeltaMs: Int64

    /// - Parameters:
    ///   - origin: the input time that maps to `base` (a session-wide origin keeps the tracks in
    ///     sync); nil: the track's first sample.
    ///   - base: the output time of `origin` (where the previous session's timeline ended).
    public init(defaultDeltaMs: Int64, origin: Int64? = nil, base: Int64 = 0, maximumGapMs: Int64 = 5000) {
        self.typicalDeltaMs = max(1, defaultDeltaMs)
        self.maximumGapMs = maximumGapMs
        self.origin = origin
        self.base = max(0, base)
    }

    private let origin: Int64?
    private let base: Int64

    /// Output (dts, pts) for an input sample.
    public mutating func map(dts: Int64, pts: Int64) -> (dts: Int64, pts: Int64) {
        let compositionOffset = pts - dts
        guard let currentOffset = offset else {
            let first = base + max(0, dts - (origin ?? dts))
            offset = first - dts
            lastOutput = first
            return (first, first + compositionOffset)
        }
        var output = dts &+ currentOffset
        let delta = output - lastOutput
        if delta > maximumGapMs || delta < -1000 {
            output = lastOutput + typicalDeltaMs
            offset = output - dts
        } else if delta <= 0 {
            output = lastOutput + 1
        } else if delta <= 1000 {
            typicalDeltaMs = delta
        }
        lastOutput = output
        return (output, output + compositionOffset)
    }
}
