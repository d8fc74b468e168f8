import NIOCore
import Testing

@testable import HLS

/// Feeds synthetic master-track samples and collects what the segmenter decides.
struct SegmenterHarness {
    var segmenter: Segmenter
    var parts: [Segmenter.Span] = []
    var segments: [Segmenter.Span] = []

    /// `declared`: EXT-X-TARGETDURATION declared up front, as the packager does for LL-HLS.
    init(target: Double = 2, part: Double? = 0.5, video: Bool = true, declared: Bool = false, minimumFirst: Double? = nil) {
        let configuration = Segmenter.Configuration(
            targetSegmentDuration: target, partTargetDuration: part, cutsOnKeyframes: video, minimumFirstSegmentDuration: minimumFirst)
        segmenter = Segmenter(configuration: configuration, targetDuration: declared ? configuration.declaredTargetDuration : nil)
    }

    mutating func feed(times: [Int64], keyframe: (Int, Int64) -> Bool) {
        for (index, time) in times.enumerated() {
            let next = index + 1 < times.count ? times[index + 1] : time + (index > 0 ? time - times[index - 1] : 33)
            record(segmenter.willWrite(timeMs: time, durationMs: next - time, isKeyframe: keyframe(index, time)))
        }
    }

    mutating func finish() { record(segmenter.finish()) }

    private mutating func record(_ events: [Segmenter.Event]) {
        for event in events {
            switch event {
            case .partEnded(let span): parts.append(span)
            case .segmentEnded(let span): segments.append(span)
            }
        }
    }
}

/// Frame times in ms for `seconds` of video at `fps`, starting at `start`.
func videoTimes(fps: Double, seconds: Double, start: Int64 = 0) -> [Int64] {
    (0..<Int(fps * seconds)).map { start + Int64((Double($0) * 1000 / fps).rounded()) }
}

@Suite struct SegmenterTests {
    /// Keyframe times of the spans' starts are on the GOP grid: every segment starts with a keyframe.
    func expectKeyframeAligned(_ segments: [Segmenter.Span], gopMs: Int64, start: Int64 = 0) {
        for segment in segments {
            #expect(segment.independent, "segment at \(segment.startMs) does not start with a keyframe")
            #expect(abs((segment.startMs - start) - ((segment.startMs - start + gopMs / 2) / gopMs) * gopMs) <= 1)
        }
    }

    @Test(arguments: [1.0, 2.0], [false, true])
    func gopsOfAtMostTheTargetGiveSegmentsStartingWithAKeyframe(gop: Double, declared: Bool) {
        var harness = SegmenterHarness(declared: declared)
        let framesPerGop = Int(30 * gop)
        harness.feed(times: videoTimes(fps: 30, seconds: 10)) { index, _ in index % framesPerGop == 0 }
        // The first segment is the first GOP (published when the second keyframe arrives), then 2 s.
        let expectedStarts: [Int64] = gop == 1 ? [0, 1000, 3000, 5000, 7000] : [0, 2000, 4000, 6000]
        #expect(harness.segments.map(\.startMs) == expectedStarts)
        #expect(harness.segments.dropFirst().allSatisfy { abs($0.durationMs - 2000) <= 1 })
        #expect(abs(harness.segments[0].durationMs - Int64(gop * 1000)) <= 1)
        expectKeyframeAligned(harness.segments, gopMs: Int64(gop * 1000))
        #expect(harness.segmenter.targetDuration == 2)
        for part in harness.parts {
            #expect(part.durationMs <= 500)
            #expect(part.durationMs >= 425)  // RFC 8216bis §4.4.4.9: at least 85% of PART-TARGET
        }
        // Parts are cut on time; exactly those that start on a keyframe are independent.
        #expect(harness.parts.filter(\.independent).map(\.startMs) == stride(from: 0, to: 10_000, by: Int(gop * 1000)).map { Int64($0) })
    }

    @Test func aOneSecondGopUnderAOneSecondTargetGivesOneSecondSegments() {
        var harness = SegmenterHarness(target: 1, declared: true)
        harness.feed(times: videoTimes(fps: 30, seconds: 6)) { index, _ in index % 30 == 0 }
        harness.finish()
        #expect(harness.segments.map(\.startMs) == [0, 1000, 2000, 3000, 4000, 5000])
        #expect(harness.segments.allSatisfy { abs($0.durationMs - 1000) <= 1 })
        expectKeyframeAligned(harness.segments, gopMs: 1000)
        #expect(harness.segmenter.targetDuration == 1)
    }

    @Test func aGopBetweenHalfTheTargetAndTheTargetDurationGivesOneGopPerSegment() {
        // 1.5 s GOPs under a 2 s target: two GOPs (3 s) would round above TARGETDURATION 2, so each
        // segment ends at the keyframe that ends its first GOP instead of being cut between keyframes.
        var harness = SegmenterHarness(declared: true)
        harness.feed(times: videoTimes(fps: 30, seconds: 9)) { index, _ in index % 45 == 0 }
        harness.finish()
        #expect(harness.segments.map(\.startMs) == [0, 1500, 3000, 4500, 6000, 7500])
        #expect(harness.segments.allSatisfy { abs($0.durationMs - 1500) <= 1 })
        expectKeyframeAligned(harness.segments, gopMs: 1500)
    }

    @Test func fourSecondGopsWithoutADeclaredTargetGiveFourSecondSegmentsAndTargetDurationFour() {
        // Plain variants fix TARGETDURATION with the first segment, which is one GOP.
        var harness = SegmenterHarness(part: nil)
        harness.feed(times: videoTimes(fps: 30, seconds: 16)) { index, _ in index % 120 == 0 }
        harness.finish()
        #expect(harness.segments.map(\.durationMs).map { ($0 + 500) / 1000 } == [4, 4, 4, 4])
        #expect(harness.segmenter.targetDuration == 4)
        expectKeyframeAligned(harness.segments, gopMs: 4000)
    }

    @Test func withADeclaredTargetALongerGopIsCutBetweenKeyframesAndRealignsAtTheNext() {
        // LL-HLS declares TARGETDURATION 2 with the first part; a 4 s GOP cannot raise it, so a segment
        // ends before it would round above 2 s (bounded), and one that started without a keyframe
        // ends at the next keyframe.
        var harness = SegmenterHarness(declared: true)
        harness.feed(times: videoTimes(fps: 30, seconds: 8)) { index, _ in index % 120 == 0 }
        harness.finish()
        #expect(harness.segmenter.targetDuration == 2)
        #expect(harness.segments.map(\.startMs) == [0, 2467, 4000, 6467])
        #expect(harness.segments.map(\.independent) == [true, false, true, false])
        #expect(harness.segments.allSatisfy { ($0.durationMs + 500) / 1000 <= 2 })
        #expect(harness.parts.filter(\.independent).map(\.startMs) == [0, 4000])
    }

    @Test func theFirstPartsComeBeforeTheFirstSegmentEnds() {
        // LL-HLS: TARGETDURATION is known at once and parts end every 0.5 s, while the first segment
        // (a 2 s GOP) is still open.
        var harness = SegmenterHarness(declared: true)
        #expect(harness.segmenter.targetDuration == 2)
        harness.feed(times: videoTimes(fps: 30, seconds: 1.6)) { index, _ in index % 60 == 0 }
        #expect(harness.segments.isEmpty)
        #expect(harness.parts.map(\.startMs) == [0, 500, 1000])
        #expect(harness.parts.map(\.independent) == [true, false, false])
    }

    @Test func keyframesOnEveryFrameStillGiveAFirstSegmentOfAQuarterTarget() {
        // All-intra video: the first segment ends at the first keyframe 0.5 s in (a quarter of the
        // target), later ones at the first keyframe within 10 % of the target.
        var harness = SegmenterHarness(declared: true)
        harness.feed(times: videoTimes(fps: 30, seconds: 5)) { _, _ in true }
        #expect(harness.segments.map(\.startMs) == [0, 500, 2300])
    }

    @Test func aKeyframeShiftedEarlierByTheReorderDelayStillEndsTheSegment() {
        // x265 in MP4: the first keyframe's dts is -67 ms, later ones sit on 0.9 s, 1.9 s, 2.9 s …
        // (the first-GOP rule is set aside here: a 2 s minimum first segment).
        var harness = SegmenterHarness(minimumFirst: 2)
        let times = videoTimes(fps: 30, seconds: 119.0 / 30, start: -67)
        harness.feed(times: times) { index, _ in index == 0 || (index + 1) % 30 == 0 }
        harness.finish()
        #expect(harness.segments.count == 2)
        #expect(harness.segments.first?.durationMs == 1967)
        #expect(harness.segments.last.map { abs($0.durationMs - 2000) <= 1 } == true)
        #expect(harness.segments.allSatisfy { $0.independent })
    }

    @Test func partsStartingWithAKeyframeAreIndependent() {
        var harness = SegmenterHarness()
        harness.feed(times: videoTimes(fps: 30, seconds: 4.1)) { index, _ in index % 30 == 0 }
        let independent = harness.parts.map(\.independent)
        #expect(independent == [true, false, true, false, true, false, true, false])
    }

    @Test func segmentsLongerThanTheFixedTargetDurationAreCutWithoutAKeyframe() {
        var harness = SegmenterHarness()
        // 2 s GOPs first (target duration becomes 2), then the encoder switches to 6 s GOPs.
        harness.feed(times: videoTimes(fps: 30, seconds: 20)) { index, time in
            time < 4000 ? index % 60 == 0 : (time - 4000) % 6000 == 0
        }
        #expect(harness.segmenter.targetDuration == 2)
        for segment in harness.segments {
            #expect(Double(segment.durationMs) / 1000 < 2.5)  // rounds to ≤ EXT-X-TARGETDURATION
        }
        #expect(harness.segments.contains { !$0.independent })
    }

    @Test func audioOnlyCutsOnTimeIntoWholeParts() {
        var harness = SegmenterHarness(video: false)
        let frame = 1024_000.0 / 48000
        let times = (0..<470).map { Int64((Double($0) * frame).rounded()) }  // ~10 s
        harness.feed(times: times) { _, _ in true }
        harness.finish()
        #expect(harness.segmenter.targetDuration == 2)
        for segment in harness.segments.dropLast() {
            #expect(segment.durationMs >= 1900 && segment.durationMs <= 2000)
        }
        #expect(harness.parts.allSatisfy { $0.durationMs <= 500 && $0.independent })
        #expect(harness.parts.dropLast().allSatisfy { $0.durationMs >= 425 })
        // Segment boundaries are part boundaries: the parts tile the segments exactly.
        #expect(harness.parts.reduce(0) { $0 + $1.durationMs } == harness.segments.reduce(0) { $0 + $1.durationMs })
    }

    @Test func withoutPartsOnlySegmentsAreReported() {
        var harness = SegmenterHarness(part: nil)
        harness.feed(times: videoTimes(fps: 25, seconds: 6)) { index, _ in index % 50 == 0 }
        harness.finish()
        #expect(harness.parts.isEmpty)
        #expect(harness.segments.map(\.durationMs) == [2000, 2000, 2000])
    }

    @Test func timestampsNearAndBeyondTwoToThe32MillisecondsSegmentNormally() {
        var harness = SegmenterHarness()
        let start: Int64 = (1 << 32) - 3000
        harness.feed(times: videoTimes(fps: 30, seconds: 8, start: start)) { index, _ in index % 60 == 0 }
        harness.finish()
        #expect(harness.segments.count == 4)
        #expect(harness.segments[1].startMs == start + 2000)
        #expect(harness.segments.allSatisfy { abs($0.durationMs - 2000) <= 1 })
    }

    @Test func finishClosesTheOpenPartAndSegmentAtTheEndOfTheLastSample() {
        var harness = SegmenterHarness()
        harness.feed(times: videoTimes(fps: 30, seconds: 1.2)) { index, _ in index == 0 }
        harness.finish()
        #expect(harness.segments.count == 1)
        #expect(abs(harness.segments[0].durationMs - 1200) <= 1)
        #expect(harness.parts.map(\.durationMs).reduce(0, +) == harness.segments[0].durationMs)
        #expect(harness.segmenter.targetDuration == 2)
        #expect(harness.segmenter.finish().isEmpty)
    }
}

@Suite struct TrackTimelineTests {
    @Test func theFirstSampleStartsAtZeroAndCompositionOffsetsAreKept() {
        var timeline = TrackTimeline(defaultDeltaMs: 33)
        #expect(timeline.map(dts: 5000, pts: 5067) == (0, 67))
        #expect(timeline.map(dts: 5033, pts: 5033) == (33, 33))
    }

    @Test func aSessionWideOriginKeepsALateStartingTrackOffset() {
        // Video's first keyframe at 10 000 ms is the origin; audio starts 46 ms later and stays so.
        var audio = TrackTimeline(defaultDeltaMs: 21, origin: 10_000)
        #expect(audio.map(dts: 10_046, pts: 10_046) == (46, 46))
        #expect(audio.map(dts: 10_067, pts: 10_067) == (67, 67))
        var early = TrackTimeline(defaultDeltaMs: 21, origin: 10_000)
        #expect(early.map(dts: 9_990, pts: 9_990) == (0, 0))  // never negative
    }

    @Test func aLargeForwardGapIsSquashedToOneSampleDuration() {
        var timeline = TrackTimeline(defaultDeltaMs: 33)
        _ = timeline.map(dts: 0, pts: 0)
        _ = timeline.map(dts: 40, pts: 40)
        #expect(timeline.map(dts: 60_040, pts: 60_040) == (80, 80))
        #expect(timeline.map(dts: 60_080, pts: 60_080) == (120, 120))
    }

    @Test func aShortGapIsKeptAsRealTime() {
        var timeline = TrackTimeline(defaultDeltaMs: 33)
        _ = timeline.map(dts: 1000, pts: 1000)
        #expect(timeline.map(dts: 2500, pts: 2500).dts == 1500)
    }

    @Test func aBackwardJumpContinuesForward() {
        var timeline = TrackTimeline(defaultDeltaMs: 20)
        _ = timeline.map(dts: 10_000, pts: 10_000)
        _ = timeline.map(dts: 10_020, pts: 10_020)
        #expect(timeline.map(dts: 0, pts: 0).dts == 40)
        #expect(timeline.map(dts: 20, pts: 20).dts == 60)
    }

    @Test func timestampsAcrossTwoToThe32AreRebasedWithoutOverflow() {
        var timeline = TrackTimeline(defaultDeltaMs: 33)
        let base: Int64 = (1 << 32) - 10
        _ = timeline.map(dts: base, pts: base)
        #expect(timeline.map(dts: base + 33, pts: base + 33).dts == 33)
        #expect(timeline.map(dts: (1 << 33) + 5, pts: (1 << 33) + 5).dts == 66)  // a jump of ~49 days
    }

    @Test func equalOrSlightlyDecreasingTimestampsStayStrictlyIncreasing() {
        var timeline = TrackTimeline(defaultDeltaMs: 33)
        _ = timeline.map(dts: 100, pts: 100)
        #expect(timeline.map(dts: 100, pts: 100).dts == 1)
        #expect(timeline.map(dts: 99, pts: 99).dts == 2)
    }
}

/// `SegmentWindow` is a value: its sliding, retiring and lookups are tested with a chosen `now`.
@Suite struct SegmentWindowTests {
    func closed(_ window: inout SegmentWindow, independent: Bool = true, at now: ContinuousClock.Instant) {
        window.addPart(ByteBuffer(bytes: [1, 2, 3]), duration: 0.5, independent: independent, programDateTimeMs: 0)
        window.addPart(ByteBuffer(bytes: [4, 5]), duration: 0.5, independent: false, programDateTimeMs: 0)
        window.closeSegment(duration: 1, independent: independent, bytes: nil, file: nil, programDateTimeMs: 0, targetDuration: 1, now: now)
    }

    @Test func theWindowSlidesByWholeDecodableSegmentsAndRetiredOnesExpire() {
        var window = SegmentWindow(windowSegments: 3, maxRetiredSegments: 2)
        let start = ContinuousClock.now
        #expect(!window.isSatisfied(.ready))
        for msn in 0..<6 { closed(&window, independent: msn != 3, at: start) }
        // Segment 3 does not start on a keyframe, so it never opens the window: 2…5 slides to 4…5.
        #expect(window.segments.map(\.msn) == [4, 5])
        #expect(window.retired.map(\.segment.msn) == [2, 3], "bounded by maxRetiredSegments")
        #expect(window.isSatisfied(.segment(5)) && !window.isSatisfied(.segment(6)))
        #expect(window.isSatisfied(.part(5, 1)) && !window.isSatisfied(.part(6, 0)))
        #expect(window.nextPart == (6, 0))
        // A part is a view into its segment's joined bytes; a retired one is served until it expires.
        #expect(window.partBody(msn: 5, index: 1, now: start)?.bytes == ByteBuffer(bytes: [4, 5]))
        #expect(window.partBody(msn: 2, index: 0, now: start)?.bytes == ByteBuffer(bytes: [1, 2, 3]))
        #expect(window.segment(msn: 2, now: start + .seconds(3601)) == nil)
        window.end()
        #expect(window.isSatisfied(.segment(1_000)), "an ended stream satisfies every wait")
    }

    @Test func withADeclaredTargetDurationTheFirstPartsAreListedBeforeTheFirstSegment() throws {
        var window = SegmentWindow(windowSegments: 3, maxRetiredSegments: 8)
        window.addPart(ByteBuffer(bytes: [1]), duration: 0.5, independent: true, programDateTimeMs: 0, targetDuration: 2)
        // A plain client waits for a complete segment; a blocking LL-HLS request for part 0 is answered.
        #expect(!window.isSatisfied(.ready))
        #expect(window.isSatisfied(.part(0, 0)) && !window.isSatisfied(.part(0, 1)))
        #expect(window.multivariantPlaylist(variant: .fmp4LowLatency) == nil)
        let playlist = try #require(window.mediaPlaylist(variant: .fmp4LowLatency, partTargetDuration: 0.5)).render()
        #expect(playlist.contains("#EXT-X-TARGETDURATION:2\n"))
        #expect(playlist.contains("#EXT-X-MEDIA-SEQUENCE:0\n"))
        #expect(playlist.contains(#"#EXT-X-PART:DURATION=0.500,URI="part-0-0.m4s",INDEPENDENT=YES"#))
        #expect(!playlist.contains("#EXTINF"))
        #expect(playlist.contains(#"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-0-1.m4s""#))
        // The declared target duration stays, whatever the first segment lasts.
        window.closeSegment(duration: 2.4, independent: true, bytes: nil, file: nil, programDateTimeMs: 0, targetDuration: 3, now: .now)
        #expect(window.isSatisfied(.ready))
        #expect(window.targetDuration == 2)
    }

    /// Issue 20: a new origin of a room goes on from the previous origin's numbering, with a
    /// discontinuity, and tells where its own stands.
    @Test func aWindowContinuesAnotherOriginsNumberingAfterADiscontinuity() throws {
        var previous = SegmentWindow(windowSegments: 3, maxRetiredSegments: 8)
        for _ in 0..<2 { closed(&previous, at: .now) }
        previous.markDiscontinuity()
        for _ in 0..<5 { closed(&previous, at: .now) }
        let position = previous.position
        #expect(position == HLSPosition(nextMediaSequence: 7, discontinuitySequence: 1), "the discontinuity before segment 2 has been counted")

        var window = SegmentWindow(windowSegments: 3, maxRetiredSegments: 8)
        let continued = window.continueNumbering(after: position)
        #expect(continued)
        #expect(!window.isSatisfied(.ready), "nothing to serve before the first segment here")
        #expect(window.isSatisfied(.segment(6)) && !window.isSatisfied(.segment(7)))
        closed(&window, at: .now)
        let playlist = try #require(window.mediaPlaylist(variant: .fmp4LowLatency, partTargetDuration: 0.5)).render()
        #expect(playlist.contains("#EXT-X-MEDIA-SEQUENCE:7\n"))
        #expect(playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"))
        #expect(playlist.contains("#EXT-X-DISCONTINUITY\n"))
        #expect(playlist.contains("seg-7.m4s"))
        #expect(window.isSatisfied(.ready))
        #expect(window.position == HLSPosition(nextMediaSequence: 8, discontinuitySequence: 2))
        let renumbered = window.continueNumbering(after: position)
        #expect(!renumbered, "a window that numbered segments keeps its numbering")
    }

    @Test func theMediaPlaylistListsHLSFileNames() throws {
        var window = SegmentWindow(windowSegments: 3, maxRetiredSegments: 8)
        closed(&window, at: .now)
        window.addPart(ByteBuffer(bytes: [9]), duration: 0.5, independent: true, programDateTimeMs: 0)
        let playlist = try #require(window.mediaPlaylist(variant: .fmp4LowLatency, partTargetDuration: 0.5)).render()
        #expect(playlist.contains("seg-0.m4s") && playlist.contains("part-1-0.m4s"))
        #expect(playlist.contains(#"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-1-1.m4s""#))
    }
}
