import HLS

/// `ReplayRecordings` (the timeline's view of the recordings, issue 21) over `HLSService` and its
/// `RecordingLibrary`: media positions from the recording's index, chapters as DATERANGE tags with
/// `X-PRODUCT-ID` / `X-PRODUCT-NAME` (RFC 8216bis §4.4.5.1) and a thumbnail.
struct HLSReplayRecordings: ReplayRecordings {
    let hls: HLSService

    func mediaSeconds(roomId: String, wallClockMs: Int64) -> Double? {
        hls.recordings?.mediaSeconds(roomId: roomId, wallClockMs: wallClockMs)
    }

    func wallClockMs(roomId: String, mediaSeconds: Double) -> Int64? {
        hls.recordings?.wallClockMs(roomId: roomId, mediaSeconds: mediaSeconds)
    }

    func startChapter(roomId: String, id: String, atMs: Int64, productId: String, productName: String?) {
        var attributes = ["X-PRODUCT-ID": productId]
        if let productName { attributes["X-PRODUCT-NAME"] = productName }
        hls.startChapter(roomId: roomId, id: id, atMs: atMs, attributes: attributes)
    }

    func endChapter(roomId: String, id: String, atMs: Int64) {
        hls.endChapter(roomId: roomId, id: id, atMs: atMs)
    }

    func chapterThumbnails(roomId: String) -> [String: String] {
        guard let info = hls.recordings?.info(roomId: roomId) else { return [:] }
        var thumbnails: [String: String] = [:]
        for chapter in info.chapters {
            if let file = chapter.thumbnailFile { thumbnails[chapter.id] = "/hls/\(roomId)/\(file)" }
        }
        return thumbnails
    }
}
