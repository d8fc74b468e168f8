"""Shared helpers for the LiveHub vs nginx-rtmp benchmark: processes, servers, /proc sampling.

Everything binds to 127.0.0.1. Every child runs in its own process group and is killed in
`finally` blocks (see `Proc.stop`). Stdlib only (plus `requests` when available for REST calls).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
CACHE = BENCH / ".cache"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# ---------------------------------------------------------------- processes


class Proc:
    """A child in its own process group, output to a file; `stop()` kills the whole group."""

    ALL = []

    def __init__(self, argv, log_path, env=None, cwd=None):
        self.argv = argv
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "wb")
        self.started = time.time()
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, cwd=cwd, start_new_session=True)
        self.pid = self.p.pid
        Proc.ALL.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=5.0):
        try:
            if self.p.poll() is None:
                try:
                    os.killpg(self.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.p.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            # the group may have stragglers (nginx workers) even when the leader is gone
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        finally:
            try:
                self.log.close()
            except Exception:
                pass
            if self in Proc.ALL:
                Proc.ALL.remove(self)

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def stop_all():
    for p in list(Proc.ALL):
        p.stop(timeout=2)


# ---------------------------------------------------------------- /proc sampling


def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(d))
    return kids


def process_tree(pid):
    kids = _children_map()
    out, stack = [], [pid]
    while stack and len(out) < 1000:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, []))
    return out


def cpu_seconds(pids):
    """utime+stime (+ cutime+cstime of reaped children) summed over `pids`, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        # fields 14..17 of stat → indexes 11..14 of `rest` (which starts at field 3)
        total += sum(int(x) for x in rest[11:15])
    return total / CLK_TCK


def memfd_bytes(pid):
    """Bytes in the process's open memfds. LiveHub keeps finished segments in sealed memfds (to
    sendfile them); that memory is shared memory, not RSS, so it is added to the RSS figures."""
    total = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            if os.readlink(path).startswith("/memfd:"):
                total += os.stat(path).st_size
        except OSError:
            continue
    return total


def rss_mb(pids):
    """Resident memory plus in-memory segment files (memfds) of `pids`, in MB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
        total += memfd_bytes(pid)
    return total / 1e6


def hwm_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
            return int(m.group(1)) / 1e3 if m else 0.0
    except OSError:
        return 0.0


class RssSampler:
    """Samples the summed RSS of a process tree every `interval` seconds in a thread; keeps the max."""

    def __init__(self, root_pid, interval=0.25):
        self.root, self.interval, self.peak = root_pid, interval, 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pids, last_tree = [self.root], 0.0
        while not self._stop.is_set():
            if time.time() - last_tree > 2:
                pids, last_tree = process_tree(self.root), time.time()
            self.peak = max(self.peak, rss_mb(pids))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(timeout=2)


# ---------------------------------------------------------------- HTTP


def http_get(url, timeout=5.0):
    """(status, body bytes) without raising on HTTP errors; (0, b'') on connection errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def http_json(method, url, body=None, headers=None, timeout=10.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


# ---------------------------------------------------------------- servers


class LiveHub:
    name = "livehub"

    def __init__(self, binary, workdir, variant="fmp4-ll", log_level="warning"):
        self.binary, self.variant = str(binary), variant
        self.dir = Path(tempfile.mkdtemp(prefix="lh-", dir=workdir))
        self.http_port, self.rtmp_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
        self.env.update({
            "LIVEHUB_HTTP_HOST": "127.0.0.1", "LIVEHUB_HTTP_PORT": str(self.http_port),
            "LIVEHUB_RTMP_HOST": "127.0.0.1", "LIVEHUB_RTMP_PORT": str(self.rtmp_port),
            "LIVEHUB_DATA_DIR": str(self.dir / "data"), "LIVEHUB_LOG_LEVEL": log_level,
            "LIVEHUB_HLS_VARIANT": variant,
            # The load generators connect from 127.0.0.1 only (up to 100 publishers, 1,000 players
            # blocked on a part): the per-address connection limits (README "Client addresses") are
            # lifted for the bench.
            "LIVEHUB_HTTP_MAX_CONNECTIONS_PER_IP": "0", "LIVEHUB_WS_MAX_CONNECTIONS_PER_IP": "0",
            "LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP": "1000",
            # Dev mode: generated secrets and the sample tokens the benchmarks read from the banner.
            "LIVEHUB_DEV": "1",
        })
        # A/B runs: BENCH_LIVEHUB_ENV="LIVEHUB_X=1 LIVEHUB_Y=2" adds settings to the server's environment.
        for item in os.environ.get("BENCH_LIVEHUB_ENV", "").split():
            key, _, value = item.partition("=")
            self.env[key] = value
        self.proc, self.token = None, None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout=30):
        self.proc = Proc([self.binary], self.dir / "livehub.log", env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.proc.alive():
                raise RuntimeError("livehub exited:\n" + self.proc.output()[-3000:])
            out = self.proc.output()
            m = re.search(r"shop-owner token: (\S+)", out)
            if m and "listening on rtmp" in out and http_get(self.base + "/healthz", 1)[0] == 200:
                self.token = m.group(1)
                return self
            time.sleep(0.1)
        raise RuntimeError("livehub did not start:\n" + self.proc.output()[-3000:])

    def add_stream(self, title):
        """Creates a room; returns (stream key, room id)."""
        status, room = http_json("POST", self.base + "/v1/notifications/live/rooms", {"title": title},
                                 {"Authorization": f"Bearer {self.token}"})
        assert status == 201, room
        return room["streamKey"], room["id"]

    def rtmp_url(self, key, port=None):
        return f"rtmp://127.0.0.1:{port or self.rtmp_port}/live/{key}"

    def playlist_url(self, sid):
        return f"{self.base}/hls/{sid}/media.m3u8"

    def segment_url(self, sid, uri):
        return f"{self.base}/hls/{sid}/{uri}"

    def has_output(self, sid):
        status, body = http_get(self.playlist_url(sid), 3)
        return status == 200 and b"#EXTINF" in body

    def stop(self):
        if self.proc:
            self.proc.stop(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self):
        return self.proc.pid


class Nginx:
    """nginx + libnginx-mod-rtmp, config written into its own temp dir; master + `workers` workers."""

    def __init__(self, workdir, hls=True, workers=2):
        self.hls, self.workers = hls, workers
        self.name = "nginx-rtmp" if hls else "nginx-rtmp (hls off)"
        self.dir = Path(tempfile.mkdtemp(prefix="ngx-", dir=workdir))
        self.http_port, self.rtmp_port = free_port(), free_port()
        self.proc = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.http_port}"

    def write_config(self):
        d = self.dir
        (d / "logs").mkdir(exist_ok=True)
        (d / "hls").mkdir(exist_ok=True)
        hls = (f"hls on; hls_path {d}/hls; hls_nested on; hls_fragment 2s; hls_playlist_length 12s;"
               if self.hls else "hls off;")
        conf = f"""load_module {NGINX_RTMP_MODULE};
daemon off;
master_process on;
worker_processes {self.workers};
user root;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
rtmp {{
  server {{
    listen 127.0.0.1:{self.rtmp_port};
    chunk_size 4096;
    application live {{
      live on;
      {hls}
    }}
  }}
}}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{
    listen 127.0.0.1:{self.http_port};
    location /hls {{
      types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
      root {d};
      add_header Cache-Control no-cache;
    }}
  }}
}}
"""
        (d / "nginx.conf").write_text(conf)

    def start(self, timeout=10):
        self.write_config()
        self.proc = Proc(["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")], self.dir / "logs/stdout.log")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.proc.alive():
                raise RuntimeError("nginx exited:\n" + self.proc.output() + (self.dir / "logs/error.log").read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", self.rtmp_port), 0.5).close()
                socket.create_connection(("127.0.0.1", self.http_port), 0.5).close()
                if len(process_tree(self.proc.pid)) >= 1 + self.workers:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def add_stream(self, title):
        key = "s" + os.urandom(6).hex()
        return key, key

    def rtmp_url(self, key, port=None):
        return f"rtmp://127.0.0.1:{port or self.rtmp_port}/live/{key}"

    def playlist_url(self, sid):
        return f"{self.base}/hls/{sid}/index.m3u8"

    def segment_url(self, sid, uri):
        return f"{self.base}/hls/{sid}/{uri}"

    def has_output(self, sid):
        p = self.dir / "hls" / sid / "index.m3u8"
        try:
            return "#EXTINF" in p.read_text()
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.stop(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self):
        return self.proc.pid


# ---------------------------------------------------------------- publishers and fixtures


def make_fixture(seconds=24):
    """720p30 H.264 (2.5 Mbps CBR-ish, 2 s closed GOP) + AAC, generated once into bench/.cache/."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"fixture-720p30-2500k-g60-{seconds}s.flv"
    if path.exists() and path.stat().st_size > 1_000_000:
        return path
    tmp = path.with_suffix(".tmp.flv")
    log(f"generating fixture {path.name} (~{seconds}s of 720p30, libx264 veryfast)…")
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k",
        "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        "-f", "flv", str(tmp)], check=True, timeout=600)
    tmp.rename(path)
    return path


def publish_file(fixture, url, log_path):
    return Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1",
                 "-i", str(fixture), "-c", "copy", "-f", "flv", url], log_path)


def publish_live(url, log_path, size="1280x720", gop=30):
    """A live source: frames are produced in real time and sent as soon as encoded (no B-frames, no lookahead)."""
    return Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                 "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
                 "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                 "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
                 "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k",
                 "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
                 "-c:a", "aac", "-b:a", "128k", "-ac", "2",
                 "-f", "flv", url], log_path)


# ---------------------------------------------------------------- playlists


def parse_playlist(text):
    """Minimal media-playlist parser: media sequence, segments [(msn, duration, uri, parts)], open parts, hint."""
    msn = 0
    segments, parts, hint = [], [], None
    pending = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            msn = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PART:"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line[len("#EXT-X-PART:"):]))
            parts.append((float(attrs["DURATION"]), attrs["URI"].strip('"'), attrs.get("INDEPENDENT") == "YES"))
        elif line.startswith("#EXTINF:"):
            pending = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            m = re.search(r'URI="([^"]+)"', line)
            hint = m.group(1) if m else None
        elif line and not line.startswith("#"):
            if pending is not None:
                segments.append((msn, pending, line, parts))
                msn += 1
                parts, pending = [], None
    return {"segments": segments, "open_parts": parts, "hint": hint, "next_msn": msn}


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def median(values):
    values = [v for v in values if v is not None]
    return percentile(values, 50) if values else None
