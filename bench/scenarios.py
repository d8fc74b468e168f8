"""The three benchmark scenarios. Each function runs ONE repetition against ONE server kind and
returns a flat dict of numbers; run.py alternates servers and repetitions and takes medians."""
import asyncio
import http.client
import re
import subprocess
import threading
import time
from urllib.parse import urlsplit

from common import (LiveHub, Nginx, Proc, RssSampler, cpu_seconds, hwm_mb, log, parse_playlist,
                    percentile, process_tree, publish_file, publish_live, rss_mb, http_get)
from rtmp_proxy import RtmpProxy


def make_server(kind, cfg, workdir):
    if kind == "livehub":
        return LiveHub(cfg.binary, workdir, variant=cfg.variant)
    if kind == "nginx":
        return Nginx(workdir, hls=True, workers=cfg.nginx_workers)
    if kind == "nginx-nohls":
        return Nginx(workdir, hls=False, workers=cfg.nginx_workers)
    raise ValueError(kind)


# ====================================================================== 1. ingest + packaging


def ingest(kind, n, cfg, workdir, fixture):
    server = make_server(kind, cfg, workdir)
    pubs = []
    try:
        server.start()
        time.sleep(0.5)
        tree = process_tree(server.pid)
        idle_rss = rss_mb(tree)
        streams = [server.add_stream(f"bench {i}") for i in range(n)]
        with RssSampler(server.pid) as sampler:
            for i, (key, _) in enumerate(streams):
                pubs.append(publish_file(fixture, server.rtmp_url(key), server.dir / f"pub-{i}.log"))
            time.sleep(cfg.ingest_warmup)
            tree = process_tree(server.pid)
            c0, t0 = cpu_seconds(tree), time.time()
            time.sleep(cfg.ingest_seconds)
            tree = process_tree(server.pid)
            c1, t1 = cpu_seconds(tree), time.time()
        alive = sum(1 for p in pubs if p.alive())
        with_output = sum(1 for _, sid in streams if server.has_output(sid)) if kind != "nginx-nohls" else None
        failed = n - alive
        if with_output is not None:
            failed = max(failed, n - with_output)
        wall = t1 - t0
        cpu = c1 - c0
        peak = sampler.peak
        if kind == "livehub":
            peak = max(peak, hwm_mb(server.pid))
        res = {
            "cpu_s": cpu, "wall_s": wall,
            "cpu_s_per_media_s": cpu / (wall * n),          # CPU-seconds per second of ingested media
            "core_pct_per_stream": 100 * cpu / (wall * n),   # same number, as % of one core per stream
            "cores_total": cpu / wall,
            "idle_rss_mb": idle_rss, "peak_rss_mb": peak,
            "rss_per_stream_mb": (peak - idle_rss) / n,
            "publishers_failed": failed, "publishers_alive": alive, "streams_with_hls": with_output,
        }
        if failed:
            bad = [p for p in pubs if not p.alive()][:2]
            res["publisher_errors"] = [p.output()[-300:] for p in bad]
        return res
    finally:
        for p in pubs:
            p.stop(timeout=2)
        server.stop()


# ====================================================================== 2. latency


class PlaylistWatcher:
    """Follows a media playlist and records when each part/segment is first listed (wall time)."""

    def __init__(self, url):
        u = urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, u.path
        self.conn = None
        self.parts = {}     # (msn, idx) -> (duration, independent, t_listed)
        self.segments = {}  # msn -> (duration, t_listed)
        self.first_playable = None
        self.first_segment = None  # first playlist listing a complete segment (what a plain client needs)

    def get(self, query="", timeout=10):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
                self.conn.request("GET", self.path + query)
                r = self.conn.getresponse()
                body = r.read()
                return r.status, body.decode(errors="replace"), time.time()
            except (OSError, http.client.HTTPException):
                try:
                    self.conn.close()
                except Exception:
                    pass
                self.conn = None
        return 0, "", time.time()

    def observe(self, text, t):
        pl = parse_playlist(text)
        listed_any = False
        for msn, dur, uri, parts in pl["segments"]:
            listed_any = True
            if msn not in self.segments:
                self.segments[msn] = (dur, t)
            for i, (pd, puri, ind) in enumerate(parts):
                self.parts.setdefault(self._part_key(puri, msn, i), (pd, ind, t))
        for i, (pd, puri, ind) in enumerate(pl["open_parts"]):
            listed_any = True
            self.parts.setdefault(self._part_key(puri, pl["next_msn"], i), (pd, ind, t))
        if listed_any and self.first_playable is None:
            self.first_playable = t
        if pl["segments"] and self.first_segment is None:
            self.first_segment = t
        return pl

    @staticmethod
    def _part_key(uri, msn, i):
        m = re.match(r"part-(\d+)-(\d+)\.", uri)
        return (int(m.group(1)), int(m.group(2))) if m else (msn, i)

    def close(self):
        if self.conn:
            self.conn.close()


def _follow(server, kind, sid, watcher, until, blocking):
    """Polls (20 ms) or follows with blocking reload until `until` (wall time)."""
    polls = 0
    hint = None
    while time.time() < until and polls < 100000:
        polls += 1
        query = ""
        if blocking and hint:
            m = re.match(r"part-(\d+)-(\d+)\.", hint)
            if m:
                query = f"?_HLS_msn={m.group(1)}&_HLS_part={m.group(2)}"
        status, text, t = watcher.get(query, timeout=max(1.0, until - time.time() + 1))
        if status == 200:
            pl = watcher.observe(text, t)
            hint = pl["hint"] if blocking else None
            if blocking and hint:
                continue
        time.sleep(0.02)


def _nearest(frames, ts, tol):
    best = None
    for f in frames:
        if best is None or abs(f[0] - ts) < abs(best[0] - ts):
            best = f
    return best if best is not None and abs(best[0] - ts) <= tol else None


def _first_part(url, t_until, out):
    """LL-HLS client start: `media.m3u8?_HLS_msn=0&_HLS_part=0` (blocking reload of the first part),
    retried every 20 ms while the room has no HLS output yet (404); records when the answer lists a part."""
    watcher = PlaylistWatcher(url)
    try:
        while time.time() < t_until:
            status, text, t = watcher.get("?_HLS_msn=0&_HLS_part=0", timeout=5)
            if status == 200 and "#EXT-X-PART:" in text:
                out["t"] = t
                return
            time.sleep(0.02)
    finally:
        watcher.close()


def latency(kind, cfg, workdir, fixture):
    """One run: (a) file publish (2 s GOP) → first LL-HLS part (LiveHub fmp4-ll: a blocking request
    for part 0) and first complete segment listed (a plain HLS client's first playable playlist);
    (b) live source (1 s GOP) → when each keyframe's part/segment is listed and how long after the
    frame that closes it."""
    res = {}
    blocking = kind == "livehub" and cfg.variant == "fmp4-ll"
    # ---- (a) first part / first segment
    server = make_server(kind, cfg, workdir)
    proxy = pub = part_thread = None
    first_part = {}
    try:
        server.start()
        key, sid = server.add_stream("latency a")
        proxy = RtmpProxy(server.rtmp_port, max_seconds=60)
        watcher = PlaylistWatcher(server.playlist_url(sid))
        t_spawn = time.time()
        pub = publish_file(fixture, server.rtmp_url(key, proxy.port), server.dir / "pub-a.log")
        deadline = t_spawn + 15
        if blocking:
            part_thread = threading.Thread(target=_first_part, args=(server.playlist_url(sid), deadline, first_part), daemon=True)
            part_thread.start()
        # A plain client: LiveHub holds a request without directives until the first segment is
        # complete (no polling delay); nginx is polled every 20 ms.
        while time.time() < deadline and watcher.first_segment is None:
            status, text, t = watcher.get("", timeout=5)
            if status == 200:
                watcher.observe(text, t)
            if watcher.first_segment is None:
                time.sleep(0.02)
        watcher.close()
        if part_thread:
            part_thread.join(timeout=max(0.1, deadline - time.time()))
        fv = proxy.obs.first_video_wall
        if watcher.first_segment and fv:
            res["first_segment_from_first_frame_s"] = watcher.first_segment - fv
            res["first_segment_from_spawn_s"] = watcher.first_segment - t_spawn
            res["first_segment_from_connect_s"] = watcher.first_segment - proxy.connected_wall
        else:
            res["first_segment_failed"] = 1
        if blocking:
            if first_part.get("t") and fv:
                res["first_part_from_first_frame_s"] = first_part["t"] - fv
                res["first_part_from_spawn_s"] = first_part["t"] - t_spawn
            else:
                res["first_part_failed"] = 1
    finally:
        if pub:
            pub.stop(timeout=2)
        if proxy:
            proxy.close()
        server.stop()

    # ---- (b) keyframe → listed, with a live encoder
    server = make_server(kind, cfg, workdir)
    proxy = pub = None
    try:
        server.start()
        key, sid = server.add_stream("latency b")
        proxy = RtmpProxy(server.rtmp_port, max_seconds=cfg.latency_seconds + 30)
        watcher = PlaylistWatcher(server.playlist_url(sid))
        pub = publish_live(server.rtmp_url(key, proxy.port), server.dir / "pub-b.log")
        t_start = time.time()
        # wait for the first playlist (blocking for livehub), then follow
        _follow(server, kind, sid, watcher, t_start + cfg.latency_seconds, blocking)
        watcher.close()
        frames = [f for f in proxy.obs.video if f[2] == 1]
        res.update(_latency_analysis(kind, watcher, frames, cfg))
        res.update(_audio_lag(frames, proxy.obs.audio))
    finally:
        if pub:
            pub.stop(timeout=2)
        if proxy:
            proxy.close()
        server.stop()
    return res


def _audio_lag(frames, audio):
    """How long after a video frame arrives the audio covering its timestamp arrives: a packager that
    interleaves tracks in dts order cannot close a part before that."""
    lags, j = [], 0
    for ts, _, _, wall in frames:
        while j < len(audio) and audio[j][0] < ts:
            j += 1
        if j < len(audio):
            lags.append(audio[j][1] - wall)
    return {"audio_after_video_p50_s": percentile(lags, 50), "audio_after_video_p90_s": percentile(lags, 90)}


def _latency_analysis(kind, watcher, frames, cfg):
    out = {}
    if not frames:
        return {"latency_failed": 1}
    keys = [f for f in frames if f[1]]
    base = keys[0][0]  # RTMP ts of the first keyframe = media time 0 of the HLS output
    # media start of each segment from cumulative EXTINF (we follow from segment 0)
    msns = sorted(watcher.segments)
    seg_start, t = {}, 0.0
    if msns and msns[0] != 0 and kind == "livehub":
        return {"latency_failed": 1}
    first = msns[0] if msns else 0
    for msn in range(first, (msns[-1] + 2) if msns else first + 1):
        seg_start[msn] = t
        if msn in watcher.segments:
            t += watcher.segments[msn][0]
    key_lat, cut_lat, unmatched = [], [], 0
    tol = 0.02 * 1000  # frames are 33 ms apart: nearest within 20 ms
    if kind == "livehub" and watcher.parts:
        by_seg = {}
        for (msn, idx), v in watcher.parts.items():
            by_seg.setdefault(msn, {})[idx] = v
        for msn, parts in by_seg.items():
            if msn not in seg_start:
                continue
            m = seg_start[msn]
            for idx in sorted(parts):
                dur, ind, t_listed = parts[idx]
                if idx > 0 and idx - 1 not in parts:
                    break
                if t_listed == watcher.first_playable:  # listed in bulk in the first playlist: when it became available is unknown
                    m += dur
                    continue
                start_ts, end_ts = base + m * 1000, base + (m + dur) * 1000
                if ind:
                    k = _nearest(keys, start_ts, tol)
                    if k:
                        key_lat.append(t_listed - k[3])
                    else:
                        unmatched += 1
                nxt = _nearest(frames, end_ts, tol)
                if nxt:
                    cut_lat.append(t_listed - nxt[3])
                else:
                    unmatched += 1
                m += dur
        out["unit"] = "part"
    else:
        for msn in msns:
            dur, t_listed = watcher.segments[msn]
            m = seg_start[msn]
            if t_listed == watcher.first_playable:
                continue
            k = _nearest(keys, base + m * 1000, tol)
            if k:
                key_lat.append(t_listed - k[3])
            else:
                unmatched += 1
            nxt = _nearest(frames, base + (m + dur) * 1000, tol)
            if nxt:
                cut_lat.append(t_listed - nxt[3])
            else:
                unmatched += 1
        out["unit"] = "segment"
    out.update({
        "keyframe_to_listed_p50_s": percentile(key_lat, 50), "keyframe_to_listed_max_s": max(key_lat) if key_lat else None,
        "close_to_listed_p50_s": percentile(cut_lat, 50), "close_to_listed_p90_s": percentile(cut_lat, 90),
        "close_to_listed_max_s": max(cut_lat) if cut_lat else None,
        "keyframe_samples": len(key_lat), "close_samples": len(cut_lat), "unmatched": unmatched,
        "frames_seen": len(frames),
        "samples_keyframe_to_listed_s": [round(x, 4) for x in key_lat],
        "samples_close_to_listed_s": [round(x, 4) for x in cut_lat],
    })
    return out


# ====================================================================== 3. HLS serving


def parse_wrk(text):
    def num(pattern, scale=None):
        m = re.search(pattern, text)
        if not m:
            return None
        v = float(m.group(1))
        unit = m.group(2) if m.lastindex and m.lastindex >= 2 else ""
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3, "": 1.0}.get(unit, 1.0)
    return {
        "rps": num(r"Requests/sec:\s+([\d.]+)"),
        "mb_s": num(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)"),
        "p99_ms": num(r"\s99%\s+([\d.]+)(us|ms|s|m)\b"),
        "p50_ms": num(r"\s50%\s+([\d.]+)(us|ms|s|m)\b"),
        "non2xx": num(r"Non-2xx or 3xx responses:\s+(\d+)") or 0,
        "socket_errors": sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text)),
    }


def run_wrk(url, cfg, pid):
    tree = process_tree(pid)
    c0 = cpu_seconds(tree)
    p = subprocess.run(["wrk", "-t2", "-c100", f"-d{cfg.wrk_seconds}s", "--latency", url],
                       capture_output=True, text=True, timeout=cfg.wrk_seconds + 30)
    c1 = cpu_seconds(process_tree(pid))
    r = parse_wrk(p.stdout)
    r["server_cpu_s"] = c1 - c0
    r["server_cpu_ms_per_1k_req"] = 1e6 * (c1 - c0) / (r["rps"] * cfg.wrk_seconds) if r.get("rps") else None
    return r


def serving(kind, cfg, workdir, fixture):
    server = make_server(kind, cfg, workdir)
    pub = None
    res = {}
    try:
        server.start()
        key, sid = server.add_stream("serving")
        pub = publish_file(fixture, server.rtmp_url(key), server.dir / "pub.log")
        url = server.playlist_url(sid)
        deadline = time.time() + 20
        segs = []
        while time.time() < deadline:
            status, body = http_get(url, 3)
            if status == 200:
                segs = parse_playlist(body.decode())["segments"]
                if len(segs) >= 2:
                    break
            time.sleep(0.2)
        if len(segs) < 2:
            return {"serving_failed": 1}
        _, body = http_get(url, 3)
        res["playlist_bytes"] = len(body)
        w = run_wrk(url, cfg, server.pid)
        res.update({f"playlist_{k}": v for k, v in w.items()})
        # newest complete segment: it stays downloadable longer than the wrk run on both servers
        segs = parse_playlist(http_get(url, 3)[1].decode())["segments"]
        seg_url = server.segment_url(sid, segs[-1][2])
        status, body = http_get(seg_url, 5)
        res["segment_bytes"] = len(body)
        w = run_wrk(seg_url, cfg, server.pid)
        res.update({f"segment_{k}": v for k, v in w.items()})
        if kind == "livehub" and cfg.variant == "fmp4-ll" and cfg.fanout_clients > 0:
            res.update(asyncio.run(fanout(server.http_port, f"/hls/{sid}/media.m3u8", cfg)))
        return res
    finally:
        if pub:
            pub.stop(timeout=2)
        server.stop()


async def _read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return status, body


async def fanout(port, path, cfg):
    """N keep-alive connections each ask for the next part with a blocking reload; answer times are
    measured from the first answer (≈ the moment the part was ready)."""
    n = cfg.fanout_clients
    conns = []
    sem = asyncio.Semaphore(100)

    async def connect():
        async with sem:
            return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)

    results = await asyncio.gather(*[connect() for _ in range(n)], return_exceptions=True)
    conns = [r for r in results if not isinstance(r, Exception)]
    out = {"fanout_connected": len(conns)}
    spreads_p50, spreads_p99, spreads_max, fails, first_wait = [], [], [], 0, []
    try:
        ctl_r, ctl_w = await asyncio.open_connection("127.0.0.1", port)
        hint = None
        for rnd in range(cfg.fanout_rounds):
            # sync to the start of a part: block on the currently hinted part
            q = ""
            if hint:
                q = "?_HLS_msn=%s&_HLS_part=%s" % hint
            ctl_w.write(f"GET {path}{q} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await ctl_w.drain()
            status, body = await asyncio.wait_for(_read_response(ctl_r), 15)
            m = re.search(rb'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)\.', body)
            if not m:
                continue
            hint = (m.group(1).decode(), m.group(2).decode())
            if rnd == 0:
                continue  # first sync only
            req = f"GET {path}?_HLS_msn={hint[0]}&_HLS_part={hint[1]} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            t_sent0 = time.time()
            for _, w in conns:
                w.write(req)
            await asyncio.gather(*[w.drain() for _, w in conns])
            t_sent = time.time()
            done = []

            async def one(r):
                try:
                    st, _ = await asyncio.wait_for(_read_response(r), 15)
                    return st, time.time()
                except Exception:
                    return 0, time.time()

            answers = await asyncio.gather(*[one(r) for r, _ in conns])
            ok = [t for st, t in answers if st == 200]
            fails += len(answers) - len(ok)
            if not ok:
                continue
            first = min(ok)
            if first < t_sent:
                log(f"  fan-out round {rnd}: first answer came before all requests were sent; round kept but noted")
            spread = [t - first for t in ok]
            spreads_p50.append(percentile(spread, 50))
            spreads_p99.append(percentile(spread, 99))
            spreads_max.append(max(spread))
            first_wait.append(first - t_sent0)
            # next sync: the part after the one just answered (starts a fresh part period)
            hint = (hint[0], str(int(hint[1]) + 1))
        ctl_w.close()
    finally:
        for _, w in conns:
            w.close()
    out.update({
        "fanout_rounds": len(spreads_max),
        "fanout_p50_ms": 1e3 * percentile(spreads_p50, 50) if spreads_p50 else None,
        "fanout_p99_ms": 1e3 * percentile(spreads_p99, 50) if spreads_p99 else None,
        "fanout_max_ms": 1e3 * percentile(spreads_max, 50) if spreads_max else None,
        "fanout_failed": fails,
        "fanout_wait_first_ms": 1e3 * percentile(first_wait, 50) if first_wait else None,
    })
    return out
