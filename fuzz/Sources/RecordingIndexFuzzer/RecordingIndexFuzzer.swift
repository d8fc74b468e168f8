import FuzzSupport
@testable import HLS

/// A recording's `index.jsonl` as it is read back from disk (issue 21): the file may be torn by a
/// `kill -9`, edited or corrupted, so every line is decoded and validated (`RecordingIndex.parse`),
/// then the index is used as the server uses it — the DVR and VOD playlists are rendered and the
/// media timeline is mapped both ways.
///
/// Invariants: segment numbers strictly increase and fit the file-name grammar; durations and media
/// starts are finite, in range and add up; the playlists list every segment under a name
/// `HLSFileName` parses back; no playlist line carries a CR or a stray quote in a DATERANGE;
/// `mediaSeconds` stays within [0, duration] and `wallClockMs` within the recorded instants.
@_cdecl("RecordingIndexFuzzer_main")
public func recordingIndexFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, count in
        fuzzOne(fuzzBytes(data, count))
        return 0
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    let index = RecordingIndex.parse(bytes)
    var previous = -1
    var media = 0.0
    for segment in index.segments {
        fuzzCheck(segment.msn > previous && segment.msn <= RecordingIndex.maxNumber, "segment numbers out of order: \(segment.msn)")
        fuzzCheck(segment.duration.isFinite && segment.duration >= 0 && segment.duration <= RecordingIndex.maxSegmentSeconds, "duration \(segment.duration)")
        fuzzCheck(abs(segment.mediaStart - media) < 1e-6, "media start \(segment.mediaStart) != \(media)")
        fuzzCheck(segment.programDateTimeMs >= (index.segments.first?.programDateTimeMs ?? 0), "a program date-time before the first")
        fuzzCheck(segment.initIndex.map { index.inits.contains($0) } ?? true, "a segment names an unknown init section")
        previous = segment.msn
        media += segment.duration
    }
    let duration = index.durationSeconds
    for type in [MediaPlaylist.PlaylistType.event, .vod] {
        guard let playlist = index.playlist(type: type) else {
            fuzzCheck(index.segments.isEmpty, "no playlist for a recording with segments")
            continue
        }
        let text = playlist.render()
        fuzzCheck(!text.contains("\r"), "a CR in the playlist")
        var listed = 0
        for line in text.split(separator: "\n") {
            if line.hasPrefix("#EXT-X-DATERANGE:") {
                fuzzCheck(line.filter { $0 == "\"" }.count % 2 == 0, "unbalanced quotes: \(line)")
            } else if !line.hasPrefix("#") {
                listed += 1
                fuzzCheck(HLSFileName(String(line)) != nil, "listed name \(line) does not parse")
            }
        }
        fuzzCheck(listed == index.segments.count, "listed \(listed) of \(index.segments.count)")
    }
    for chapter in index.chapters {
        fuzzCheck(RecordingIndex.isValidChapterId(chapter.id), "chapter id \(chapter.id)")
        if let file = chapter.thumbnailFile { fuzzCheck(HLSFileName(file)?.fileNameOnDisk == file, "thumbnail \(file)") }
        let seconds = index.mediaSeconds(wallClockMs: chapter.startMs)
        fuzzCheck(seconds >= 0 && seconds <= duration + 1e-6, "chapter at \(seconds) of \(duration)")
    }
    for segment in index.segments.prefix(64) {
        for probe in [segment.programDateTimeMs - 1, segment.programDateTimeMs, segment.programDateTimeMs + 500, segment.programDateTimeMs + 10_000_000] {
            let seconds = index.mediaSeconds(wallClockMs: probe)
            fuzzCheck(seconds.isFinite && seconds >= 0 && seconds <= duration + 1e-6, "mediaSeconds \(seconds) of \(duration)")
        }
        for probe in [segment.mediaStart, segment.mediaStart + segment.duration / 2, -1, .infinity, .nan] {
            guard let ms = index.wallClockMs(mediaSeconds: probe) else {
                fuzzCheck(false, "no wall clock for a recording with segments")
                continue
            }
            let first = index.segments[0].programDateTimeMs
            let last = index.segments[index.segments.count - 1].programDateTimeMs
            fuzzCheck(ms >= first && ms <= last + 3_600_000, "wallClockMs \(ms) outside \(first)…\(last)")
        }
    }
}
