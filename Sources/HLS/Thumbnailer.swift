import CLibAV
import Dispatch
import MediaCore
import NIOCore
import Synchronization

/// Makes `thumbnail.jpg` on demand: decodes a video keyframe with libavcodec (h264 / hevc /
/// libdav1d or av1), scales it with libswscale and encodes a JPEG with the `mjpeg` encoder.
///
/// The packager only hands over each keyframe (`offer`, a reference to bytes it holds anyway).
/// A request decodes the latest keyframe when the JPEG it has is older than `maxAge`, on a serial
/// dispatch queue of the room's own; concurrent requests share one job. A room nobody looks at
/// costs no decoding: decoding every `maxAge` for every stream was ~10 % of the ingest CPU (perf,
/// 10 publishers), more than all of our muxing.
final class Thumbnailer: Sendable {
    private struct Keyframe {
        var config: TrackConfig
        var payload: ByteBuffer
        var serial: Int
    }

    private struct State {
        var latest: Keyframe?
        var jpeg: ByteBuffer?
        var madeAt: ContinuousClock.Instant?
        /// Serial of the last keyframe a job was run for (success or not): never decoded twice.
        var attemptedSerial = 0
        /// Requests waiting for the running job; nil while none runs.
        var waiters: [CheckedContinuation<ByteBuffer?, Never>]?
        var jobs = 0
    }

    private let queue = DispatchQueue(label: "livehub.hls.thumbnailer", qos: .utility)
    private let state = Mutex(State())
    let width: Int
    let maxAge: Duration

    init(width: Int, maxAge: Duration) {
        self.width = max(16, width & ~1)
        self.maxAge = maxAge
    }

    /// Decode jobs run so far.
    var jobsRun: Int { state.withLock { $0.jobs } }

    /// Packager side: the newest keyframe of the video track.
    func offer(config: TrackConfig, keyframe: ByteBuffer) {
        state.withLock { state in
            state.latest = Keyframe(config: config, payload: keyframe, serial: (state.latest?.serial ?? 0) + 1)
        }
    }

    /// A JPEG at most `maxAge` old when a newer keyframe exists, else the last one made; nil before
    /// the first keyframe or when decoding fails.
    func current() async -> ByteBuffer? {
        await withCheckedContinuation { (continuation: CheckedContinuation<ByteBuffer?, Never>) in
            enum Next { case answer(ByteBuffer?), wait, run(Keyframe) }
            let next: Next = state.withLock { state in
                if state.waiters != nil {
                    state.waiters!.append(continuation)
                    return .wait
                }
                guard let latest = state.latest, latest.serial != state.attemptedSerial else { return .answer(state.jpeg) }
                if let madeAt = state.madeAt, state.jpeg != nil, ContinuousClock.now - madeAt < maxAge { return .answer(state.jpeg) }
                state.waiters = [continuation]
                state.attemptedSerial = latest.serial
                state.jobs += 1
                return .run(latest)
            }
            switch next {
            case .answer(let jpeg): continuation.resume(returning: jpeg)
            case .wait: break
            case .run(let keyframe):
                let width = self.width
                queue.async { [self] in
                    let made = Self.makeJPEG(config: keyframe.config, keyframe: keyframe.payload, width: width)
                    let (jpeg, waiters) = state.withLock { state in
                        if let made {
                            state.jpeg = made
                            state.madeAt = .now
                        }
                        let waiters = state.waiters ?? []
                        state.waiters = nil
                        return (state.jpeg, waiters)
                    }
                    for waiter in waiters { waiter.resume(returning: jpeg) }
                }
            }
        }
    }

    /// Decode → scale → JPEG, synchronously. nil when any step fails.
    static func makeJPEG(config: TrackConfig, keyframe: ByteBuffer, width: Int) -> ByteBuffer? {
        guard let frame = decode(config: config, keyframe: keyframe) else { return nil }
        var decoded: UnsafeMutablePointer<AVFrame>? = frame
        defer { av_frame_free(&decoded) }
        let sourceWidth = Int(frame.pointee.width)
        let sourceHeight = Int(frame.pointee.height)
        guard sourceWidth > 0, sourceHeight > 0 else { return nil }
        let targetWidth = min(width, sourceWidth) & ~1
        let targetHeight = max(2, Int((Double(sourceHeight) * Double(targetWidth) / Double(sourceWidth)).rounded()) & ~1)

        guard
            let scaler = sws_getContext(
                Int32(sourceWidth), Int32(sourceHeight), AVPixelFormat(frame.pointee.format),
                Int32(targetWidth), Int32(targetHeight), AV_PIX_FMT_YUVJ420P, Int32(SWS_BILINEAR), nil, nil, nil)
        else { return nil }
        defer { sws_freeContext(scaler) }
        var scaled = av_frame_alloc()
        defer { av_frame_free(&scaled) }
        guard let scaledFrame = scaled else { return nil }
        scaledFrame.pointee.width = Int32(targetWidth)
        scaledFrame.pointee.height = Int32(targetHeight)
        scaledFrame.pointee.format = AV_PIX_FMT_YUVJ420P.rawValue
        guard av_frame_get_buffer(scaledFrame, 0) >= 0 else { return nil }
        guard sws_scale_frame(scaler, scaledFrame, frame) >= 0 else { return nil }
        return encodeJPEG(scaledFrame)
    }

    private static func decode(config: TrackConfig, keyframe: ByteBuffer) -> UnsafeMutablePointer<AVFrame>? {
        let codec: UnsafePointer<AVCodec>?
        switch config.codec {
        case .h264: codec = avcodec_find_decoder(AV_CODEC_ID_H264)
        case .hevc: codec = avcodec_find_decoder(AV_CODEC_ID_HEVC)
        case .av1: codec = avcodec_find_decoder_by_name("libdav1d") ?? avcodec_find_decoder(AV_CODEC_ID_AV1)
        case .aac: return nil
        }
        guard let codec, var context = avcodec_alloc_context3(codec) else { return nil }
        var contextPointer: UnsafeMutablePointer<AVCodecContext>? = context
        defer { avcodec_free_context(&contextPointer) }
        let size = config.extradata.count
        if size > 0, let extradata = av_mallocz(size + Int(livehub_input_buffer_padding_size())) {
            config.extradata.withUnsafeBytes { extradata.copyMemory(from: $0.baseAddress!, byteCount: size) }
            context.pointee.extradata = extradata.assumingMemoryBound(to: UInt8.self)
            context.pointee.extradata_size = Int32(size)
        }
        context.pointee.thread_count = 1
        guard avcodec_open2(context, codec, nil) >= 0 else { return nil }
        context = contextPointer!

        var packet = av_packet_alloc()
        defer { av_packet_free(&packet) }
        guard let packet, av_new_packet(packet, Int32(keyframe.readableBytes)) >= 0 else { return nil }
        keyframe.withUnsafeReadableBytes { bytes in
            if bytes.count > 0 { packet.pointee.data.update(from: bytes.bindMemory(to: UInt8.self).baseAddress!, count: bytes.count) }
        }
        packet.pointee.flags = AV_PKT_FLAG_KEY
        packet.pointee.pts = 0
        packet.pointee.dts = 0
        guard avcodec_send_packet(context, packet) >= 0 else { return nil }
        _ = avcodec_send_packet(context, nil)
        var frame = av_frame_alloc()
        guard let decoded = frame else { return nil }
        if avcodec_receive_frame(context, decoded) >= 0 { return decoded }
        av_frame_free(&frame)
        return nil
    }

    private static func encodeJPEG(_ frame: UnsafeMutablePointer<AVFrame>) -> ByteBuffer? {
        guard let codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG), let context = avcodec_alloc_context3(codec) else {
            return nil
        }
        var contextPointer: UnsafeMutablePointer<AVCodecContext>? = context
        defer { avcodec_free_context(&contextPointer) }
        context.pointee.width = frame.pointee.width
        context.pointee.height = frame.pointee.height
        context.pointee.pix_fmt = AV_PIX_FMT_YUVJ420P
        context.pointee.time_base = AVRational(num: 1, den: 25)
        context.pointee.flags |= AV_CODEC_FLAG_QSCALE
        context.pointee.global_quality = 4 * livehub_ff_qp2lambda()
        guard avcodec_open2(context, codec, nil) >= 0 else { return nil }
        frame.pointee.quality = context.pointee.global_quality
        frame.pointee.pts = 0
        guard avcodec_send_frame(context, frame) >= 0 else { return nil }
        _ = avcodec_send_frame(context, nil)
        var packet = av_packet_alloc()
        defer { av_packet_free(&packet) }
        guard let packet, avcodec_receive_packet(context, packet) >= 0 else { return nil }
        var out = ByteBufferAllocator().buffer(capacity: Int(packet.pointee.size))
        out.writeBytes(UnsafeRawBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size)))
        return out
    }
}
