/// Decides where partial segments and segments end (RFC 8216bis §3, §4.4.3.7). Pure: it sees only
/// the master track's sample times (video if the stream has video, else audio) and answers, before
/// each sample is written, which parts/segments end in front of it. The packager then flushes the
/// muxer once per ended part (one `moof`+`mdat`) and closes the segment.
///
/// Rules (video):
/// - Segments are cut only in front of a keyframe, so every segment starts with one (RFC 8216bis
///   §6.2.2: a client can start at any listed segment), as long as the publisher's keyframe
///   interval (GOP) is at most the target duration. At a keyframe the open segment ends when
///   - it is the stream's first segment (at least `minimumFirstSegmentDuration` long): the first
///     complete segment a plain, non-LL client can play is published when the second keyframe
///     arrives, one GOP after the start;
///   - `targetSegmentDuration` has accumulated (less 10 %, for dts jitter around the keyframe grid);
///   - the next keyframe, expected one GOP later (the last keyframe interval), would make the
///     segment round above `EXT-X-TARGETDURATION` (a 1.5 s GOP gives 1.5 s segments under a 2 s
///     target instead of a forced cut between keyframes);
///   - the segment had to start between keyframes (see below): it ends at the first keyframe, so
///     segments realign with the GOPs.
/// - `EXT-X-TARGETDURATION` never changes (RFC 8216 §4.4.3.1). It is declared up front with
///   parts (`declaredTargetDuration`, the configured target rounded up: an LL-HLS playlist exists
///   from the first part on), otherwise when the first segment ends (the larger of the configured
///   target rounded up and that segment's rounded duration, so a plain stream with a 4 s GOP gets
///   4 s segments and `TARGETDURATION:4`). Bounded behaviour for a GOP longer than that: a segment
///   that would round above it (`EXTINF` ≥ TD + 0.5 s) is cut in front of the sample that would
///   overrun, between keyframes, and the next segment ends at the next keyframe. Such a segment
///   lacks a keyframe at its start; its parts still carry `INDEPENDENT=YES` where keyframes are,
///   and the window never starts on it (`SegmentWindow.slide`). Until TD is known (plain variants,
///   first segment) the bound is `maximumFirstSegmentDuration`.
/// - Parts are cut on time, anywhere: a part ends before the sample that would make it longer than
///   `partTargetDuration` (§4.4.3.7: parts never exceed PART-TARGET); a segment end is also a part
///   end. A part starting with a keyframe is independent (`INDEPENDENT=YES`, §4.4.4.9).
/// Audio-only streams cut segments on time (on a part boundary with parts).
public struct Segmenter: Sendable {
    public struct Configuration: Sendable, Hashable {
        public var targetSegmentDuration: Double
        /// nil: no parts.
        public var partTargetDuration: Double?
        /// true when the master track is video (cut on keyframes); false for audio-only.
        public var cutsOnKeyframes: Bool
        /// Upper bound for the first segment while `EXT-X-TARGETDURATION` is not yet known.
        public var maximumFirstSegmentDuration: Double
        /// The stream's first segment ends at the first keyframe at least this far from its start
        /// (one GOP, unless keyframes come more often than this).
        public var minimumFirstSegmentDuration: Double

        public init(
            targetSegmentDuration: Double, partTargetDuration: Double?, cutsOnKeyframes: Bool,
            maximumFirstSegmentDuration: Double = 10, minimumFirstSegmentDuration: Double? = nil
        ) {
            self.targetSegmentDuration = targetSegmentDuration
            self.partTargetDuration = partTargetDuration
            self.cutsOnKeyframes = cutsOnKeyframes
            self.maximumFirstSegmentDuration = max(maximumFirstSegmentDuration, targetSegmentDuration * 2)
            self.minimumFirstSegmentDuration = minimumFirstSegmentDuration ?? targetSegmentDuration / 4
        }

        /// `EXT-X-TARGETDURATION` when it is declared before the first segment ends (LL-HLS): the
        /// configured target rounded up.
        public var declaredTargetDuration: Int {
            max(1, Int(min(targetSegmentDuration, 86_400).rounded(.up)))
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
    /// `EXT-X-TARGETDURATION`: given at creation (declared up front, LL-HLS), or fixed when the
    /// first segment ends.
    public private(set) var targetDuration: Int?

    private var segmentStart: Int64?
    private var segmentIndependent = false
    private var partStart: Int64 = 0
    private var partIndependent = false
    private var lastEnd: Int64 = 0
    private var segmentsEnded = 0
    /// The master track's last keyframe (this session) and the interval that ended there: the GOP
    /// expected next.
    private var lastKeyframe: Int64?
    private var keyframeInterval: Int64?

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
        if isKeyframe {
            if let lastKeyframe, timeMs > lastKeyframe { keyframeInterval = timeMs - lastKeyframe }
            lastKeyframe = timeMs
        }
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

        // EXTINF rounds to at most EXT-X-TARGETDURATION below this (RFC 8216 §4.4.3.1).
        let roundingLimitMs = Double(targetDuration ?? configuration.declaredTargetDuration) * 1000 + 499
        let limitMs = targetDuration == nil ? configuration.maximumFirstSegmentDuration * 1000 : roundingLimitMs

        var cutSegment = false
        if endIfIncluded > limitMs {
            cutSegment = true
        } else if configuration.cutsOnKeyframes {
            if isKeyframe {
                // A keyframe a little early still ends the segment: the first keyframe's dts sits earlier
                // by the B-frame reorder delay, so dts keyframe spacing is not perfectly regular.
                let tolerance = max(Double(duration) / 2, targetMs / 10)
                let reachedTarget = elapsed >= targetMs - tolerance
                let firstGOP = segmentsEnded == 0 && elapsed >= configuration.minimumFirstSegmentDuration * 1000
                let nextKeyframeTooLate = keyframeInterval.map { elapsed + Double($0) > roundingLimitMs } ?? false
                cutSegment = reachedTarget || firstGOP || nextKeyframeTooLate || !segmentIndependent
            }
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
            segmentEnded(span)
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
        lastKeyframe = nil
        guard let segmentStart else { return [] }
        self.segmentStart = nil
        guard lastEnd > segmentStart else { return [] }
        var events: [Event] = []
        if configuration.partTargetDuration != nil, lastEnd > partStart {
            events.append(.partEnded(Span(startMs: partStart, durationMs: lastEnd - partStart, independent: partIndependent)))
        }
        let span = Span(startMs: segmentStart, durationMs: lastEnd - segmentStart, independent: segmentIndependent)
        events.append(.segmentEnded(span))
        segmentEnded(span)
        return events
    }

    private mutating func open(at time: Int64, keyframe: Bool) {
        segmentStart = time
        segmentIndependent = keyframe
        partStart = time
        partIndependent = keyframe
    }

    private mutating func segmentEnded(_ span: Span) {
        segmentsEnded += 1
        guard targetDuration == nil else { return }
        // Bounded like the configured target (a day), so that no span's length can trap the conversion.
        targetDuration = max(configuration.declaredTargetDuration, Int(min(max(span.duration, 0), 86_400).rounded()))
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
