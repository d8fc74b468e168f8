// LiveHub's own small HLS player for browsers without native HLS: reads the fMP4 media playlist,
// appends the init section (EXT-X-MAP) and then whole segments in order to one MSE SourceBuffer,
// waits for the next segment with LL-HLS blocking reload (_HLS_msn), re-appends the init section on
// a MAP change / discontinuity, trims the buffer, and keeps playback near the live edge.
// A `VOD` or `EVENT` playlist (RFC 8216 §4.3.3.5: the replay's vod.m3u8, the live's dvr.m3u8) is
// played seekable instead: the SourceBuffer runs in `sequence` mode with `timestampOffset` = each
// segment's start in the playlist, so the video's currentTime is the playlist time; a seek outside
// the buffer drops it and fetches the segment holding the target, then the ones after it, at most
// `aheadSeconds` ahead of the playhead.
// `createLivePlayer` picks native HLS when the browser has it (Safari, newer Chromium).

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parseAttributes(text) {
  const attributes = {};
  const re = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g;
  let match;
  while ((match = re.exec(text))) attributes[match[1]] = match[2].replace(/^"|"$/g, '');
  return attributes;
}

/** Parses a multivariant playlist: [{uri, codecs, bandwidth, resolution}]. */
export function parseMultivariant(text, base) {
  const lines = text.split(/\r?\n/);
  const variants = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('#EXT-X-STREAM-INF:')) continue;
    const attributes = parseAttributes(lines[i].slice(18));
    let j = i + 1;
    while (j < lines.length && (lines[j].startsWith('#') || !lines[j].trim())) j++;
    if (j < lines.length) {
      variants.push({ uri: new URL(lines[j].trim(), base).href, codecs: attributes.CODECS || '', bandwidth: Number(attributes.BANDWIDTH) || 0, resolution: attributes.RESOLUTION || '' });
    }
  }
  return variants;
}

/**
 * Parses a media playlist into {targetDuration, mediaSequence, canBlockReload, endList, playlistType,
 * duration, dateRanges: [{ID, CLASS, START-DATE, …}], segments: [{msn, uri, duration, start, pdt, map, discontinuity}]}.
 * `start` is the segment's position in the playlist (sum of the EXTINF before it); `pdt` its
 * EXT-X-PROGRAM-DATE-TIME in ms (or null).
 */
export function parseMediaPlaylist(text, base) {
  const playlist = { targetDuration: 2, mediaSequence: 0, canBlockReload: false, endList: false, segments: [], partTarget: 0, playlistType: '', duration: 0, dateRanges: [] };
  let start = 0;
  let pdt = null;
  let msn = 0;
  let map = null;
  let discontinuity = false;
  let duration = 0;
  let sawSequence = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#EXT-X-TARGETDURATION:')) playlist.targetDuration = Number(line.slice(22)) || 2;
    else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) { playlist.mediaSequence = Number(line.slice(22)) || 0; if (!sawSequence) msn = playlist.mediaSequence; sawSequence = true; }
    else if (line.startsWith('#EXT-X-SERVER-CONTROL:')) playlist.canBlockReload = /CAN-BLOCK-RELOAD=YES/.test(line);
    else if (line.startsWith('#EXT-X-PART-INF:')) playlist.partTarget = Number(parseAttributes(line.slice(16))['PART-TARGET']) || 0;
    else if (line.startsWith('#EXT-X-MAP:')) map = new URL(parseAttributes(line.slice(11)).URI, base).href;
    else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (line.startsWith('#EXTINF:')) duration = parseFloat(line.slice(8)) || 0;
    else if (line === '#EXT-X-ENDLIST') playlist.endList = true;
    else if (line.startsWith('#EXT-X-PLAYLIST-TYPE:')) playlist.playlistType = line.slice(21).trim();
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) { const ms = Date.parse(line.slice(25)); pdt = Number.isFinite(ms) ? ms : null; }
    else if (line.startsWith('#EXT-X-DATERANGE:')) playlist.dateRanges.push(parseAttributes(line.slice(17)));
    else if (!line.startsWith('#')) {
      if (!Number.isFinite(duration) || duration < 0) duration = 0;
      playlist.segments.push({ msn, uri: new URL(line, base).href, duration, start, pdt, map, discontinuity });
      start += duration;
      msn += 1;
      discontinuity = false;
      duration = 0;
      pdt = null;
    }
  }
  playlist.duration = start;
  return playlist;
}

// --- a few ISO-BMFF boxes, to line up timestamps after a discontinuity --------------------------

function boxes(view, start, end, visit) {
  let offset = start;
  while (offset + 8 <= end) {
    let size = view.getUint32(offset);
    const type = String.fromCharCode(view.getUint8(offset + 4), view.getUint8(offset + 5), view.getUint8(offset + 6), view.getUint8(offset + 7));
    let header = 8;
    if (size === 1) { size = Number(view.getBigUint64(offset + 8)); header = 16; } else if (size === 0) size = end - offset;
    if (size < header || offset + size > end) break;
    visit(type, offset + header, offset + size);
    offset += size;
  }
}

/** track_ID → timescale from an init section (moov/trak/tkhd + mdia/mdhd). */
export function trackTimescales(buffer) {
  const view = new DataView(buffer);
  const scales = {};
  boxes(view, 0, view.byteLength, (type, s, e) => {
    if (type !== 'moov') return;
    boxes(view, s, e, (t2, s2, e2) => {
      if (t2 !== 'trak') return;
      let trackId = 0;
      let timescale = 0;
      boxes(view, s2, e2, (t3, s3, e3) => {
        if (t3 === 'tkhd') trackId = view.getUint32(s3 + (view.getUint8(s3) === 1 ? 20 : 12));
        if (t3 === 'mdia') {
          boxes(view, s3, e3, (t4, s4) => {
            if (t4 === 'mdhd') timescale = view.getUint32(s4 + (view.getUint8(s4) === 1 ? 20 : 12));
          });
        }
      });
      if (trackId && timescale) scales[trackId] = timescale;
    });
  });
  return scales;
}

/** Earliest decode time (seconds) of a media segment (moof/traf/tfhd + tfdt), or null. */
export function segmentStartTime(buffer, scales) {
  const view = new DataView(buffer);
  let earliest = null;
  boxes(view, 0, view.byteLength, (type, s, e) => {
    if (type !== 'moof') return;
    boxes(view, s, e, (t2, s2, e2) => {
      if (t2 !== 'traf') return;
      let trackId = 0;
      let time = null;
      boxes(view, s2, e2, (t3, s3) => {
        if (t3 === 'tfhd') trackId = view.getUint32(s3 + 4);
        if (t3 === 'tfdt') time = view.getUint8(s3) === 1 ? Number(view.getBigUint64(s3 + 4)) : view.getUint32(s3 + 4);
      });
      const scale = scales[trackId];
      if (time !== null && scale) {
        const seconds = time / scale;
        if (earliest === null || seconds < earliest) earliest = seconds;
      }
    });
  });
  return earliest;
}

/**
 * The RFC 6381 codecs of an init section ("avc1.64001f,mp4a.40.2"), read from its avcC and mp4a
 * sample entries; null when it has no avcC (a media playlist carries no CODECS attribute).
 */
export function codecsFromInit(buffer) {
  const bytes = new Uint8Array(buffer);
  const find = (tag) => {
    outer: for (let i = 4; i + 4 <= bytes.length; i++) {
      for (let k = 0; k < 4; k++) if (bytes[i + k] !== tag.charCodeAt(k)) continue outer;
      return i;
    }
    return -1;
  };
  const avcC = find('avcC');
  if (avcC < 0 || avcC + 8 > bytes.length) return null;
  const hex = (b) => b.toString(16).padStart(2, '0');
  const codecs = [`avc1.${hex(bytes[avcC + 5])}${hex(bytes[avcC + 6])}${hex(bytes[avcC + 7])}`];
  if (find('mp4a') >= 0) codecs.push('mp4a.40.2');
  return codecs.join(',');
}

// --- the player -------------------------------------------------------------------------------

export class MsePlayer {
  /** @param {HTMLVideoElement} video  @param {string} url index.m3u8 (multivariant) or a media playlist */
  /** startAt (VOD/EVENT only): seconds into the playlist; negative = that far before its end. */
  constructor(video, url, { onState, startAt = 0, aheadSeconds = 30 } = {}) {
    this.video = video;
    this.url = new URL(url, location.href).href;
    this.onState = onState || (() => {});
    this.running = false;
    this.kind = 'mse';
    this.startAt = Number(startAt) || 0;
    this.aheadSeconds = aheadSeconds;
    this.seekable = false;
    this.pendingSeek = null;
  }

  static supported() {
    return typeof window.MediaSource === 'function';
  }

  async start() {
    if (this.running) return;
    this.running = true;
    this.generation = (this.generation || 0) + 1;
    const generation = this.generation;
    try {
      await this.run(generation);
    } catch (error) {
      if (this.generation === generation) {
        console.warn('MSE player stopped:', error);
        this.onState('error', String(error && error.message || error));
      }
    } finally {
      if (this.generation === generation) this.running = false;
    }
  }

  stop() {
    this.running = false;
    this.generation = (this.generation || 0) + 1;
    clearInterval(this.watchdog);
    if (this.onSeeking) { this.video.removeEventListener('seeking', this.onSeeking); this.onSeeking = null; }
    if (this.abort) this.abort.abort();
    if (this.segmentAbort) this.segmentAbort.abort();
    if (this.mediaSource && this.mediaSource.readyState === 'open') {
      try { this.mediaSource.endOfStream(); } catch { /* closed */ }
    }
    if (this.objectURL) {
      this.video.removeAttribute('src');
      this.video.load();
      URL.revokeObjectURL(this.objectURL);
      this.objectURL = null;
    }
  }

  alive(generation) {
    if (!this.running || this.generation !== generation) throw new Error('stopped');
  }

  async get(url, kind, generation) {
    for (let attempt = 0; ; attempt++) {
      this.alive(generation);
      this.abort = new AbortController();
      try {
        const response = await fetch(url, { signal: this.abort.signal, cache: 'no-store' });
        if (response.ok) return kind === 'text' ? await response.text() : await response.arrayBuffer();
        if (response.status === 404 && attempt > 30) throw new Error(`${url} not found`);
      } catch (error) {
        if (error.name === 'AbortError') throw new Error('stopped');
        if (String(error.message).includes('not found')) throw error;
      }
      await sleep(Math.min(2000, 250 * (attempt + 1)));
    }
  }

  async run(generation) {
    this.onState('loading');
    // Multivariant playlist → the first variant and its CODECS.
    const first = await this.get(this.url, 'text', generation);
    let mediaURL = this.url;
    let codecs = 'avc1.42E01E,mp4a.40.2';
    if (first.includes('#EXT-X-STREAM-INF')) {
      const variants = parseMultivariant(first, this.url);
      if (!variants.length) throw new Error('no variant in the playlist');
      mediaURL = variants[0].uri;
      if (variants[0].codecs) codecs = variants[0].codecs;
    }
    this.mime = `video/mp4; codecs="${codecs}"`;
    if (!MediaSource.isTypeSupported(this.mime)) throw new Error(`this browser cannot play ${this.mime}`);

    let playlist = parseMediaPlaylist(await this.get(mediaURL, 'text', generation), mediaURL);
    this.targetDuration = playlist.targetDuration;
    if (playlist.playlistType === 'VOD' || playlist.playlistType === 'EVENT') {
      return this.runSeekable(playlist, mediaURL, first.includes('#EXT-X-STREAM-INF') ? codecs : null, generation);
    }

    const mediaSource = new MediaSource();
    this.mediaSource = mediaSource;
    this.objectURL = URL.createObjectURL(mediaSource);
    this.video.src = this.objectURL;
    await new Promise((resolve) => mediaSource.addEventListener('sourceopen', resolve, { once: true }));
    this.alive(generation);
    const sourceBuffer = mediaSource.addSourceBuffer(this.mime);
    this.sourceBuffer = sourceBuffer;
    this.startWatchdog(playlist);

    // Start a segment behind the newest complete one (about 2 × target duration of latency).
    const segments = playlist.segments;
    let msn = playlist.endList || !segments.length ? playlist.mediaSequence : Math.max(playlist.mediaSequence, segments[segments.length - 1].msn - 1);
    let currentMap = null;
    let scales = {};
    let needsAlignment = false;
    let started = false;

    for (;;) {
      this.alive(generation);
      let segment = playlist.segments.find((s) => s.msn === msn);
      if (!segment) {
        const last = playlist.segments.length ? playlist.segments[playlist.segments.length - 1].msn : playlist.mediaSequence - 1;
        if (msn < playlist.mediaSequence) { // fell out of the window: jump to the live edge
          msn = Math.max(playlist.mediaSequence, last - 1);
          needsAlignment = true;
          continue;
        }
        if (playlist.endList && msn > last) break;
        // Wait for segment `msn`: a blocking reload holds the request until it exists.
        const reload = playlist.canBlockReload && msn <= last + 2 ? `${mediaURL}${mediaURL.includes('?') ? '&' : '?'}_HLS_msn=${msn}` : mediaURL;
        if (!playlist.canBlockReload) await sleep(playlist.targetDuration * 500);
        const text = await this.get(reload, 'text', generation);
        playlist = parseMediaPlaylist(text, mediaURL);
        if (playlist.canBlockReload && msn > last + 2) await sleep(500);
        continue;
      }
      if (segment.map && segment.map !== currentMap) {
        const init = await this.get(segment.map, 'bytes', generation);
        scales = trackTimescales(init);
        await this.append(init, generation);
        currentMap = segment.map;
        needsAlignment = needsAlignment || started;
      }
      if (segment.discontinuity && started) {
        needsAlignment = true;
        if (segment.map === currentMap && currentMap) { // same init, re-append it to reset the parser state
          await this.append(await this.get(currentMap, 'bytes', generation), generation);
        }
      }
      const data = await this.get(segment.uri, 'bytes', generation);
      if (needsAlignment) {
        const startTime = segmentStartTime(data, scales);
        const buffered = sourceBuffer.buffered;
        if (startTime !== null && buffered.length) {
          sourceBuffer.timestampOffset = buffered.end(buffered.length - 1) - startTime;
        }
        needsAlignment = false;
      }
      await this.append(data, generation);
      if (!started && sourceBuffer.buffered.length) {
        started = true;
        this.video.currentTime = sourceBuffer.buffered.start(0);
        this.onState('playing');
        this.video.play().catch(() => this.onState('blocked'));
      }
      msn += 1;
    }
    // EXT-X-ENDLIST and every segment appended.
    if (mediaSource.readyState === 'open') {
      await this.whenIdle();
      try { mediaSource.endOfStream(); } catch { /* already ended */ }
    }
    this.onState('ended');
  }

  // --- VOD / EVENT: seekable playback ---------------------------------------------------------

  /** Seeks a VOD/EVENT playlist to `t` seconds (clamped to the playlist). */
  seek(t) {
    const end = this.playlist ? this.playlist.duration : Infinity;
    this.video.currentTime = Math.max(0, Math.min(Number(t) || 0, Math.max(0, end - 0.05)));
  }

  /** True when `t` is inside a buffered range. */
  isBuffered(t) {
    const buffered = this.sourceBuffer ? this.sourceBuffer.buffered : this.video.buffered;
    for (let i = 0; i < buffered.length; i++) if (t >= buffered.start(i) && t < buffered.end(i) - 0.1) return true;
    return false;
  }

  /** Seconds buffered ahead of `t` in the range that holds it. */
  bufferedAhead(t) {
    const buffered = this.sourceBuffer.buffered;
    for (let i = 0; i < buffered.length; i++) if (t >= buffered.start(i) - 0.1 && t <= buffered.end(i)) return buffered.end(i) - t;
    return 0;
  }

  segmentIndexAt(t) {
    const segments = this.playlist.segments;
    for (let i = segments.length - 1; i >= 0; i--) if (segments[i].start <= t + 0.001) return i;
    return 0;
  }

  async runSeekable(firstPlaylist, mediaURL, codecs, generation) {
    let playlist = firstPlaylist;
    this.playlist = playlist;
    this.seekable = true;
    if (!playlist.segments.length) throw new Error('the playlist has no segment yet');
    const firstInit = playlist.segments[0].map ? await this.get(playlist.segments[0].map, 'bytes', generation) : null;
    this.mime = `video/mp4; codecs="${codecs || (firstInit && codecsFromInit(firstInit)) || 'avc1.42E01E,mp4a.40.2'}"`;
    if (!MediaSource.isTypeSupported(this.mime)) throw new Error(`this browser cannot play ${this.mime}`);

    const mediaSource = new MediaSource();
    this.mediaSource = mediaSource;
    this.objectURL = URL.createObjectURL(mediaSource);
    this.video.src = this.objectURL;
    await new Promise((resolve) => mediaSource.addEventListener('sourceopen', resolve, { once: true }));
    this.alive(generation);
    const sourceBuffer = mediaSource.addSourceBuffer(this.mime);
    this.sourceBuffer = sourceBuffer;
    sourceBuffer.mode = 'sequence'; // every append lands at timestampOffset = the segment's playlist start
    if (playlist.duration > 0) mediaSource.duration = playlist.duration;

    const start = this.startAt < 0 ? Math.max(0, playlist.duration + this.startAt) : Math.min(this.startAt, playlist.duration);
    let index = this.segmentIndexAt(start);
    let currentMap = null;
    let ended = false;
    let started = false;
    this.pendingSeek = null;
    this.onSeeking = () => {
      const t = this.video.currentTime;
      if (!this.isBuffered(t)) {
        this.pendingSeek = t;
        if (this.segmentAbort) this.segmentAbort.abort(); // the segment being fetched is not needed now
      }
    };
    this.video.addEventListener('seeking', this.onSeeking);
    this.startSeekableWatchdog();
    let lastReload = performance.now();

    for (;;) {
      this.alive(generation);
      if (this.pendingSeek !== null) {
        const t = this.pendingSeek;
        this.pendingSeek = null;
        if (!this.isBuffered(t)) {
          await this.whenIdle();
          if (mediaSource.readyState === 'open') sourceBuffer.abort();
          const buffered = sourceBuffer.buffered;
          if (buffered.length) {
            sourceBuffer.remove(0, Math.max(buffered.end(buffered.length - 1), playlist.duration) + 1);
            await this.whenIdle();
          }
          index = this.segmentIndexAt(t);
          currentMap = null; // the parser restarts: init section first
          ended = false;
        }
        continue;
      }
      if (index >= playlist.segments.length) {
        if (playlist.endList) {
          if (!ended && mediaSource.readyState === 'open') {
            await this.whenIdle();
            try { mediaSource.endOfStream(); } catch { /* closed */ }
            ended = true;
            this.onState('complete');
          }
          await sleep(200);
          continue;
        }
        // EVENT playlist still growing: reload it about once per target duration.
        const wait = playlist.targetDuration * 1000 - (performance.now() - lastReload);
        if (wait > 0) { await sleep(Math.min(wait, 250)); continue; }
        lastReload = performance.now();
        const fresh = parseMediaPlaylist(await this.get(mediaURL, 'text', generation), mediaURL);
        if (fresh.segments.length >= playlist.segments.length) {
          playlist = fresh;
          this.playlist = playlist;
          await this.whenIdle();
          if (mediaSource.readyState === 'open' && playlist.duration > mediaSource.duration) mediaSource.duration = playlist.duration;
        }
        continue;
      }
      // Bounded buffer: nothing more than `aheadSeconds` ahead of the playhead.
      if (started && this.bufferedAhead(this.video.currentTime) > this.aheadSeconds) { await sleep(250); continue; }

      const segment = playlist.segments[index];
      let data;
      try {
        if (segment.map && (segment.map !== currentMap || segment.discontinuity)) {
          const init = segment.map === playlist.segments[0].map && firstInit ? firstInit : await this.getSegment(segment.map, generation);
          if (this.pendingSeek !== null) continue;
          await this.append(init, generation);
          currentMap = segment.map;
        }
        data = await this.getSegment(segment.uri, generation);
      } catch (error) {
        if (error.message === 'seek') continue;
        throw error;
      }
      if (this.pendingSeek !== null) continue;
      await this.whenIdle();
      sourceBuffer.timestampOffset = segment.start;
      await this.append(data, generation);
      index += 1;
      if (!started && sourceBuffer.buffered.length) {
        started = true;
        if (!this.isBuffered(this.video.currentTime)) this.video.currentTime = Math.max(start, sourceBuffer.buffered.start(0));
        this.onState('playing');
        this.video.play().catch(() => this.onState('blocked'));
      }
    }
  }

  /** A segment (or init section), aborted by a seek that leaves the buffer ('seek' error). */
  async getSegment(url, generation) {
    for (let attempt = 0; ; attempt++) {
      this.alive(generation);
      const controller = new AbortController();
      this.segmentAbort = controller;
      try {
        const response = await fetch(url, { signal: controller.signal });
        if (response.ok) return await response.arrayBuffer();
        if (response.status === 404 && attempt > 5) throw new Error(`${url} not found`);
      } catch (error) {
        if (error.name === 'AbortError') { this.alive(generation); throw new Error('seek'); }
        if (String(error.message).includes('not found')) throw error;
      }
      await sleep(Math.min(2000, 250 * (attempt + 1)));
    }
  }

  /** Jumps small holes between segments (a segment shorter than its EXTINF); no live-edge catch-up. */
  startSeekableWatchdog() {
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      const video = this.video;
      const buffered = video.buffered;
      if (!buffered.length || video.seeking || video.paused) return;
      const t = video.currentTime;
      if (this.isBuffered(t)) return;
      for (let i = 0; i < buffered.length; i++) {
        if (buffered.start(i) > t && buffered.start(i) - t < 1) { video.currentTime = buffered.start(i) + 0.01; return; }
      }
    }, 500);
  }

  whenIdle() {
    const sb = this.sourceBuffer;
    if (!sb.updating) return Promise.resolve();
    return new Promise((resolve) => sb.addEventListener('updateend', resolve, { once: true }));
  }

  async append(data, generation) {
    const sb = this.sourceBuffer;
    for (let attempt = 0; attempt < 3; attempt++) {
      this.alive(generation);
      await this.whenIdle();
      await this.trim();
      try {
        await new Promise((resolve, reject) => {
          const done = () => { sb.removeEventListener('error', failed); resolve(); };
          const failed = () => { sb.removeEventListener('updateend', done); reject(new Error('append failed')); };
          sb.addEventListener('updateend', done, { once: true });
          sb.addEventListener('error', failed, { once: true });
          sb.appendBuffer(data);
        });
        return;
      } catch (error) {
        if (error.name !== 'QuotaExceededError') throw error;
        await this.trim(5); // buffer full: drop more of the past, then retry
      }
    }
  }

  /** Removes media more than `keep` seconds behind the playhead. */
  async trim(keep = 20) {
    const sb = this.sourceBuffer;
    const buffered = sb.buffered;
    if (!buffered.length) return;
    const removeEnd = this.video.currentTime - keep;
    if (removeEnd - buffered.start(0) < 5) return;
    await this.whenIdle();
    sb.remove(buffered.start(0), removeEnd);
    await this.whenIdle();
  }

  startWatchdog(playlist) {
    clearInterval(this.watchdog);
    const maxLatency = playlist.targetDuration * 4 + 1;
    this.watchdog = setInterval(() => {
      const video = this.video;
      const buffered = video.buffered;
      if (!buffered.length || video.seeking) return;
      const t = video.currentTime;
      let inside = false;
      for (let i = 0; i < buffered.length; i++) {
        if (t >= buffered.start(i) - 0.05 && t < buffered.end(i) - 0.05) inside = true;
      }
      const end = buffered.end(buffered.length - 1);
      if (!inside) { // jump a gap (e.g. around a discontinuity)
        for (let i = 0; i < buffered.length; i++) {
          if (buffered.start(i) > t) { video.currentTime = buffered.start(i) + 0.05; return; }
        }
      }
      if (end - t > maxLatency && !video.paused) video.currentTime = end - playlist.targetDuration; // catch up with the live edge
    }, 500);
  }
}

/** Native HLS (`<video src=index.m3u8>`), retried until the playlist exists. */
export class NativeHlsPlayer {
  constructor(video, url, { onState, startAt = 0 } = {}) {
    this.video = video;
    this.url = url;
    this.startAt = Number(startAt) || 0;
    this.onState = onState || (() => {});
    this.kind = 'native';
    this.running = false;
    this.onError = () => {
      if (!this.running) return;
      this.onState('loading');
      setTimeout(() => { if (this.running) this.load(); }, 2000);
    };
  }

  async start() {
    if (this.running) return;
    this.running = true;
    this.video.addEventListener('error', this.onError);
    await this.load();
  }

  async load() {
    this.onState('loading');
    for (let attempt = 0; this.running; attempt++) {
      try {
        const response = await fetch(this.url, { cache: 'no-store' });
        if (response.ok) break;
      } catch { /* retry */ }
      await sleep(Math.min(2000, 250 * (attempt + 1)));
    }
    if (!this.running) return;
    this.video.src = this.url;
    if (this.startAt) {
      this.video.addEventListener('loadedmetadata', () => {
        const end = Number.isFinite(this.video.duration) ? this.video.duration : (this.video.seekable.length ? this.video.seekable.end(0) : 0);
        this.seek(this.startAt < 0 ? end + this.startAt : this.startAt);
      }, { once: true });
    }
    this.video.addEventListener('playing', () => this.onState('playing'), { once: true });
    this.video.play().catch(() => this.onState('blocked'));
  }

  seek(t) {
    this.video.currentTime = Math.max(0, Number(t) || 0);
  }

  stop() {
    this.running = false;
    this.video.removeEventListener('error', this.onError);
    this.video.removeAttribute('src');
    this.video.load();
  }
}

export function nativeHlsAvailable() {
  return !!document.createElement('video').canPlayType('application/vnd.apple.mpegurl');
}

/**
 * A player for `url` on `video`. mode: 'auto' (native HLS when the browser has it, else MSE),
 * 'native' or 'mse'. startAt: where a VOD/EVENT playlist starts (negative: before its end).
 */
export function createLivePlayer(video, url, { mode = 'auto', onState, startAt = 0 } = {}) {
  const useNative = mode === 'native' || (mode === 'auto' && (nativeHlsAvailable() || !MsePlayer.supported()));
  return useNative ? new NativeHlsPlayer(video, url, { onState, startAt }) : new MsePlayer(video, url, { onState, startAt });
}
