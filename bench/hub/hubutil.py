"""Shared helpers for the hub/bell load scripts: run the release `livehub`, mint JWTs, sample
/proc, read /metrics, percentiles, tables. Stdlib only; everything on 127.0.0.1."""
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
DEFAULT_BIN = REPO / ".build-load" / "release" / "livehub"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(want, soft)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- JWT

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(secret, claims):
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"


# ---------------------------------------------------------------- /proc

def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def proc_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def self_cpu_s():
    """CPU of this process only (not of reaped children: the server is one of them)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def system_cpu():
    """(busy, total) jiffies for the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


# ---------------------------------------------------------------- server

class Server:
    def __init__(self, binary, log_path, extra_env=None, tmp_parent=None):
        self.binary = str(binary)
        if not Path(self.binary).exists():
            raise SystemExit(f"no binary at {self.binary}; build it: swift build -c release --product livehub --scratch-path .build-load")
        self.tmp = tempfile.mkdtemp(prefix="livehub-hubbench-", dir=tmp_parent)
        self.data_dir = Path(self.tmp) / "data"
        self.data_dir.mkdir()
        self.http_port = free_port()
        self.rtmp_port = free_port()
        self.log_path = Path(log_path)
        self.env = dict(os.environ)
        for k in ("LIVEHUB_JWT_SECRET", "LIVEHUB_INTERNAL_TOKEN"):
            self.env.pop(k, None)
        self.env.update({
            "LIVEHUB_HTTP_HOST": "127.0.0.1", "LIVEHUB_HTTP_PORT": str(self.http_port),
            "LIVEHUB_RTMP_HOST": "127.0.0.1", "LIVEHUB_RTMP_PORT": str(self.rtmp_port),
            "LIVEHUB_DATA_DIR": str(self.data_dir), "LIVEHUB_LOG_LEVEL": "info",
            # Up to 10,000 subscribers, all from 127.0.0.1: the per-address connection limits
            # (README "Client addresses") are off for the bench.
            "LIVEHUB_HTTP_MAX_CONNECTIONS_PER_IP": "0", "LIVEHUB_WS_MAX_CONNECTIONS_PER_IP": "0",
            # Dev mode: the generated secret (tokens are minted from it) and the sample tokens.
            "LIVEHUB_DEV": "1",
        })
        self.env.update(extra_env or {})
        self.proc = None
        self.tokens = {}

    @property
    def base(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout=60):
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"livehub exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as r:
                    if r.status == 200 and "internal token" in self.output():
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("livehub did not become healthy:\n" + self.output()[-3000:])
        text = self.output()
        for name, pattern in [("owner", r"shop-owner token: (\S+)"), ("viewer", r"viewer token:\s+(\S+)"),
                              ("internal", r"internal token:\s+(\S+)")]:
            m = re.search(pattern, text)
            if m:
                self.tokens[name] = m.group(1)
        self.secret = (self.data_dir / "jwt-secret").read_text().strip()
        return self

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mint(self, user_id, username=None, ttl=7200):
        return sign(self.secret, {"sub": user_id, "username": username or user_id, "exp": int(time.time()) + ttl})

    def request(self, method, path, body=None, token=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw and raw[:1] in b"[{" else raw.decode())
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def metrics(self, timeout=60):
        """/metrics text ('' if the server does not answer within `timeout`; the caller records that)."""
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(f"{self.base}/metrics", timeout=timeout) as r:
                text = r.read().decode()
        except (urllib.error.URLError, OSError) as e:
            log(f"/metrics did not answer: {e!r}")
            text = ""
        self.last_metrics_s = time.monotonic() - t0
        return text

    def rss_kib(self):
        return proc_rss_kib(self.pid)

    def cpu_s(self):
        return proc_cpu_s(self.pid)

    def stop(self):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            try:
                self.log.close()
            except Exception:
                pass
            shutil.rmtree(self.tmp, ignore_errors=True)


def hub_metrics(text, prefixes=("livehub_hub_",)):
    """`name{labels} value` lines with one of the prefixes, as {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if any(line.startswith(p) for p in prefixes):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def log_problems(text, limit=20):
    """Warning/error lines of the server log (counted by first 100 chars)."""
    counts = {}
    for line in text.splitlines():
        low = line.lower()
        if any(w in low for w in (" warning", " error", " critical", "fatal", "slow", "dropped")):
            key = line[:160]
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:limit]


# ---------------------------------------------------------------- stats / output

def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def latency_summary_ms(values_us):
    v = sorted(values_us)
    if not v:
        return {"count": 0}
    return {"count": len(v), "p50_ms": percentile(v, 50) / 1000, "p90_ms": percentile(v, 90) / 1000,
            "p99_ms": percentile(v, 99) / 1000, "p999_ms": percentile(v, 99.9) / 1000,
            "max_ms": v[-1] / 1000, "mean_ms": sum(v) / len(v) / 1000}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_table(title, rows):
    print()
    print(title)
    width = max(len(k) for k, _ in rows) + 2
    print("-" * (width + 24))
    for k, v in rows:
        print(f"{k:<{width}}{fmt(v)}")
    print("-" * (width + 24), flush=True)


def write_json(name, payload):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2, sort_keys=False))
    return path
