import Logging
import MediaCore
import NIOCore

/// Packages one `LiveStream` into a `SegmentStore`, one event at a time (`handle`), as the
/// stream's sink on the publisher's thread; `PackagerSink` serialises the calls, and the store is
/// the thread-safe hand-off to HTTP requests.
///
/// Per publish session: wait for the sequence headers of the tracks that exist (decided from
/// metadata, configs and the first packets, with a short media-time timeout), open a
/// `FragmentMuxer`, rebase the tracks onto the output timeline (the first session starts at 0, a
/// later one where the previous one ended, so timestamps never run backwards across an
/// `EXT-X-DISCONTINUITY`), give each sample its exact duration (one
/// sample of look-ahead per track), interleave tracks in dts order, and let the `Segmenter` decide
/// where parts and segments end. A new session (`publishStarted(session > 1)`) or a codec change
/// closes the open segment and marks a discontinuity; the next init section becomes a new
/// `EXT-X-MAP` only if its bytes differ.
final class HLSPackager {
    private struct Sample {
        var kind: TrackKind
        var dts: Int64
        var pts: Int64
        var duration: Int64
        var isKeyframe: Bool
        var payload: ByteBuffer
    }

    private struct Session {
        var muxer: FragmentMuxer
        var tracks: [TrackKind: TrackConfig]
        var masterKind: TrackKind
        var timelines: [TrackKind: TrackTimeline]
        var lookahead: [TrackKind: Sample] = [:]
        var queues: [TrackKind: [Sample]] = [:]
        var wallClockStartMs: Int64
        /// Where this session starts on the output timeline, and the end of what it has written.
        var startMs: Int64
        var endMs: Int64
        var videoFrames = 0
        var videoEndMs: Int64 = 0
        var info: SegmentStore.StreamInfo
        /// Payload bytes given to the muxer since the current segment started.
        var segmentBytes = 0
    }

    private enum Phase {
        case idle
        /// Packets held until every expected track has its sequence header, and their payload bytes.
        case discovering([MediaPacket], bytes: Int)
        case muxing(Session)
        /// The publisher was refused (`onLimitExceeded`): nothing is packaged until the next publish.
        case refused
    }

    private let configuration: HLSConfiguration
    private let store: SegmentStore
    private let metrics: HLSMetrics
    private let wallClock: @Sendable () -> Int64
    private var logger: Logger
    /// Asks for the publisher to be disconnected (`LiveStream.refusePublisher`), with the reason.
    private let onLimitExceeded: @Sendable (String) -> Void
    /// A limit the session being muxed just exceeded; acted on once the sample is written.
    private var exceededLimit: String?
    /// Wall-clock times (ms) at which the segments of the last ten seconds ended.
    private var recentSegmentEnds: [Int64] = []

    private var metadata: StreamMetadata?
    private var configs: [TrackKind: TrackConfig] = [:]
    private var phase = Phase.idle
    private var segmenter: Segmenter
    /// Discontinuity requested for the next session's first segment.
    private var discontinuityPending = false
    /// End of the last closed segment on the program-date-time clock: a new session never starts
    /// before it, so EXT-X-PROGRAM-DATE-TIME keeps increasing across reconnects.
    private var programDateTimeEndMs: Int64 = .min
    /// End of the output timeline so far (latest pts + duration of any track). A new session (a
    /// reconnect, a codec change) continues from here instead of restarting at 0: players that
    /// follow timestamps rather than the discontinuity (ffmpeg's HLS demuxer) otherwise realign
    /// the tracks on whichever packet comes first and drop or overlap frames.
    private var timelineEndMs: Int64 = 0

    init(
        configuration: HLSConfiguration, store: SegmentStore, metrics: HLSMetrics,
        wallClock: @escaping @Sendable () -> Int64, logger: Logger,
        onLimitExceeded: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        self.wallClock = wallClock
        self.logger = logger
        self.onLimitExceeded = onLimitExceeded
        let segmenterConfiguration = Segmenter.Configuration(
            targetSegmentDuration: configuration.targetSegmentDuration,
            partTargetDuration: configuration.variant.hasParts ? configuration.partTargetDuration : nil,
            cutsOnKeyframes: true)
        // LL-HLS lists the first parts before the first segment ends, so its EXT-X-TARGETDURATION is
        // declared at once (the configured target); plain variants learn it from the first segment.
        self.segmenter = Segmenter(
            configuration: segmenterConfiguration,
            targetDuration: configuration.variant.hasParts ? segmenterConfiguration.declaredTargetDuration : nil)
    }

    /// Payload bytes held while waiting for sequence headers (bounded by
    /// `configuration.trackDiscoveryBufferBytes` plus the packet that arrived last).
    var discoveryBufferBytes: Int {
        if case .discovering(_, let bytes) = phase { return bytes }
        return 0
    }

    /// The packager is stopped before its stream ended: flush the session and end the playlist.
    func finish() {
        endSession()
        store.end()
    }

    func handle(_ event: StreamEvent) {
        switch event {
        case .publishStarted(let session):
            endSession()
            if session > 1 { discontinuityPending = true }
            metadata = nil
            configs = [:]
            phase = .discovering([], bytes: 0)
        case .metadata(let metadata):
            self.metadata = metadata
        case .config(let config):
            if case .muxing(let session) = phase {
                let changed = session.tracks[config.kind].map { $0 != config } ?? false
                // A track that shows up after the session started (its sequence header came too late
                // for discovery) is added by starting over with a new init section.
                let lateTrack = session.tracks[config.kind] == nil && CodecDescription(config) != nil
                    && !(configuration.variant == .mpegts && config.codec == .av1)
                if changed || lateTrack {
                    logger.info(
                        "track set or codec configuration changed; starting a new init section",
                        metadata: ["kind": "\(config.kind)", "codec": "\(config.codec)"])
                    endSession()
                    discontinuityPending = true
                    phase = .discovering([], bytes: 0)
                }
            }
            configs[config.kind] = config
        case .packet(let packet):
            switch phase {
            case .idle:
                phase = .discovering([], bytes: 0)
                discover(packet)
            case .discovering:
                discover(packet)
            case .muxing(var session):
                phase = .idle
                process(packet, in: &session)
                phase = .muxing(session)
            case .refused:
                break
            }
        case .publishStopped:
            endSession()
        case .ended:
            endSession()
            store.end()
        }
        // One place acts on a limit the event made the session exceed (while writing a sample, or
        // while flushing at a session's end).
        if let reason = exceededLimit { refuse(reason) }
    }

    // MARK: Track discovery

    private func discover(_ packet: MediaPacket) {
        guard case .discovering(var buffer, var bytes) = phase else { return }
        if packet.kind == .video && !packet.isKeyframe && !buffer.contains(where: { $0.kind == .video }) {
            return  // a decoder cannot start mid-GOP
        }
        buffer.append(packet)
        bytes += packet.payload.readableBytes
        // Bounded in packets and in bytes: the oldest go first (a publisher that never sends a
        // sequence header cannot make us hold its stream).
        var dropped = 0
        while dropped < buffer.count - 1,
            buffer.count - dropped > 4000 || bytes > configuration.trackDiscoveryBufferBytes
        {
            bytes -= buffer[dropped].payload.readableBytes
            dropped += 1
        }
        if dropped > 0 { buffer.removeFirst(dropped) }

        var expected = Set(configs.keys).union(buffer.map(\.kind))
        if let metadata {
            if metadata.width != nil || metadata.frameRate != nil || metadata.videoBitrateKbps != nil { expected.insert(.video) }
            if metadata.audioSampleRate != nil || metadata.audioChannels != nil || metadata.audioBitrateKbps != nil {
                expected.insert(.audio)
            }
        }
        let hasVideoKeyframe = buffer.contains { $0.kind == .video && $0.isKeyframe }
        let ready = expected.allSatisfy { kind in
            configs[kind] != nil && (kind != .video || hasVideoKeyframe) && buffer.contains { $0.kind == kind }
        }
        let span = (buffer.map(\.dts).max() ?? 0) - (buffer.map(\.dts).min() ?? 0)
        // A missing sequence header is waited for briefly; a video track whose header is there but
        // whose first keyframe is not is waited for up to one long GOP (never start without it).
        let awaitingKeyframe = configs[.video] != nil && !hasVideoKeyframe
        let timeout = awaitingKeyframe ? max(configuration.trackDiscoveryTimeoutMilliseconds, 10_000) : configuration.trackDiscoveryTimeoutMilliseconds
        guard ready || span >= timeout else {
            phase = .discovering(buffer, bytes: bytes)
            return
        }
        var tracks: [TrackKind: TrackConfig] = [:]
        for kind in expected {
            guard let config = configs[kind], CodecDescription(config) != nil else { continue }
            if kind == .video && !hasVideoKeyframe { continue }
            if configuration.variant == .mpegts && config.codec == .av1 {
                logger.error("AV1 cannot be carried in the MPEG-TS variant; video dropped")
                continue
            }
            if buffer.contains(where: { $0.kind == kind }) { tracks[kind] = config }
        }
        guard !tracks.isEmpty else {
            phase = .discovering(buffer, bytes: bytes)
            return
        }
        let origin: Int64
        if tracks[.video] != nil, let key = buffer.first(where: { $0.kind == .video && $0.isKeyframe }) {
            origin = key.dts
        } else {
            origin = buffer.first { tracks[$0.kind] != nil }?.dts ?? 0
        }
        guard var session = startSession(tracks: tracks, origin: origin) else {
            phase = .discovering([], bytes: 0)
            return
        }
        let videoStart = tracks[.video] != nil ? buffer.first { $0.kind == .video && $0.isKeyframe }?.dts : nil
        for packet in buffer {
            if let videoStart, packet.kind == .audio, packet.dts < videoStart { continue }
            process(packet, in: &session)
        }
        phase = .muxing(session)
    }

    /// A limit was exceeded: close what the session made (the playlist stays valid), stop packaging
    /// this publish, and have the publisher disconnected. Memory stays bounded by the limit plus
    /// the one sample that crossed it.
    private func refuse(_ reason: String) {
        endSession()
        exceededLimit = nil
        phase = .refused
        metrics.packagerErrors.increment()
        logger.warning("refusing the publisher's stream", metadata: ["reason": "\(reason)"])
        onLimitExceeded(reason)
    }

    private func startSession(tracks: [TrackKind: TrackConfig], origin: Int64) -> Session? {
        var muxerTracks: [FragmentMuxer.Track] = []
        var info = SegmentStore.StreamInfo()
        let fallback = metadata.flatMap { m in m.width.flatMap { w in m.height.flatMap { VideoDimensions(plausibleWidth: w, height: $0) } } }
        for kind in [TrackKind.video, .audio] {
            guard let config = tracks[kind], let description = CodecDescription(config) else { continue }
            muxerTracks.append(.init(config: config, description: description, fallbackDimensions: fallback))
            info.codecs.append(description.codecsString)
            if kind == .video {
                info.hasVideo = true
                info.resolution = description.dimensions ?? fallback
            }
        }
        let muxer: FragmentMuxer
        do {
            muxer = try FragmentMuxer(container: configuration.variant == .mpegts ? .mpegts : .fragmentedMP4, tracks: muxerTracks)
        } catch {
            logger.error("cannot open the muxer", metadata: ["error": "\(error)"])
            metrics.packagerErrors.increment()
            return nil
        }
        if let initSection = muxer.initSection { store.setInitSection(initSection) }
        if discontinuityPending {
            store.markDiscontinuity()
            discontinuityPending = false
        }
        store.setStreamInfo(info)
        let masterKind: TrackKind = tracks[.video] != nil ? .video : .audio
        segmenter.configuration.cutsOnKeyframes = masterKind == .video
        var timelines: [TrackKind: TrackTimeline] = [:]
        for kind in tracks.keys {
            let defaultDelta: Int64
            if kind == .video {
                // The announced rate only seeds the first sample's duration (metadata is advisory and
                // was range-checked where it entered); the timestamps decide everything after.
                let announced = metadata?.frameRate.flatMap { StreamMetadata.Plausible.frameRate.contains($0) ? $0 : nil }
                defaultDelta = Int64((1000 / (announced ?? 30)).rounded())
            } else {
                let rate = tracks[kind].flatMap { CodecDescription($0)?.sampleRate } ?? 48000
                defaultDelta = Int64((1024_000 / Double(rate)).rounded())
            }
            timelines[kind] = TrackTimeline(defaultDeltaMs: defaultDelta, origin: origin, base: timelineEndMs)
        }
        logger.info("HLS session started", metadata: ["codecs": "\(info.codecs)"])
        return Session(
            muxer: muxer, tracks: tracks, masterKind: masterKind, timelines: timelines,
            queues: tracks.mapValues { _ in [] }, wallClockStartMs: max(wallClock(), programDateTimeEndMs),
            startMs: timelineEndMs, endMs: timelineEndMs, info: info)
    }

    // MARK: Muxing

    private func process(_ packet: MediaPacket, in session: inout Session) {
        guard exceededLimit == nil, session.tracks[packet.kind] != nil, var timeline = session.timelines[packet.kind] else { return }
        let (dts, pts) = timeline.map(dts: packet.dts, pts: packet.pts)
        session.timelines[packet.kind] = timeline
        // mov refuses pts < dts (no negative composition offsets without edit lists/cmaf).
        let sample = Sample(
            kind: packet.kind, dts: dts, pts: max(pts, dts), duration: timeline.typicalDeltaMs, isKeyframe: packet.isKeyframe,
            payload: packet.payload)
        if var previous = session.lookahead[packet.kind] {
            previous.duration = max(1, dts - previous.dts)
            session.queues[packet.kind, default: []].append(previous)
        }
        session.lookahead[packet.kind] = sample
        drain(&session, flushAll: false)
    }

    /// Writes queued samples in dts order across tracks. A sample leaves the queue once every track
    /// has one queued (or a track lags by more than 500 ms, or at the end of the session).
    private func drain(_ session: inout Session, flushAll: Bool) {
        while true {
            var best: TrackKind?
            var bestDts = Int64.max
            var newest = Int64.min
            var allHaveSamples = true
            for (kind, queue) in session.queues {
                guard let head = queue.first else {
                    allHaveSamples = false
                    continue
                }
                if head.dts < bestDts {
                    bestDts = head.dts
                    best = kind
                }
                newest = max(newest, queue.last!.dts)
            }
            guard let kind = best else { return }
            guard flushAll || allHaveSamples || newest - bestDts > 500 else { return }
            let sample = session.queues[kind]!.removeFirst()
            write(sample, in: &session)
        }
    }

    private func write(_ sample: Sample, in session: inout Session) {
        if sample.kind == session.masterKind {
            let events = segmenter.willWrite(timeMs: sample.dts, durationMs: sample.duration, isKeyframe: sample.isKeyframe)
            apply(events, in: &session)
        }
        session.segmentBytes += sample.payload.readableBytes
        if session.segmentBytes > configuration.maxSegmentBytes, exceededLimit == nil {
            exceededLimit = "a segment of more than \(configuration.maxSegmentBytes) bytes (LIVEHUB_HLS_MAX_SEGMENT_BYTES)"
        }
        do {
            try session.muxer.write(
                kind: sample.kind, dtsMs: sample.dts, ptsMs: sample.pts, durationMs: sample.duration,
                isKeyframe: sample.isKeyframe, payload: sample.payload)
        } catch {
            metrics.packagerErrors.increment()
            logger.warning("sample not muxed", metadata: ["error": "\(error)"])
        }
        // pts, not dts: with B-frames the last frames are presented after the last decode time.
        session.endMs = max(session.endMs, sample.pts + sample.duration)
        if sample.kind == .video {
            session.videoFrames += 1
            session.videoEndMs = sample.dts + sample.duration
            if sample.isKeyframe, let config = session.tracks[.video] {
                store.thumbnails.offer(config: config, keyframe: sample.payload)
            }
        }
    }

    private func apply(_ events: [Segmenter.Event], in session: inout Session) {
        for event in events {
            switch event {
            case .partEnded(let span):
                let bytes: ByteBuffer
                do {
                    bytes = try session.muxer.flushFragment()
                } catch {
                    metrics.packagerErrors.increment()
                    logger.error("fragment flush failed", metadata: ["error": "\(error)"])
                    continue
                }
                store.addPart(
                    bytes, duration: span.duration, independent: span.independent,
                    programDateTimeMs: session.wallClockStartMs + span.startMs - session.startMs,
                    targetDuration: segmenter.targetDuration)
                metrics.partsProduced.increment()
            case .segmentEnded(let span):
                var bytes: ByteBuffer?
                if !configuration.variant.hasParts {
                    do {
                        bytes = try session.muxer.flushFragment()
                    } catch {
                        metrics.packagerErrors.increment()
                        logger.error("fragment flush failed", metadata: ["error": "\(error)"])
                        bytes = ByteBuffer()
                    }
                }
                if session.info.hasVideo, session.videoFrames > 1, session.videoEndMs > session.startMs {
                    // FRAME-RATE in the multivariant playlist comes from the stream's own timestamps,
                    // never from what the publisher announced (metadata is advisory); a rate no
                    // real stream has (timestamps forced apart or together) leaves it out.
                    let measured = Double(session.videoFrames) * 1000 / Double(session.videoEndMs - session.startMs)
                    let rounded = (measured * 1000).rounded() / 1000
                    let frameRate = StreamMetadata.Plausible.frameRate.contains(rounded) ? rounded : nil
                    if frameRate != session.info.frameRate {
                        session.info.frameRate = frameRate
                        store.setStreamInfo(session.info)
                    }
                }
                store.closeSegment(
                    duration: span.duration, independent: span.independent, bytes: bytes,
                    programDateTimeMs: session.wallClockStartMs + span.startMs - session.startMs,
                    targetDuration: segmenter.targetDuration)
                programDateTimeEndMs = session.wallClockStartMs + span.startMs - session.startMs + span.durationMs
                metrics.segmentsProduced.increment()
                session.segmentBytes = 0
                noteSegmentEnded()
            }
        }
    }

    /// Segments are cut on media time, so timestamps that jump by a segment per frame would make
    /// a segment (a memory file, a playlist change) per frame: more than `maxSegmentsPerTenSeconds`
    /// ending within ten seconds of wall-clock time refuses the publisher.
    private func noteSegmentEnded() {
        let now = wallClock()
        recentSegmentEnds.append(now)
        let recent = recentSegmentEnds.drop { now - $0 >= 10_000 || $0 > now }
        if recent.count < recentSegmentEnds.count { recentSegmentEnds = Array(recent) }
        if recentSegmentEnds.count > configuration.maxSegmentsPerTenSeconds, exceededLimit == nil {
            exceededLimit = "\(recentSegmentEnds.count) segments within 10 s: the timestamps run far ahead of real time (LIVEHUB_HLS_MAX_SEGMENTS_PER_10S)"
        }
    }

    /// Flushes everything of the current session and closes its last part and segment.
    private func endSession() {
        switch phase {
        case .idle, .refused:
            return
        case .discovering:
            phase = .idle
            return
        case .muxing(var session):
            phase = .idle
            for (kind, sample) in session.lookahead {
                session.queues[kind, default: []].append(sample)
            }
            session.lookahead = [:]
            drain(&session, flushAll: true)
            apply(segmenter.finish(), in: &session)
            timelineEndMs = max(timelineEndMs, session.endMs)
            logger.info("HLS session closed")
        }
    }
}
