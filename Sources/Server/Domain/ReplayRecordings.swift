/// The recording of a room as the timeline sees it (issue 21 §3 "One timeline"; contract §2): the
/// media clock of its VOD playlist and its chapters. The Server's HLS recording implements it over
/// `RecordingLibrary`/`HLSService` (`HLSReplayRecordings`); the domain never touches the files.
public protocol ReplayRecordings: Sendable {
    func mediaSeconds(roomId: String, wallClockMs: Int64) -> Double?   // nil: no recording
    func wallClockMs(roomId: String, mediaSeconds: Double) -> Int64?
    func startChapter(roomId: String, id: String, atMs: Int64, productId: String, productName: String?)
    func endChapter(roomId: String, id: String, atMs: Int64)
    /// chapter id → thumbnail URL path ("/hls/{roomId}/chapter-3.jpg"), when made
    func chapterThumbnails(roomId: String) -> [String: String]
}
