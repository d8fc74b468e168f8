public import NIOCore

/// How many bytes a publishing connection's socket should hold before the kernel wakes the event
/// loop: its `SO_RCVLOWAT` (socket(7); TCP honours it in `poll`/`epoll` and skips the wake-up for
/// smaller arrivals).
///
/// Why: an encoder writes every audio and video packet as it is due, ~75 small writes a second
/// for 30 fps + AAC, and without a mark each one wakes the loop: a context switch, a `read`, a TCP
/// ACK through the stack, one pass through the chunk decoder. That per-wake-up cost, not the bytes,
/// was most of the CPU of an ingested 2.5 Mbps stream. With the mark at `window` worth of the
/// stream's measured rate, an audio packet waits in the kernel for the next video frame and the
/// two are read together: less than half the wake-ups, and CPU per 2.5 Mbps stream from 0.63 to
/// ~0.3 % of a core measured here (README "Performance"), at a cost of at most one frame interval
/// of added delay on the audio that waited (the frame closing an LL-HLS part: +13 ms at p50).
/// Video frames (what parts and segments are cut on) are larger than the mark and wake at once.
///
/// Bytes below the mark stay in the kernel until more arrive, so the mark is dropped back to 1
/// (which also makes the kernel signal what is waiting right away) whenever a tick saw no data:
/// a stalled publisher's last bytes, or a lone `deleteStream` without a close, are read within
/// one tick. Nothing is held before publishing starts (handshake and commands are small) or for a
/// stream too slow for the mark to be worth it.
public struct ReceiveCoalescing: Sendable {
    /// Stream time the mark is worth at the measured rate; `.zero` disables coalescing.
    public let window: TimeAmount
    /// Largest mark (a very high bitrate gains nothing from more).
    public let maximum: Int
    /// A smaller mark than this is not worth holding bytes for: the mark goes back to 1.
    public let minimum: Int
    /// The mark currently set on the socket (1: every byte wakes the loop, the kernel default).
    public private(set) var current = 1

    public init(window: TimeAmount, maximum: Int = 16 << 10, minimum: Int = 512) {
        self.window = window
        self.maximum = maximum
        self.minimum = minimum
    }

    /// From the connection's periodic tick while publishing: the bytes read since the previous
    /// tick, `elapsed` ago. Returns the new mark to set on the socket, or nil to leave it.
    public mutating func update(bytesSinceLastTick bytes: Int, elapsed: TimeAmount) -> Int? {
        var target = 1
        if bytes > 0, elapsed.nanoseconds > 0, self.window.nanoseconds > 0 {
            let perWindow = Double(bytes) * Double(self.window.nanoseconds) / Double(elapsed.nanoseconds)
            let mark = Int(min(perWindow, Double(self.maximum)))
            if mark >= self.minimum { target = mark }
        }
        // Re-setting costs a syscall; small drifts of the rate are not worth one.
        if target == self.current { return nil }
        if target > 1, self.current > 1, abs(target - self.current) * 8 < self.current { return nil }
        self.current = target
        return target
    }
}
