#!/usr/bin/env python3
"""Profiles LiveHub under the bench load with `perf record` (apt-get install linux-perf).

    python3 bench/profile.py ingest [N] [SECONDS]     # N publishers of the fixture
    python3 bench/profile.py playlist [SECONDS]       # 1 publisher + wrk on media.m3u8
    python3 bench/profile.py segment [SECONDS]        # 1 publisher + wrk on a segment

PERF_FREQ (default 499 Hz) sets the sampling rate. Writes bench/results/perf-<what>.data and prints the top symbols (self time, demangled)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, REPO, LiveHub, http_get, log, make_fixture, parse_playlist, publish_file, stop_all  # noqa: E402


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "ingest"
    args = [float(a) for a in sys.argv[2:]]
    n = int(args[0]) if what == "ingest" and args else (10 if what == "ingest" else 1)
    seconds = (args[1] if len(args) > 1 else 10) if what == "ingest" else (args[0] if args else 8)
    out = BENCH / "results" / f"perf-{what}.data"
    out.parent.mkdir(parents=True, exist_ok=True)
    fixture = make_fixture()
    workdir = tempfile.mkdtemp(prefix="livehub-prof-")
    server = LiveHub(REPO / ".build-bench/release/livehub", workdir)
    pubs, wrk = [], None
    try:
        server.start()
        rooms = [server.add_stream(f"p{i}") for i in range(n)]
        for i, (key, _) in enumerate(rooms):
            pubs.append(publish_file(fixture, server.rtmp_url(key), server.dir / f"pub-{i}.log"))
        time.sleep(6)
        if what != "ingest":
            url = server.playlist_url(rooms[0][1])
            if what == "segment":
                url = server.segment_url(rooms[0][1], parse_playlist(http_get(url)[1].decode())["segments"][-1][2])
            wrk = subprocess.Popen(["wrk", "-t2", "-c100", f"-d{int(seconds) + 2}s", url], stdout=subprocess.PIPE, text=True)
            time.sleep(1)
        log(f"perf record -p {server.pid} for {seconds}s")
        subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", os.environ.get("PERF_FREQ", "499"), "-g", "-p", str(server.pid), "-o", str(out),
                        "--", "sleep", str(seconds)], capture_output=True, timeout=seconds + 60)
        if wrk:
            print(wrk.communicate(timeout=30)[0])
    finally:
        if wrk and wrk.poll() is None:
            wrk.kill()
        for p in pubs:
            p.stop(timeout=2)
        server.stop()
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    rep = subprocess.run(["perf", "report", "-i", str(out), "--no-children", "--stdio", "-g", "none", "--percent-limit", "0.7",
                          "--sort", "dso,symbol"], capture_output=True, text=True, timeout=300).stdout
    dem = subprocess.run(["swift", "demangle", "--simplified"], input=rep, capture_output=True, text=True, timeout=120).stdout
    print("\n".join(l[:220] for l in dem.splitlines() if l and not l.startswith("#"))[:12000])


if __name__ == "__main__":
    main()
