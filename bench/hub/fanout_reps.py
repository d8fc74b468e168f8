#!/usr/bin/env python3
"""The 10k-subscriber fan-out, repeated and alternated with the loopback floor.

This VM's speed per syscall drifts by ±40 % within an hour (the floor's writer CPU per delivery
went 6.7 → 10.7 µs in one morning), so one fan-out run says little on its own. Each repetition here
runs `loopback_floor` (no LiveHub: what this machine's kernel charges for the same fan-out) and
then `stomp_fanout.py` with the C subscribers, back to back; the table shows every pair, the
medians, and LiveHub's p99 as a multiple of the floor's from the same repetition. Both sides'
subscribers use the same read pause (`--read-pause-us`, see bench/hub/README.md).

    python3 bench/hub/fanout_reps.py --bin .build-bench/release/livehub \\
        --native bench/.cache/stompsub --floor bench/.cache/loopback_floor [--reps 3] [--subscribers 10000]

Writes bench/results/hub-fanout-reps.json. Stdlib only.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import hubutil as hu

HERE = Path(__file__).resolve().parent


def run_floor(floor, subscribers, messages, pause_us):
    out = subprocess.run([str(floor), str(subscribers), "2", str(messages), "200", "300", str(pause_us)],
                         check=True, capture_output=True, text=True).stdout

    def pair(label):
        m = re.search(re.escape(label) + r"\s+([\d.]+) / ([\d.]+)", out)
        return (float(m.group(1)), float(m.group(2))) if m else (None, None)

    def one(label):
        m = re.search(re.escape(label) + r"\s+([\d.]+)", out)
        return float(m.group(1)) if m else None

    p50, p99 = pair("delivery latency p50 / p99 ms (all passes)")
    return {"p50_ms": p50, "p99_ms": p99, "spread_median_ms": pair("fan-out spread ms (median / worst pass)")[0],
            "writer_us_per_delivery": one("writer CPU per delivery us"),
            "subscriber_us_per_delivery": one("subscriber CPU per delivery us")}


def run_livehub(args, rep):
    name = f"hub-{args.subscribers // 1000}k-rep{rep}.json"
    cmd = [sys.executable, str(HERE / "stomp_fanout.py"), "--bin", args.bin, "--native", args.native,
           "--native-read-pause-us", str(args.read_pause_us), "--subscribers", str(args.subscribers),
           "--messages", str(args.messages), "--rate", "2", "--skip-throughput", "--out", name]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    f = json.loads((hu.RESULTS / name).read_text())["fanout"]
    deliveries = f.get("deliveries_received") or 0
    r = f.get("native_result") or {}
    return {"p50_ms": f["latency"]["p50_ms"], "p99_ms": f["latency"]["p99_ms"],
            "spread_median_ms": f["fanout_spread_last_minus_first"]["p50_ms"],
            "delivered_pct": f.get("delivery_pct"),
            "server_us_per_delivery": f["phase"]["server_cpu_s"] / deliveries * 1e6 if deliveries else None,
            "subscriber_us_per_delivery": (r.get("cpu_s_after_ready") or 0) / deliveries * 1e6 if deliveries else None,
            "json": name}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--native", required=True, help="bench/.cache/stompsub")
    ap.add_argument("--floor", required=True, help="bench/.cache/loopback_floor")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--messages", type=int, default=30)
    ap.add_argument("--read-pause-us", type=int, default=500)
    args = ap.parse_args()
    reps = []
    for rep in range(1, args.reps + 1):
        hu.log(f"repetition {rep}/{args.reps}: loopback floor")
        floor = run_floor(args.floor, args.subscribers, args.messages, args.read_pause_us)
        hu.log(f"repetition {rep}/{args.reps}: LiveHub, {args.subscribers} STOMP subscribers")
        livehub = run_livehub(args, rep)
        ratio = livehub["p99_ms"] / floor["p99_ms"] if floor["p99_ms"] else None
        reps.append({"floor": floor, "livehub": livehub, "p99_over_floor": ratio})
        hu.log(f"  floor p99 {hu.fmt(floor['p99_ms'])} ms, LiveHub p99 {hu.fmt(livehub['p99_ms'])} ms ({hu.fmt(ratio)}×)")

    def med(side, key):
        values = [r[side][key] for r in reps if r[side].get(key) is not None]
        return statistics.median(values) if values else None

    ratios = [r["p99_over_floor"] for r in reps if r["p99_over_floor"]]
    summary = {
        "livehub_p50_ms": med("livehub", "p50_ms"), "livehub_p99_ms": med("livehub", "p99_ms"),
        "livehub_p99_min_ms": min(r["livehub"]["p99_ms"] for r in reps),
        "livehub_p99_max_ms": max(r["livehub"]["p99_ms"] for r in reps),
        "floor_p50_ms": med("floor", "p50_ms"), "floor_p99_ms": med("floor", "p99_ms"),
        "p99_over_floor": statistics.median(ratios) if ratios else None,
        "server_us_per_delivery": med("livehub", "server_us_per_delivery"),
        "floor_writer_us_per_delivery": med("floor", "writer_us_per_delivery"),
        "stompsub_us_per_delivery": med("livehub", "subscriber_us_per_delivery"),
        "floor_subscriber_us_per_delivery": med("floor", "subscriber_us_per_delivery"),
    }
    rows = []
    for i, r in enumerate(reps, 1):
        rows.append((f"rep {i}: LiveHub p50 / p99 ms (floor)",
                     f"{hu.fmt(r['livehub']['p50_ms'])} / {hu.fmt(r['livehub']['p99_ms'])} "
                     f"({hu.fmt(r['floor']['p50_ms'])} / {hu.fmt(r['floor']['p99_ms'])}), {hu.fmt(r['p99_over_floor'])}×"))
    rows += [
        ("median LiveHub p50 / p99 ms", f"{hu.fmt(summary['livehub_p50_ms'])} / {hu.fmt(summary['livehub_p99_ms'])}"),
        ("LiveHub p99 range ms", f"{hu.fmt(summary['livehub_p99_min_ms'])} – {hu.fmt(summary['livehub_p99_max_ms'])}"),
        ("median floor p50 / p99 ms", f"{hu.fmt(summary['floor_p50_ms'])} / {hu.fmt(summary['floor_p99_ms'])}"),
        ("median LiveHub p99 / floor p99", hu.fmt(summary["p99_over_floor"])),
        ("server CPU µs per delivery (floor writer)", f"{hu.fmt(summary['server_us_per_delivery'])} ({hu.fmt(summary['floor_writer_us_per_delivery'])})"),
        ("subscriber CPU µs per delivery (floor's)", f"{hu.fmt(summary['stompsub_us_per_delivery'])} ({hu.fmt(summary['floor_subscriber_us_per_delivery'])})"),
    ]
    hu.print_table(f"{args.subscribers} STOMP subscribers, 2 chats/s, {args.reps} repetitions alternating with the loopback floor", rows)
    path = hu.write_json("hub-fanout-reps.json", {"args": vars(args), "summary": summary, "repetitions": reps})
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
