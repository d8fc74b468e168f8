#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Testing

@testable import HLS

@Suite struct MediaPlaylistRenderTests {
    let t0: Int64 = 1_764_038_400_000  // 2025-11-25T02:40:00.000Z

    @Test func aLiveLowLatencyFMP4PlaylistListsPartsOfTheLastSegmentsAndAPreloadHint() {
        let parts: (Int) -> [MediaPlaylist.Part] = { msn in
            (0..<4).map { MediaPlaylist.Part(duration: 0.5, uri: "part-\(msn)-\($0).m4s", independent: $0 == 0) }
        }
        let playlist = MediaPlaylist(
            version: 6, targetDuration: 2, mediaSequence: 10,
            serverControl: .init(canBlockReload: true, partHoldBack: 1.5, holdBack: 6), partTarget: 0.5,
            segments: [
                .init(duration: 2, uri: "seg-10.m4s", mapURI: "init-0.mp4", programDateTimeMs: t0),
                .init(duration: 2.002, uri: "seg-11.m4s", parts: parts(11), mapURI: "init-0.mp4", programDateTimeMs: t0 + 2000),
                .init(duration: nil, uri: "seg-12.m4s", parts: Array(parts(12).prefix(2)), mapURI: "init-0.mp4", programDateTimeMs: t0 + 4002),
            ],
            preloadHintURI: "part-12-2.m4s")
        #expect(
            playlist.render() == """
                #EXTM3U
                #EXT-X-VERSION:6
                #EXT-X-TARGETDURATION:2
                #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000
                #EXT-X-PART-INF:PART-TARGET=0.500
                #EXT-X-MEDIA-SEQUENCE:10
                #EXT-X-MAP:URI="init-0.mp4"
                #EXT-X-PROGRAM-DATE-TIME:2025-11-25T02:40:00.000Z
                #EXTINF:2.000,
                seg-10.m4s
                #EXT-X-PROGRAM-DATE-TIME:2025-11-25T02:40:02.000Z
                #EXT-X-PART:DURATION=0.500,URI="part-11-0.m4s",INDEPENDENT=YES
                #EXT-X-PART:DURATION=0.500,URI="part-11-1.m4s"
                #EXT-X-PART:DURATION=0.500,URI="part-11-2.m4s"
                #EXT-X-PART:DURATION=0.500,URI="part-11-3.m4s"
                #EXTINF:2.002,
                seg-11.m4s
                #EXT-X-PROGRAM-DATE-TIME:2025-11-25T02:40:04.002Z
                #EXT-X-PART:DURATION=0.500,URI="part-12-0.m4s",INDEPENDENT=YES
                #EXT-X-PART:DURATION=0.500,URI="part-12-1.m4s"
                #EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-12-2.m4s"

                """)
    }

    @Test func aPlainFMP4PlaylistHasNoPartsNoServerControlAndNoHint() {
        let playlist = MediaPlaylist(
            version: 6, targetDuration: 4, mediaSequence: 0,
            segments: [
                .init(duration: 4, uri: "seg-0.m4s", mapURI: "init-0.mp4", programDateTimeMs: t0),
                .init(duration: 3.967, uri: "seg-1.m4s", mapURI: "init-0.mp4", programDateTimeMs: t0 + 4000),
            ])
        #expect(
            playlist.render() == """
                #EXTM3U
                #EXT-X-VERSION:6
                #EXT-X-TARGETDURATION:4
                #EXT-X-MEDIA-SEQUENCE:0
                #EXT-X-MAP:URI="init-0.mp4"
                #EXT-X-PROGRAM-DATE-TIME:2025-11-25T02:40:00.000Z
                #EXTINF:4.000,
                seg-0.m4s
                #EXT-X-PROGRAM-DATE-TIME:2025-11-25T02:40:04.000Z
                #EXTINF:3.967,
                seg-1.m4s

                """)
    }

    @Test func aTransportStreamPlaylistHasNoMap() {
        let playlist = MediaPlaylist(
            version: 3, targetDuration: 2, mediaSequence: 7,
            segments: [.init(duration: 2, uri: "seg-7.ts", programDateTimeMs: t0)])
        #expect(
            playlist.render() == """
                #EXTM3U
                #EXT-X-VERSION:3
                #EXT-X-TARGETDURATION:2
                #EXT-X-MEDIA-SEQUENCE:7
                #EXT-X-PROGRAM-DATE-TIME:2025-11-25T02:40:00.000Z
                #EXTINF:2.000,
                seg-7.ts

                """)
    }

    @Test func aDiscontinuityWithNewCodecsRepeatsTheMapAfterTheTag() {
        let playlist = MediaPlaylist(
            version: 6, targetDuration: 2, mediaSequence: 3, discontinuitySequence: 1,
            segments: [
                .init(duration: 1.5, uri: "seg-3.m4s", mapURI: "init-0.mp4"),
                .init(duration: 2, uri: "seg-4.m4s", discontinuity: true, mapURI: "init-1.mp4"),
                .init(duration: 2, uri: "seg-5.m4s", mapURI: "init-1.mp4"),
            ])
        #expect(
            playlist.render() == """
                #EXTM3U
                #EXT-X-VERSION:6
                #EXT-X-TARGETDURATION:2
                #EXT-X-MEDIA-SEQUENCE:3
                #EXT-X-DISCONTINUITY-SEQUENCE:1
                #EXT-X-MAP:URI="init-0.mp4"
                #EXTINF:1.500,
                seg-3.m4s
                #EXT-X-DISCONTINUITY
                #EXT-X-MAP:URI="init-1.mp4"
                #EXTINF:2.000,
                seg-4.m4s
                #EXTINF:2.000,
                seg-5.m4s

                """)
    }

    @Test func anEndedPlaylistHasEndlistAndNoPreloadHint() {
        let playlist = MediaPlaylist(
            version: 6, targetDuration: 2, mediaSequence: 0,
            serverControl: .init(canBlockReload: true, partHoldBack: 1.5, holdBack: 6), partTarget: 0.5,
            segments: [.init(duration: 1.2, uri: "seg-0.m4s", mapURI: "init-0.mp4")],
            preloadHintURI: "part-1-0.m4s", ended: true)
        #expect(
            playlist.render() == """
                #EXTM3U
                #EXT-X-VERSION:6
                #EXT-X-TARGETDURATION:2
                #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000
                #EXT-X-PART-INF:PART-TARGET=0.500
                #EXT-X-MEDIA-SEQUENCE:0
                #EXT-X-MAP:URI="init-0.mp4"
                #EXTINF:1.200,
                seg-0.m4s
                #EXT-X-ENDLIST

                """)
    }

    @Test func aMultivariantPlaylistDescribesTheOneVariant() {
        let playlist = MultivariantPlaylist(
            version: 6, independentSegments: false, bandwidth: 1_234_567, averageBandwidth: 1_000_000,
            codecs: ["avc1.64001f", "mp4a.40.2"], resolution: VideoDimensions(width: 1280, height: 720), frameRate: 29.97,
            uri: "media.m3u8")
        #expect(
            playlist.render() == """
                #EXTM3U
                #EXT-X-VERSION:6
                #EXT-X-STREAM-INF:BANDWIDTH=1234567,AVERAGE-BANDWIDTH=1000000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970
                media.m3u8

                """)
    }

    @Test func programDateTimeFormatsLeapDaysAndMilliseconds() {
        #expect(ProgramDateTime.format(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(ProgramDateTime.format(milliseconds: 951_782_400_007) == "2000-02-29T00:00:00.007Z")
        #expect(ProgramDateTime.format(milliseconds: 4_102_444_799_999) == "2099-12-31T23:59:59.999Z")
    }

    @Test func aPlaylistTypeAndDateRangesAreRenderedAfterTheHeader() {
        let playlist = MediaPlaylist(
            version: 6, targetDuration: 2, mediaSequence: 0, playlistType: .vod,
            segments: [.init(duration: 2, uri: "rec-0.m4s", mapURI: "rec-init-0.mp4", programDateTimeMs: t0)],
            dateRanges: [
                DateRange(id: "f4", className: "com.livehub.product", startMs: t0 + 1000, endMs: t0 + 1500,
                          attributes: ["X-PRODUCT-NAME": "Scarf", "X-PRODUCT-ID": "p1"]),
                DateRange(id: "f5", className: "com.livehub.product", startMs: t0 + 1600, endMs: t0, attributes: [:]),
            ],
            ended: true)
        #expect(
            playlist.render() == """
                #EXTM3U
                #EXT-X-VERSION:6
                #EXT-X-TARGETDURATION:2
                #EXT-X-MEDIA-SEQUENCE:0
                #EXT-X-PLAYLIST-TYPE:VOD
                #EXT-X-DATERANGE:ID="f4",CLASS="com.livehub.product",START-DATE="2025-11-25T02:40:01.000Z",END-DATE="2025-11-25T02:40:01.500Z",X-PRODUCT-ID="p1",X-PRODUCT-NAME="Scarf"
                #EXT-X-DATERANGE:ID="f5",CLASS="com.livehub.product",START-DATE="2025-11-25T02:40:01.600Z"
                #EXT-X-MAP:URI="rec-init-0.mp4"
                #EXT-X-PROGRAM-DATE-TIME:2025-11-25T02:40:00.000Z
                #EXTINF:2.000,
                rec-0.m4s
                #EXT-X-ENDLIST

                """)
        let event = MediaPlaylist(version: 3, targetDuration: 2, mediaSequence: 5, playlistType: .event, segments: [])
        #expect(event.render().contains("#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-PLAYLIST-TYPE:EVENT\n"))
    }

    @Test func dateRangeValuesAreSanitisedForQuotedStrings() {
        let long = String(repeating: "é", count: 150)  // 300 UTF-8 bytes
        let range = DateRange(
            id: "a\"b", className: "c\rd", startMs: t0, endMs: nil,
            attributes: ["X-PRODUCT-NAME": "Silk \"scarf\"\r\n#EXT-X-ENDLIST", "X-LONG": long, "X-ok-lower": "no", "Y-NAME": "no", "X-": "no"])
        let line = range.rendered
        #expect(line == "#EXT-X-DATERANGE:ID=\"ab\",CLASS=\"cd\",START-DATE=\"2025-11-25T02:40:00.000Z\",X-LONG=\"\(String(repeating: "é", count: 100))\",X-PRODUCT-NAME=\"Silk scarf#EXT-X-ENDLIST\"")
        #expect(!line.contains("\n") && !line.contains("\r"))
        #expect(DateRange.sanitized("a\u{7F}b\u{0}c\td") == "abcd")
        #expect(DateRange.isValidAttributeName("X-PRODUCT-ID") && !DateRange.isValidAttributeName("X-") && !DateRange.isValidAttributeName("x-a"))
    }

    @Test func recordedFileNamesParseExactly() {
        #expect(HLSFileName("dvr.m3u8") == .dvr && HLSFileName("vod.m3u8") == .vod)
        #expect(HLSFileName("rec-init-3.mp4") == .recordedInit(3))
        #expect(HLSFileName("rec-12.m4s") == .recordedSegment(msn: 12, ext: "m4s"))
        #expect(HLSFileName("rec-12.ts") == .recordedSegment(msn: 12, ext: "ts"))
        #expect(HLSFileName("chapter-0.jpg") == .chapterThumbnail(0))
        for bad in ["rec-01.m4s", "rec--1.m4s", "rec-init--1.mp4", "chapter-99999999999.jpg", "chapter-.jpg", "rec-1.mp4", "../rec-1.m4s", "rec-init-1.m4s"] {
            #expect(HLSFileName(bad) == nil, "\(bad)")
        }
        #expect(HLSFileName.recordedSegment(msn: 7, ext: "ts").fileNameOnDisk == "seg-7.ts")
        #expect(HLSFileName.recordedInit(2).fileNameOnDisk == "init-2.mp4")
        #expect(HLSFileName.segment(msn: 7, ext: "ts").fileNameOnDisk == nil)
    }
}

@Suite struct SegmentStoreTests {
    func bytes(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: 0xAB, count: count) }

    @Test func theWindowSlidesAndCountsRemovedDiscontinuities() {
        let store = SegmentStore(configuration: HLSConfiguration(variant: .fmp4, windowSegments: 2))
        store.setInitSection(bytes(10))
        store.closeSegment(duration: 2, independent: true, bytes: bytes(100), programDateTimeMs: 0, targetDuration: 2)
        store.markDiscontinuity()
        store.setInitSection(bytes(11))
        store.closeSegment(duration: 2, independent: true, bytes: bytes(100), programDateTimeMs: 2000, targetDuration: 2)
        store.closeSegment(duration: 2, independent: true, bytes: bytes(100), programDateTimeMs: 4000, targetDuration: 2)
        let text = String(buffer: store.mediaPlaylist()!)
        #expect(text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"))
        #expect(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"))
        store.closeSegment(duration: 2, independent: true, bytes: bytes(100), programDateTimeMs: 6000, targetDuration: 2)
        let later = String(buffer: store.mediaPlaylist()!)
        #expect(later.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"))
        // Removed segments stay downloadable for a while (RFC 8216 §6.2.2).
        #expect(store.segmentBytes(msn: 0) != nil)
        #expect(store.segmentBytes(msn: 4) == nil)
    }

    @Test func aSegmentThatDoesNotStartOnAKeyframeNeverOpensTheWindow() {
        let store = SegmentStore(configuration: HLSConfiguration(variant: .fmp4, windowSegments: 3))
        store.setInitSection(bytes(10))
        // A segment cut between keyframes (a GOP longer than the target duration), then the one
        // that runs on to the next keyframe.
        store.closeSegment(duration: 0.5, independent: true, bytes: bytes(25), programDateTimeMs: 0, targetDuration: 2)
        store.closeSegment(duration: 1.5, independent: false, bytes: bytes(75), programDateTimeMs: 500, targetDuration: 2)
        store.closeSegment(duration: 2, independent: true, bytes: bytes(100), programDateTimeMs: 2000, targetDuration: 2)
        #expect(String(buffer: store.mediaPlaylist()!).contains("#EXT-X-MEDIA-SEQUENCE:0\n"))
        // Sliding past segment 0 would open the window with segment 1: it goes too (a 2-segment window
        // once), and stays downloadable for players that already had it listed.
        store.closeSegment(duration: 2, independent: true, bytes: bytes(100), programDateTimeMs: 4000, targetDuration: 2)
        let text = String(buffer: store.mediaPlaylist()!)
        #expect(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"))
        #expect(!text.contains("seg-1.m4s"))
        #expect(store.segmentBytes(msn: 1) != nil)
        store.closeSegment(duration: 2, independent: true, bytes: bytes(100), programDateTimeMs: 6000, targetDuration: 2)
        #expect(String(buffer: store.mediaPlaylist()!).contains("#EXT-X-MEDIA-SEQUENCE:2\n"))
    }

    @Test func identicalInitSectionsDoNotStartANewMap() {
        let store = SegmentStore(configuration: HLSConfiguration(variant: .fmp4))
        store.setInitSection(bytes(10))
        store.setInitSection(bytes(10))
        #expect(store.initSection(0) != nil)
        #expect(store.initSection(1) == nil)
    }

    @Test func partsAreListedOnlyForTheLastTwoSegmentsAndTheOpenOne() {
        let store = SegmentStore(configuration: HLSConfiguration())
        store.setInitSection(bytes(10))
        for msn in 0..<4 {
            for _ in 0..<4 { store.addPart(bytes(10), duration: 0.5, independent: false, programDateTimeMs: Int64(msn) * 2000) }
            store.closeSegment(duration: 2, independent: true, bytes: nil, programDateTimeMs: 0, targetDuration: 2)
        }
        store.addPart(bytes(10), duration: 0.5, independent: true, programDateTimeMs: 8000)
        let text = String(buffer: store.mediaPlaylist()!)
        #expect(!text.contains("part-1-"))
        #expect(text.contains("part-2-3.m4s"))
        #expect(text.contains("part-3-0.m4s"))
        #expect(text.contains("#EXT-X-PART:DURATION=0.500,URI=\"part-4-0.m4s\",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-4-1.m4s\"\n"))
        #expect(store.segmentBytes(msn: 2)?.readableBytes == 40)
    }
}

/// Finished segments move into sealed memory files (`HLSMemoryFile`) that the server `sendfile`s.
@Suite struct SegmentMemoryFileTests {
    /// Distinct bytes per part, so a wrong offset shows.
    func part(_ value: UInt8, _ count: Int) -> ByteBuffer { ByteBuffer(repeating: value, count: count) }

    func storeWithOneFinishedSegment(memoryFiles: Bool = true) -> SegmentStore {
        let store = SegmentStore(configuration: HLSConfiguration(segmentsInMemoryFiles: memoryFiles))
        store.setInitSection(part(0x01, 10))
        store.addPart(part(0xA0, 100), duration: 0.5, independent: true, programDateTimeMs: 0)
        store.addPart(part(0xA1, 70), duration: 0.5, independent: false, programDateTimeMs: 0)
        store.addPart(part(0xA2, 130), duration: 0.5, independent: false, programDateTimeMs: 0)
        store.closeSegment(duration: 1.5, independent: true, bytes: nil, programDateTimeMs: 0, targetDuration: 2)
        return store
    }

    @Test func aFinishedSegmentAndItsPartsAreRangesOfOneSealedFile() throws {
        let store = storeWithOneFinishedSegment()
        guard case .file(let file, let offset, let length) = store.segmentBody(msn: 0) else {
            Issue.record("segment 0 is not in a memory file: \(String(describing: store.segmentBody(msn: 0)))")
            return
        }
        #expect(offset == 0 && length == 300 && file.size == 300)
        let expected: [(UInt8, Int, Int)] = [(0xA0, 0, 100), (0xA1, 100, 70), (0xA2, 170, 130)]
        for (index, (value, start, count)) in expected.enumerated() {
            guard case .file(let partFile, let partOffset, let partLength) = store.partBody(msn: 0, index: index) else {
                Issue.record("part \(index) is not a file range")
                continue
            }
            #expect(partFile === file && partOffset == start && partLength == count)
            #expect(store.partBody(msn: 0, index: index)?.bytes == part(value, count))
        }
        #expect(store.partBody(msn: 0, index: 3) == nil)
        var whole = part(0xA0, 100)
        whole.writeImmutableBuffer(part(0xA1, 70))
        whole.writeImmutableBuffer(part(0xA2, 130))
        #expect(store.segmentBytes(msn: 0) == whole)
        // Sealed: the descriptor can be read, never written or resized.
        var byte: UInt8 = 0
        #expect(pwrite(file.descriptor, &byte, 1, 0) == -1 && errno == EPERM)
        #expect(ftruncate(file.descriptor, 10) == -1 && errno == EPERM)
    }

    @Test func theOpenSegmentsPartsStayOnTheHeap() {
        let store = storeWithOneFinishedSegment()
        store.addPart(part(0xB0, 40), duration: 0.5, independent: true, programDateTimeMs: 1500)
        guard case .bytes(let bytes) = store.partBody(msn: 1, index: 0) else {
            Issue.record("open part is not on the heap")
            return
        }
        #expect(bytes == part(0xB0, 40))
    }

    @Test func aResponseKeepsItsFileReadableAfterTheStoreIsGone() throws {
        var store: SegmentStore? = storeWithOneFinishedSegment()
        let body = store!.partBody(msn: 0, index: 2)
        store = nil
        #expect(body?.bytes == part(0xA2, 130))
        guard case .file(let file, _, _) = body else { return }
        #expect(fcntl(file.descriptor, F_GETFD) != -1)
    }

    @Test func withMemoryFilesOffSegmentsStayOnTheHeap() {
        let store = storeWithOneFinishedSegment(memoryFiles: false)
        guard case .bytes(let bytes) = store.segmentBody(msn: 0) else {
            Issue.record("segment moved to a file although memory files are off")
            return
        }
        #expect(bytes.readableBytes == 300)
        #expect(store.partBody(msn: 0, index: 1)?.bytes == part(0xA1, 70))
    }
}

/// `HLSFileName` is the one place names are made and read: what a playlist lists is what a request
/// for it parses to, and nothing else parses.
@Suite struct HLSFileNameTests {
    @Test func everyNameAPlaylistListsParsesBackToItself() {
        let names: [HLSFileName] = [
            .multivariant, .media, .thumbnail, .initSection(0), .initSection(12), .segment(msn: 0, ext: "m4s"),
            .segment(msn: 999_999_999, ext: "ts"), .part(msn: 7, index: 0), .part(msn: 123, index: 45),
        ]
        for name in names {
            #expect(HLSFileName(name.description) == name, "\(name)")
        }
        for refused in ["seg-01.m4s", "seg--1.m4s", "seg-1000000000.m4s", "part-1.m4s", "part-1-2-3.m4s", "../media.m3u8", "seg-1.mp4", "init-.mp4"] {
            #expect(HLSFileName(refused) == nil, "\(refused)")
        }
    }
}
