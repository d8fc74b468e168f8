#!/usr/bin/env python3
"""Issue 21: what recording every live costs, on this machine, A/B in one run.

Each repetition starts LiveHub twice, once with `LIVEHUB_RECORDING=off` and once with it on (the
first one flipping every repetition, so machine drift spreads over both), with `--streams`
publishers of the bench fixture (720p30, ~2.6 Mbit/s, `ffmpeg -re -stream_loop -1 -c copy`):
1. **CPU per stream**: the server's CPU time (utime+stime of every thread, /proc/PID/stat) over
   `--seconds` after `--warmup`, as % of one core per stream; the row's ratio is on/off
   (target ≤ 1.10: recording adds at most 10 %).
2. **Disk bytes per stream-second**: growth of the recordings directory over the same window,
   divided by streams × seconds, against the stream's own bitrate (the fixture's bytes per second
   of media): recording writes what is served, once, so the ratio should be ~1.0. The process's
   `write_bytes` from /proc/PID/io (what reached the block layer) is printed too.

    python3 bench/recording/recording_bench.py --bin .build-bench/release/livehub [--reps 3]

Writes bench/results/recording.json. Stdlib only.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import (REPO, LiveHub, cpu_seconds, log, make_fixture, median, process_tree,  # noqa: E402
                    publish_file, stop_all)

RESULTS = REPO / "bench" / "results"


def directory_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def io_write_bytes(pid):
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except (FileNotFoundError, PermissionError):
        pass
    return None


def media_bytes_per_second(fixture):
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(fixture)],
                           capture_output=True, text=True, check=True)
    return fixture.stat().st_size / float(json.loads(probe.stdout)["format"]["duration"])


def one_run(recording, args, workdir, fixture):
    server = LiveHub(args.bin, workdir)
    server.env["LIVEHUB_RECORDING"] = "on" if recording else "off"
    recordings = server.dir / "data" / "recordings"
    pubs = []
    try:
        server.start()
        streams = [server.add_stream(f"rec bench {i}") for i in range(args.streams)]
        for i, (key, _) in enumerate(streams):
            pubs.append(publish_file(fixture, server.rtmp_url(key), server.dir / f"pub-{i}.log"))
        time.sleep(args.warmup)
        tree = process_tree(server.pid)
        c0, d0, w0, t0 = cpu_seconds(tree), directory_bytes(recordings), io_write_bytes(server.pid), time.time()
        time.sleep(args.seconds)
        tree = process_tree(server.pid)
        c1, d1, w1, t1 = cpu_seconds(tree), directory_bytes(recordings), io_write_bytes(server.pid), time.time()
        failed = sum(1 for p in pubs if not p.alive()) + sum(1 for _, sid in streams if not server.has_output(sid))
        wall = t1 - t0
        return {
            "core_pct_per_stream": 100 * (c1 - c0) / (wall * args.streams),
            "disk_bytes_per_stream_s": (d1 - d0) / (wall * args.streams),
            "io_write_bytes_per_stream_s": (w1 - w0) / (wall * args.streams) if w0 is not None and w1 is not None else None,
            "failed": failed,
        }
    finally:
        for p in pubs:
            p.stop()
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / ".build-bench/release/livehub"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--out", default=str(RESULTS / "recording.json"))
    args = ap.parse_args()
    fixture = make_fixture()
    stream_rate = media_bytes_per_second(fixture)
    raw = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="rec-bench-") as workdir:
        try:
            for rep in range(args.reps):
                order = [False, True] if rep % 2 == 0 else [True, False]
                for recording in order:
                    result = one_run(recording, args, workdir, fixture)
                    raw["on" if recording else "off"].append(result)
                    log(f"rep {rep + 1} recording {'on ' if recording else 'off'}: {result}")
        finally:
            stop_all()
    med = {side: {key: median([r[key] for r in runs]) for key in runs[0]} for side, runs in raw.items()}
    cpu_ratio = med["on"]["core_pct_per_stream"] / med["off"]["core_pct_per_stream"]
    disk_ratio = med["on"]["disk_bytes_per_stream_s"] / stream_rate
    print()
    print(f"Recording, {args.streams} streams of the bench fixture ({stream_rate * 8 / 1e6:.2f} Mbit/s), "
          f"{args.seconds:.0f} s windows, medians of {args.reps} alternating repetitions:")
    print(f"| row | recording off | recording on | ratio | target |")
    print(f"|---|---:|---:|---:|---|")
    print(f"| CPU, % of one core per stream | {med['off']['core_pct_per_stream']:.2f} | {med['on']['core_pct_per_stream']:.2f} "
          f"| {cpu_ratio:.3f} | ≤ 1.10 {'met' if cpu_ratio <= 1.10 else 'NOT met'} |")
    print(f"| recording bytes per stream-second | {med['off']['disk_bytes_per_stream_s']:.0f} | {med['on']['disk_bytes_per_stream_s']:.0f} "
          f"| {disk_ratio:.3f} of the stream's {stream_rate:.0f} B/s | ≈ 1.0 |")
    io_on = med["on"]["io_write_bytes_per_stream_s"]
    if io_on is not None:
        print(f"| /proc write_bytes per stream-second | {med['off']['io_write_bytes_per_stream_s'] or 0:.0f} | {io_on:.0f} | | |")
    failures = sum(r["failed"] for runs in raw.values() for r in runs)
    print(f"failed publishers: {failures}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"streams": args.streams, "seconds": args.seconds, "stream_bytes_per_s": stream_rate,
                                          "medians": med, "cpu_ratio": cpu_ratio, "disk_ratio": disk_ratio, "raw": raw}, indent=2))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
