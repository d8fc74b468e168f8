#!/usr/bin/env python3
"""LiveHub vs nginx-rtmp on this machine: ingest + packaging, latency, HLS serving (issue #9).

    python3 bench/run.py [--reps 3] [--ns 10,50] [--with-100] [--only ingest,latency,serving] ...

Every scenario runs LiveHub and the reference (nginx + libnginx-mod-rtmp) in the same run,
alternating per repetition (LiveHub first on odd repetitions, the reference first on even ones), and
reports medians. Prints a table and writes bench/results/latest.json (plus a timestamped copy).
CPU is per-process CPU seconds from /proc/PID/stat (utime+stime, summed over nginx's master and
workers), not machine utilisation, because the 2 cores are shared.
"""
import argparse
import atexit
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scenarios  # noqa: E402
from common import BENCH, REPO, log, make_fixture, median, stop_all  # noqa: E402

RESULTS = BENCH / "results"


def machine():
    def cmd(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:
            return "?"
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        mem = f"{int(open('/proc/meminfo').readline().split()[1]) / 1048576:.1f} GiB"
    except Exception:
        pass
    os_name = "?"
    try:
        os_name = [l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")][0]
    except Exception:
        pass
    return {
        "nproc": os.cpu_count(), "cpu_model": model, "memory": mem, "kernel": platform.release(), "os": os_name,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "nginx": cmd("nginx", "-v") or subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "nginx_rtmp_module": cmd("dpkg-query", "-W", "-f=${Version}", "libnginx-mod-rtmp"),
        "ffmpeg": " ".join(cmd("ffmpeg", "-version").split()[:3]),
        "wrk": " ".join((subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout or "?").split()[:2]),
        "swift": (cmd("swift", "--version").splitlines() or ["?"])[0],
        "python": sys.version.split()[0],
        "livehub_git": cmd("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(REPO / ".build-bench/release/livehub"))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", 3)), help="repetitions per scenario (env BENCH_REPS)")
    ap.add_argument("--ns", default="10,50", help="publisher counts for the ingest scenario")
    ap.add_argument("--with-100", action="store_true", help="also run 100 publishers")
    ap.add_argument("--only", default="ingest,latency,serving")
    ap.add_argument("--variant", default="fmp4-ll", choices=["fmp4-ll", "fmp4", "mpegts"])
    ap.add_argument("--ingest-seconds", type=float, default=12.0, help="measurement window per ingest run")
    ap.add_argument("--ingest-warmup", type=float, default=6.0)
    ap.add_argument("--latency-seconds", type=float, default=16.0)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--fanout-clients", type=int, default=1000)
    ap.add_argument("--fanout-rounds", type=int, default=6)
    ap.add_argument("--nginx-workers", type=int, default=os.cpu_count() or 2, help="worker_processes (default: nproc, like 'auto')")
    ap.add_argument("--no-nohls", action="store_true", help="skip the nginx 'hls off' ingest runs")
    ap.add_argument("--out", default=str(RESULTS / "latest.json"))
    cfg = ap.parse_args()
    if not Path(cfg.binary).exists():
        sys.exit(f"no LiveHub binary at {cfg.binary}: run `make bench` (builds it)")
    ns = [int(x) for x in cfg.ns.split(",") if x]
    if cfg.with_100 and 100 not in ns:
        ns.append(100)
    only = set(cfg.only.split(","))
    cfg.binary = Path(cfg.binary)

    def on_signal(sig, frame):
        stop_all()
        sys.exit(130)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(stop_all)

    started = time.time()
    info = machine()
    log("machine:", json.dumps(info))
    fixture = make_fixture()
    workdir = tempfile.mkdtemp(prefix="livehub-bench-")
    raw = {"ingest": {}, "latency": {}, "serving": {}}
    try:
        for rep in range(cfg.reps):
            order = lambda kinds: kinds if rep % 2 == 0 else list(reversed(kinds))  # noqa: E731
            if "ingest" in only:
                kinds = ["livehub", "nginx"] + ([] if cfg.no_nohls else ["nginx-nohls"])
                for n in ns:
                    for kind in order(kinds):
                        log(f"rep {rep + 1}/{cfg.reps} ingest n={n} {kind}")
                        r = scenarios.ingest(kind, n, cfg, workdir, fixture)
                        log("   ", {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
                        raw["ingest"].setdefault(f"{kind}/{n}", []).append(r)
            if "latency" in only:
                for kind in order(["livehub", "nginx"]):
                    log(f"rep {rep + 1}/{cfg.reps} latency {kind}")
                    r = scenarios.latency(kind, cfg, workdir, fixture)
                    log("   ", {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
                    raw["latency"].setdefault(kind, []).append(r)
            if "serving" in only:
                for kind in order(["livehub", "nginx"]):
                    log(f"rep {rep + 1}/{cfg.reps} serving {kind}")
                    r = scenarios.serving(kind, cfg, workdir, fixture)
                    log("   ", {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
                    raw["serving"].setdefault(kind, []).append(r)
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    med = {sc: {k: summarize(v) for k, v in d.items()} for sc, d in raw.items()}
    rows = table_rows(med, ns, cfg)
    info["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    doc = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "duration_s": round(time.time() - started, 1),
        "machine": info, "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "fixture": str(fixture.relative_to(REPO)), "medians": med, "raw": raw, "table": rows,
    }
    print_report(info, rows, cfg, time.time() - started)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    stamped = out.parent / time.strftime("run-%Y%m%d-%H%M%S.json")
    stamped.write_text(out.read_text())
    print(f"\nJSON: {out} (and {stamped.name})")


def summarize(runs):
    keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {k: median([r.get(k) for r in runs]) for k in sorted(keys)}
    out["runs"] = len(runs)
    return out


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def table_rows(med, ns, cfg):
    rows = []

    def row(scenario, lh, ng, target=None, met=None, unit="", fmt="{:.3f}", r=None):
        rows.append({"scenario": scenario, "livehub": lh, "nginx": ng, "ratio": r if r is not None else ratio(lh, ng),
                     "target": target, "met": met, "unit": unit, "fmt": fmt})

    ing = med["ingest"]
    for n in ns:
        lh, ng, nh = ing.get(f"livehub/{n}", {}), ing.get(f"nginx/{n}", {}), ing.get(f"nginx-nohls/{n}", {})
        if not lh and not ng:
            continue
        lc, nc = lh.get("cpu_s_per_media_s"), ng.get("cpu_s_per_media_s")
        rt = ratio(lc, nc)
        row(f"ingest n={n}: CPU per stream, of one core", pct(lc), pct(nc), "≤1.0× nginx", None if rt is None else rt <= 1.0, "%", "{:.2f}")
        row(f"ingest n={n}: CPU-s per wall-s, all streams", mul(lc, n), mul(nc, n), unit="core", fmt="{:.3f}")
        if nh:
            row(f"ingest n={n}: CPU per stream vs nginx hls off (LH packages)", pct(lc), pct(nh.get("cpu_s_per_media_s")), unit="%", fmt="{:.2f}")
        row(f"ingest n={n}: peak RSS", lh.get("peak_rss_mb"), ng.get("peak_rss_mb"), unit="MB", fmt="{:.1f}")
        row(f"ingest n={n}: RSS per stream", lh.get("rss_per_stream_mb"), ng.get("rss_per_stream_mb"), unit="MB", fmt="{:.2f}")
        if nh:
            row(f"ingest n={n}: peak RSS, nginx hls off", lh.get("peak_rss_mb"), nh.get("peak_rss_mb"), unit="MB", fmt="{:.1f}")
        row(f"ingest n={n}: publishers failed (median)", lh.get("publishers_failed"), ng.get("publishers_failed"), unit="", fmt="{:.0f}", r=float("nan"))
    lat = med["latency"]
    lh, ng = lat.get("livehub", {}), lat.get("nginx", {})
    if lh or ng:
        v = lh.get("first_part_from_first_frame_s")
        row("latency: first frame sent → first LL-HLS part (LH; nginx-rtmp has no LL-HLS)", v, None, "≤1.0 s", None if v is None else v <= 1.0, "s")
        row("latency: first frame sent → first segment listed (plain HLS client)", lh.get("first_segment_from_first_frame_s"),
            ng.get("first_segment_from_first_frame_s"), unit="s")
        row("latency: ffmpeg spawn → first segment listed (plain HLS client)", lh.get("first_segment_from_spawn_s"), ng.get("first_segment_from_spawn_s"), unit="s")
        v = lh.get("keyframe_to_listed_p50_s")
        row("latency: keyframe arrives → its part (LH) / segment (nginx) listed, p50", v, ng.get("keyframe_to_listed_p50_s"), "≤0.6 s", None if v is None else v <= 0.6, "s")
        row("latency: keyframe → listed, max", lh.get("keyframe_to_listed_max_s"), ng.get("keyframe_to_listed_max_s"), unit="s")
        row("latency: frame that closes a part/segment arrives → listed, p50", lh.get("close_to_listed_p50_s"), ng.get("close_to_listed_p50_s"), unit="s", fmt="{:.4f}")
        row("latency: audio at a video frame's ts arrives after it, p50 (publisher)", lh.get("audio_after_video_p50_s"), ng.get("audio_after_video_p50_s"), unit="s", fmt="{:.4f}")
        row("latency: closing frame → listed, p90", lh.get("close_to_listed_p90_s"), ng.get("close_to_listed_p90_s"), unit="s", fmt="{:.4f}")
    sv = med["serving"]
    lh, ng = sv.get("livehub", {}), sv.get("nginx", {})
    if lh or ng:
        rt = ratio(lh.get("playlist_rps"), ng.get("playlist_rps"))
        row("serving: live playlist requests/s (wrk -t2 -c100)", lh.get("playlist_rps"), ng.get("playlist_rps"), "≥1.0× nginx", None if rt is None else rt >= 1.0, "req/s", "{:.0f}")
        row("serving: live playlist p99 latency", lh.get("playlist_p99_ms"), ng.get("playlist_p99_ms"), unit="ms", fmt="{:.2f}")
        row("serving: playlist size", lh.get("playlist_bytes"), ng.get("playlist_bytes"), unit="B", fmt="{:.0f}")
        row("serving: playlist, server CPU per 1k requests", lh.get("playlist_server_cpu_ms_per_1k_req"), ng.get("playlist_server_cpu_ms_per_1k_req"), unit="ms", fmt="{:.1f}")
        rt = ratio(lh.get("segment_mb_s"), ng.get("segment_mb_s"))
        row("serving: segment MB/s (wrk -t2 -c100)", lh.get("segment_mb_s"), ng.get("segment_mb_s"), "≥0.8× nginx", None if rt is None else rt >= 0.8, "MB/s", "{:.0f}")
        row("serving: segment requests/s", lh.get("segment_rps"), ng.get("segment_rps"), unit="req/s", fmt="{:.0f}")
        row("serving: segment, server CPU per 1k requests", lh.get("segment_server_cpu_ms_per_1k_req"), ng.get("segment_server_cpu_ms_per_1k_req"), unit="ms", fmt="{:.1f}")
        row("serving: segment p99 latency", lh.get("segment_p99_ms"), ng.get("segment_p99_ms"), unit="ms", fmt="{:.2f}")
        row("serving: segment size", lh.get("segment_bytes"), ng.get("segment_bytes"), unit="B", fmt="{:.0f}")
        if lh.get("fanout_rounds"):
            row(f"fan-out: {cfg.fanout_clients} blocking reloads, first→p50 answer", lh.get("fanout_p50_ms"), None, unit="ms", fmt="{:.1f}")
            row(f"fan-out: {cfg.fanout_clients} blocking reloads, first→p99 answer", lh.get("fanout_p99_ms"), None, unit="ms", fmt="{:.1f}")
            row(f"fan-out: {cfg.fanout_clients} blocking reloads, first→last answer", lh.get("fanout_max_ms"), None, unit="ms", fmt="{:.1f}")
            row("fan-out: failed answers (median per run)", lh.get("fanout_failed"), None, unit="", fmt="{:.0f}")
    return rows


def pct(v):
    return None if v is None else 100 * v


def mul(v, n):
    return None if v is None else v * n


def print_report(info, rows, cfg, elapsed):
    print("\n=== LiveHub vs nginx-rtmp — bench (issue #9: ingest + HLS) ===")
    print(f"machine: {info['nproc']} × {info['cpu_model']}, {info['memory']}, {info['os']}, kernel {info['kernel']}")
    print(f"versions: {info['nginx']} + libnginx-mod-rtmp {info['nginx_rtmp_module']}; {info['ffmpeg']}; {info['wrk']}; {info['swift']}")
    print(f"load avg at start {' '.join(info['loadavg_at_start'])}, end {' '.join(info.get('loadavg_at_end', []))} (cores are shared: CPU is per-process CPU time)")
    print(f"reps={cfg.reps} (medians), LiveHub variant={cfg.variant}, nginx worker_processes={cfg.nginx_workers}, run took {elapsed / 60:.1f} min\n")
    w = max(len(r["scenario"]) for r in rows) if rows else 40
    hdr = f"{'scenario':<{w + 8}}  {'LiveHub':>10}  {'nginx':>10}  {'ratio':>6}  {'target':<12} met?"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        f = r["fmt"]
        lh = "—" if r["livehub"] is None else f.format(r["livehub"])
        ng = "—" if r["nginx"] is None else f.format(r["nginx"])
        rt = "—" if r["ratio"] is None or r["ratio"] != r["ratio"] else f"{r['ratio']:.2f}"
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        unit = f" {r['unit']}" if r["unit"] else ""
        print(f"{(r['scenario'] + unit):<{w + 8}}  {lh:>10}  {ng:>10}  {rt:>6}  {(r['target'] or ''):<12} {met}")
    print("\nnotes: LiveHub always packages HLS (there is no ingest-only mode); the 'hls off' nginx rows show the cost of")
    print("       RTMP ingest alone. nginx latency is polled every 20 ms over HTTP (adds ~10 ms on average); LiveHub is")
    print("       followed with LL-HLS blocking reloads. Latency is measured from the wall time a frame was handed to the")
    print("       server by an in-process RTMP proxy (bench/rtmp_proxy.py). See bench/README.md for definitions.")


if __name__ == "__main__":
    main()
