import NIOCore
import Testing

@testable import HLS

/// Feeds synthetic master-track samples and collects what the segmenter decides.
struct SegmenterHarness {
    var segmenter: Segmenter
    var parts: [Segmenter.Span] = []
    var segments: [Segmenter.Span] = []

    init(target: Double = 2, part: Double? = 0.5, video: Bool = true) {
        segmenter = Segmenter(configuration: .init(targetSegmentDuration: target, partTargetDuration: part, cutsOnKeyframes: video))
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
    @Test(arguments: [1.0, 2.0])
    func gopsOfAtMostTheTargetGiveTwoSecondSegmentsOfHalfSecondParts(gop: Double) {
        var harness = SegmenterHarness()
        let framesPerGop = Int(30 * gop)
        harness.feed(times: videoTimes(fps: 30, seconds: 10)) { index, _ in index % framesPerGop == 0 }
        #expect(harness.segments.count == 4)  // cut at 2, 4, 6, 8 s; the fifth is still open
        for segment in harness.segments {
            #expect(abs(segment.durationMs - 2000) <= 1)
            #expect(segment.independent)
        }
        #expect(harness.segmenter.targetDuration == 2)
        for part in harness.parts {
            #expect(part.durationMs <= 500)
            #expect(part.durationMs >= 425)  // RFC 8216bis §4.4.4.9: at least 85% of PART-TARGET
        }
        #expect(harness.parts.filter { $0.startMs < 8000 }.count == 16)  // four per complete segment
    }

    @Test func fourSecondGopsGiveFourSecondSegmentsAndTargetDurationFour() {
        var harness = SegmenterHarness()
        harness.feed(times: videoTimes(fps: 30, seconds: 16)) { index, _ in index % 120 == 0 }
        harness.finish()
        #expect(harness.segments.map(\.durationMs).map { ($0 + 500) / 1000 } == [4, 4, 4, 4])
        #expect(harness.segmenter.targetDuration == 4)
        #expect(harness.segments.allSatisfy { $0.independent })
    }

    @Test func endingTheFirstSegmentWithItsFirstPartRealignsWithTheGopsAtTheNextKeyframe() {
        var harness = SegmenterHarness()
        harness.segmenter.configuration.endsFirstSegmentWithItsFirstPart = true
        harness.feed(times: videoTimes(fps: 30, seconds: 6)) { index, _ in index % 60 == 0 }
        harness.finish()
        #expect(harness.segments.map(\.startMs) == [0, 500, 2000, 4000])
        #expect(harness.segments.map(\.independent) == [true, false, true, true])
        #expect(harness.segmenter.targetDuration == 2)
        #expect(harness.parts.filter(\.independent).map(\.startMs) == [0, 2000, 4000])
    }

    @Test func withAShortFirstSegmentALongerGopIsCutBetweenKeyframesAndRealignsAtTheNext() {
        // A 4 s GOP cannot raise TARGETDURATION (fixed at 2 by the short first segment), so a segment
        // ends before it would round above 2 s; one that started without a keyframe ends at the next.
        var harness = SegmenterHarness()
        harness.segmenter.configuration.endsFirstSegmentWithItsFirstPart = true
        harness.feed(times: videoTimes(fps: 30, seconds: 8)) { index, _ in index % 120 == 0 }
        harness.finish()
        #expect(harness.segmenter.targetDuration == 2)
        #expect(harness.segments.map(\.startMs) == [0, 500, 2967, 4000, 6467])
        #expect(harness.segments.map(\.independent) == [true, false, false, true, false])
        #expect(harness.segments.allSatisfy { ($0.durationMs + 500) / 1000 <= 2 })
        #expect(harness.parts.filter(\.independent).map(\.startMs) == [0, 4000])
    }

    @Test func aKeyframeShiftedEarlierByTheReorderDelayStillEndsTheSegment() {
        // x265 in MP4: the first keyframe's dts is -67 ms, later ones sit on 0.9 s, 1.9 s, 2.9 s …
        var harness = SegmenterHarness()
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

    @Test func theMediaPlaylistListsHLSFileNames() throws {
        var window = SegmentWindow(windowSegments: 3, maxRetiredSegments: 8)
        closed(&window, at: .now)
        window.addPart(ByteBuffer(bytes: [9]), duration: 0.5, independent: true, programDateTimeMs: 0)
        let playlist = try #require(window.mediaPlaylist(variant: .fmp4LowLatency, partTargetDuration: 0.5)).render()
        #expect(playlist.contains("seg-0.m4s") && playlist.contains("part-1-0.m4s"))
        #expect(playlist.contains(#"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-1-1.m4s""#))
    }
}
