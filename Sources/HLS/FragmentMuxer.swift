import CLibAV
import MediaCore
import NIOCore

/// A libav error with its message.
public struct LibAVError: Error, CustomStringConvertible {
    public var code: Int32
    public var operation: String
    public init(_ code: Int32, _ operation: String) {
        self.code = code
        self.operation = operation
    }
    public var description: String {
        var buffer = [CChar](repeating: 0, count: 128)
        livehub_av_strerror(code, &buffer, buffer.count)
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(operation): \(text) (\(code))"
    }
}

/// Collects what the AVIO write callback receives.
private final class OutputSink {
    var buffer = ByteBufferAllocator().buffer(capacity: 64 * 1024)

    func take() -> ByteBuffer {
        let out = buffer
        buffer = ByteBufferAllocator().buffer(capacity: max(4096, out.readableBytes))
        return out
    }
}

private let writeCallback: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, Int32) -> Int32 = {
    opaque, data, size in
    guard let opaque, let data, size > 0 else { return size }
    let sink = Unmanaged<OutputSink>.fromOpaque(opaque).takeUnretainedValue()
    sink.buffer.writeBytes(UnsafeRawBufferPointer(start: data, count: Int(size)))
    return size
}

/// One muxer instance per publish session: libavformat's `mp4` muxer in fragmented mode
/// (`movflags=+frag_custom+empty_moov+default_base_moof+frag_discont`, `use_editlist=0`,
/// `avoid_negative_ts=disabled`) or the `mpegts` muxer, writing into
/// memory through a custom AVIO context (PROTOCOLS.md §2). `av_write_frame(oc, NULL)` ends a
/// fragment: one part (LL-HLS) or one segment. Not thread-safe; owned by one packager task.
final class FragmentMuxer {
    enum Container {
        case fragmentedMP4
        case mpegts
    }

    struct Track {
        var config: TrackConfig
        var description: CodecDescription
        /// Used when the sequence header does not give the picture size.
        var fallbackDimensions: VideoDimensions?
    }

    let container: Container
    /// `ftyp`+`moov` (fMP4 only): the `EXT-X-MAP` initialization section.
    private(set) var initSection: ByteBuffer?
    private var context: UnsafeMutablePointer<AVFormatContext>?
    private var io: UnsafeMutablePointer<AVIOContext>?
    private let sink = OutputSink()
    private var streamIndex: [TrackKind: Int32] = [:]
    private var timeBase: [TrackKind: AVRational] = [:]
    private let packet: UnsafeMutablePointer<AVPacket>
    private var needsHeaderResend = false
    /// `avformat_write_header` succeeded: only then may `av_write_trailer` be called (libav's muxers
    /// are not initialised before it; the trailer of a failed header dereferenced a null function
    /// pointer in mov — found by the HLS packager fuzzer with a configuration mov refuses).
    private var headerWritten = false

    init(container: Container, tracks: [Track]) throws {
        self.container = container
        guard let packet = av_packet_alloc() else { throw LibAVError(livehub_averror(ENOMEM), "av_packet_alloc") }
        self.packet = packet
        // On a failure the instance is released and `deinit` tears down what was opened (tearing
        // down here as well freed the packet twice — found by the HLS packager fuzzer).
        try open(tracks: tracks)
    }

    deinit {
        teardown()
    }

    private func open(tracks: [Track]) throws {
        var context: UnsafeMutablePointer<AVFormatContext>?
        let format = container == .mpegts ? "mpegts" : "mp4"
        var result = avformat_alloc_output_context2(&context, nil, format, nil)
        guard result >= 0, let context else { throw LibAVError(result, "avformat_alloc_output_context2") }
        self.context = context

        for track in tracks {
            guard let stream = avformat_new_stream(context, nil) else {
                throw LibAVError(livehub_averror(ENOMEM), "avformat_new_stream")
            }
            let parameters = stream.pointee.codecpar!
            let config = track.config
            switch config.codec {
            case .h264, .hevc, .av1:
                parameters.pointee.codec_type = AVMEDIA_TYPE_VIDEO
                parameters.pointee.codec_id =
                    config.codec == .h264 ? AV_CODEC_ID_H264 : (config.codec == .hevc ? AV_CODEC_ID_HEVC : AV_CODEC_ID_AV1)
                if config.codec == .hevc && container == .fragmentedMP4 {
                    parameters.pointee.codec_tag = livehub_mktag(0x68, 0x76, 0x63, 0x31)  // hvc1
                }
                let dimensions = track.description.dimensions ?? track.fallbackDimensions
                parameters.pointee.width = Int32(dimensions?.width ?? 0)
                parameters.pointee.height = Int32(dimensions?.height ?? 0)
                stream.pointee.time_base = AVRational(num: 1, den: 90000)
            case .aac:
                parameters.pointee.codec_type = AVMEDIA_TYPE_AUDIO
                parameters.pointee.codec_id = AV_CODEC_ID_AAC
                let sampleRate = track.description.sampleRate ?? 48000
                parameters.pointee.sample_rate = Int32(sampleRate)
                av_channel_layout_default(&parameters.pointee.ch_layout, Int32(max(1, track.description.channels ?? 2)))
                parameters.pointee.frame_size = 1024
                stream.pointee.time_base = AVRational(num: 1, den: Int32(sampleRate))
            }
            let size = config.extradata.count
            if size > 0 {
                guard let extradata = av_mallocz(size + Int(livehub_input_buffer_padding_size())) else {
                    throw LibAVError(livehub_averror(ENOMEM), "av_mallocz")
                }
                config.extradata.withUnsafeBytes { extradata.copyMemory(from: $0.baseAddress!, byteCount: size) }
                parameters.pointee.extradata = extradata.assumingMemoryBound(to: UInt8.self)
                parameters.pointee.extradata_size = Int32(size)
            }
            streamIndex[config.kind] = stream.pointee.index
        }

        let bufferSize: Int32 = 64 * 1024
        guard let buffer = av_malloc(Int(bufferSize)) else { throw LibAVError(livehub_averror(ENOMEM), "av_malloc") }
        let opaque = Unmanaged.passUnretained(sink).toOpaque()
        guard let io = livehub_avio_alloc_write_context(buffer.assumingMemoryBound(to: UInt8.self), bufferSize, opaque, writeCallback)
        else {
            av_free(buffer)
            throw LibAVError(livehub_averror(ENOMEM), "avio_alloc_context")
        }
        self.io = io
        context.pointee.pb = io
        context.pointee.flags |= AVFMT_FLAG_CUSTOM_IO

        var options: OpaquePointer?
        switch container {
        case .fragmentedMP4:
            // frag_discont + no edit list + no timestamp shifting: each track's tfdt is exactly its
            // first dts on our timeline, so an audio track that starts a few ms after the video
            // keyframe keeps its offset (mov would otherwise move every track to start at 0).
            // Not `+cmaf`: its negative composition offsets combined with frag_discont shifted the
            // video presentation times by one composition offset (checked with ffprobe, libavformat 59.27).
            av_dict_set(&options, "movflags", "+frag_custom+empty_moov+default_base_moof+frag_discont", 0)
            av_dict_set(&options, "use_editlist", "0", 0)
            av_dict_set(&options, "avoid_negative_ts", "disabled", 0)
        case .mpegts:
            av_dict_set(&options, "mpegts_flags", "resend_headers", 0)
        }
        result = avformat_write_header(context, &options)
        av_dict_free(&options)
        guard result >= 0 else { throw LibAVError(result, "avformat_write_header") }
        headerWritten = true
        avio_flush(io)
        for (kind, index) in streamIndex {
            timeBase[kind] = context.pointee.streams[Int(index)]!.pointee.time_base
        }
        if container == .fragmentedMP4 { initSection = sink.take() }
    }

    /// Queues one sample (timestamps and duration in milliseconds on the output timeline).
    func write(kind: TrackKind, dtsMs: Int64, ptsMs: Int64, durationMs: Int64, isKeyframe: Bool, payload: ByteBuffer) throws {
        guard let context, let index = streamIndex[kind], let timeBase = timeBase[kind] else { return }
        if needsHeaderResend, container == .mpegts {
            av_opt_set(context.pointee.priv_data, "mpegts_flags", "resend_headers", 0)
            needsHeaderResend = false
        }
        let size = payload.readableBytes
        var result = av_new_packet(packet, Int32(size))
        guard result >= 0 else { throw LibAVError(result, "av_new_packet") }
        defer { av_packet_unref(packet) }
        payload.withUnsafeReadableBytes { bytes in
            if size > 0 { packet.pointee.data.update(from: bytes.bindMemory(to: UInt8.self).baseAddress!, count: size) }
        }
        let milliseconds = AVRational(num: 1, den: 1000)
        packet.pointee.stream_index = index
        packet.pointee.dts = av_rescale_q(dtsMs, milliseconds, timeBase)
        packet.pointee.pts = av_rescale_q(ptsMs, milliseconds, timeBase)
        packet.pointee.duration = av_rescale_q(max(0, durationMs), milliseconds, timeBase)
        packet.pointee.flags = isKeyframe ? AV_PKT_FLAG_KEY : 0
        result = av_write_frame(context, packet)
        guard result >= 0 else { throw LibAVError(result, "av_write_frame") }
    }

    /// Ends the current fragment and returns every byte written since the last call.
    func flushFragment() throws -> ByteBuffer {
        guard let context, let io else { return ByteBuffer() }
        let result = av_write_frame(context, nil)
        guard result >= 0 else { throw LibAVError(result, "av_write_frame(flush)") }
        avio_flush(io)
        needsHeaderResend = true
        return sink.take()
    }

    /// Frees the libav objects; runs once, from `deinit`.
    private func teardown() {
        if let context {
            if headerWritten, context.pointee.pb != nil { _ = av_write_trailer(context) }
            avformat_free_context(context)
            self.context = nil
        }
        if io != nil {
            av_freep(&io!.pointee.buffer)
            avio_context_free(&io)
        }
        var packet: UnsafeMutablePointer<AVPacket>? = self.packet
        if packet != nil {
            av_packet_free(&packet)
        }
    }
}
