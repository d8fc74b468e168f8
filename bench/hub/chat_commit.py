#!/usr/bin/env python3
"""Committed chats/s with `synchronous=FULL` (what LiveHub runs with) against `NORMAL` (before).

Issue 17 §5: a chat line that was broadcast must survive a power cut, so every commit now syncs the
WAL (`PRAGMA synchronous=FULL`); the chat's group commit puts all lines that arrive during one
commit into the next, so a busy room still costs one sync per batch. This measures what FULL costs:
`--users` signed-in users each chat at the server's rate limit (5/s) into one room over STOMP for
`--seconds`; the SQLite rows are counted every 50 ms while it runs, and committed chats/s is the
chats sent over the time from the first send until the last one is committed (the offered rate
while the server keeps up, its commit capacity once it does not). Every SEND carries a `receipt`, which the server answers only once the line is committed and
broadcast: send → RECEIPT is the latency a chatting user sees. The load generator's own CPU is
reported: at 100 % of a core it, not the server, would set the pace. The two modes alternate, a fresh
server each run (`LIVEHUB_SQLITE_SYNCHRONOUS=NORMAL|FULL`), the first mode flipping every
repetition, so that machine drift spreads over both.

    python3 bench/hub/chat_commit.py --bin .build-bench/release/livehub [--reps 3] [--users 200,1000] [--seconds 10]

Two loads by default: 200 users (1,000 chats/s, which the server keeps up with: the latency shows
what a sync per commit costs) and 1,000 users (5,000/s, more than this 2-core machine commits:
committed chats/s is the capacity).

The data directory is under bench/.cache (on the disk the repository is on: on a tmpfs, a sync
would cost nothing and the comparison would be void; the script refuses one). Writes
bench/results/chat-commit.json. Stdlib only.
"""
import argparse
import array
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubutil as hu  # noqa: E402
import stomp_fanout as sf  # noqa: E402

MODES = ("NORMAL", "FULL")


def filesystem_type(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True).stdout
    return out.strip()


class Ack:
    """Stands in for the future `StompConn` resolves on a RECEIPT: records send → RECEIPT."""

    __slots__ = ("sent_ns", "latencies")

    def __init__(self, sent_ns, latencies):
        self.sent_ns, self.latencies = sent_ns, latencies

    def done(self):
        return False

    def set_result(self, _):
        self.latencies.append((time.monotonic_ns() - self.sent_ns) // 1000)

    def set_exception(self, _):
        pass


async def commit_phase(args, server, room_id):
    """`args.users` users at 5/s into `room_id` for `args.seconds`; the rows are counted while it runs.

    Each SEND carries a `receipt`: the server answers the RECEIPT only after the line is committed
    (and broadcast), so send → RECEIPT is what a chatting user waits for. Committed chats/s =
    chats sent / time from the first send until the last row is committed: the offered rate while
    the server keeps up, its capacity once it does not."""
    users = []
    sem = asyncio.Semaphore(50)

    async def connect(i):
        async with sem:
            users.append(await sf.StompConn().open("127.0.0.1", server.http_port, token=server.mint(f"cc-user-{i}", f"cc {i}")))

    await asyncio.gather(*(connect(i) for i in range(args.users)))
    loop = asyncio.get_running_loop()
    before = await loop.run_in_executor(None, sf.count_chats, server, room_id) or 0
    metrics_before = hu.hub_metrics(server.metrics())
    timeline = []  # (seconds since the first send, rows committed)
    done = asyncio.Event()
    acks = array.array("q")

    async def poll_rows(t0):
        while not done.is_set():
            rows = (await loop.run_in_executor(None, sf.count_chats, server, room_id) or 0) - before
            timeline.append((time.monotonic() - t0, rows))
            await asyncio.sleep(0.05)

    dest = f"/app/live/{room_id}/chat"
    interval = 1.0 / 5.0
    per_user = int(args.seconds * 5)
    schedule = sorted((k * interval + (u / len(users)) * interval, u) for u in range(len(users)) for k in range(per_user))
    cpu_server0, cpu_self0 = server.cpu_s(), hu.self_cpu_s()
    t0 = time.monotonic()
    poller = loop.create_task(poll_rows(t0))
    seq = 0
    for offset, u in schedule:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        body = json.dumps({"message": f"commit bench {seq}"})
        receipt = f"c{seq}"
        users[u].receipts[receipt] = Ack(time.monotonic_ns(), acks)
        users[u].ws.send_text(sf.stomp_frame("SEND", {"destination": dest, "content-type": "application/json",
                                                      "content-length": str(len(body.encode())), "receipt": receipt}, body))
        seq += 1
    t_sent = time.monotonic()
    deadline = t_sent + args.drain_timeout
    while (not timeline or timeline[-1][1] < seq or len(acks) < seq) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    wall = time.monotonic() - t0
    cpu_server, cpu_self = server.cpu_s() - cpu_server0, hu.self_cpu_s() - cpu_self0
    done.set()
    await poller
    committed = timeline[-1][1] if timeline else 0
    first_complete = next((t for t, rows in timeline if rows >= seq), None)
    metrics_after = hu.hub_metrics(server.metrics())
    rate_limited = sum(v - metrics_before.get(k, 0) for k, v in metrics_after.items() if k.startswith("livehub_hub_rate_limited_total"))
    errors = [e for c in users for e in c.errors]
    closed = sum(1 for c in users if c.closed_by_server)
    for c in users:
        c.close()
    send_s = t_sent - t0
    return {
        "users": len(users), "seconds": send_s, "offered": seq, "offered_per_s": seq / send_s,
        "committed": committed, "all_committed_after_s": first_complete,
        "committed_per_s": committed / first_complete if first_complete else None,
        "timeline": timeline[::10], "receipts": len(acks), "ack_latency": hu.latency_summary_ms(acks),
        "server_cpu_pct": 100 * cpu_server / wall, "loadgen_cpu_pct": 100 * cpu_self / wall,
        "rate_limited": rate_limited, "error_frames": len(errors), "error_samples": errors[:3], "closed_by_server": closed,
    }


def run_once(args, mode, data_parent):
    server = hu.Server(args.bin, hu.RESULTS / f"chat-commit-{mode.lower()}-server.log",
                       extra_env={"LIVEHUB_SQLITE_SYNCHRONOUS": mode}, tmp_parent=data_parent)
    result = {"mode": mode}
    try:
        server.start()
        assert f"synchronous={mode}" in server.output(), "the server did not take the synchronous mode"
        status, room = server.request("POST", "/v1/notifications/live/rooms", {"title": f"commit bench {mode}"}, server.tokens["owner"])
        assert status == 201, (status, room)
        result.update(asyncio.run(commit_phase(args, server, room["id"])))
        result["server_log_problems"] = hu.log_problems(server.output())
    finally:
        server.stop()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("LIVEHUB_BIN", str(hu.DEFAULT_BIN)))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--users", default="200,1000",
                    help="comma-separated loads: signed-in users, each chatting at 5/s (the server's limit)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--drain-timeout", type=float, default=30.0)
    ap.add_argument("--out", default="chat-commit.json")
    args = ap.parse_args()
    loads = [int(x) for x in args.users.split(",") if x.strip()]
    hu.raise_nofile(max(loads) + 200)
    data_parent = hu.REPO / "bench" / ".cache" / "chat-commit"
    data_parent.mkdir(parents=True, exist_ok=True)
    fs = filesystem_type(data_parent)
    if fs in ("tmpfs", "ramfs"):
        raise SystemExit(f"{data_parent} is on {fs}: syncs cost nothing there, the comparison would be void")
    runs = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    for rep in range(args.reps):
        order = MODES if rep % 2 == 0 else tuple(reversed(MODES))
        for users in loads:
            for mode in order:
                hu.log(f"rep {rep + 1}/{args.reps}: synchronous={mode}, {users} users × 5/s for {args.seconds}s")
                run = run_once(argparse.Namespace(**{**vars(args), "users": users}), mode, data_parent)
                run["rep"] = rep
                runs.append(run)
                hu.log(f"  committed {run['committed']} of {run['offered']} ({hu.fmt(run['committed_per_s'])}/s; "
                       f"{run['offered_per_s']:.0f}/s offered), send → RECEIPT p50/p99 {run['ack_latency'].get('p50_ms')}/"
                       f"{run['ack_latency'].get('p99_ms')} ms, server CPU {run['server_cpu_pct']:.0f} %, "
                       f"load generator {run['loadgen_cpu_pct']:.0f} %")
    summary = {}
    for users in loads:
        for mode in MODES:
            mine = [r for r in runs if r["mode"] == mode and r["users"] == users]
            summary[f"{users}/{mode}"] = {
                "users": users, "mode": mode,
                "committed_per_s": [r["committed_per_s"] or 0 for r in mine],
                "committed_per_s_median": statistics.median(r["committed_per_s"] or 0 for r in mine),
                "offered_per_s_median": statistics.median(r["offered_per_s"] for r in mine),
                "committed_of_offered_pct_median": statistics.median(100 * r["committed"] / r["offered"] for r in mine),
                "ack_p50_ms_median": statistics.median(r["ack_latency"].get("p50_ms") or 0 for r in mine),
                "ack_p99_ms_median": statistics.median(r["ack_latency"].get("p99_ms") or 0 for r in mine),
                "receipts_missing": sum(r["offered"] - r["receipts"] for r in mine),
                "closed_by_server": sum(r["closed_by_server"] for r in mine),
                "server_cpu_pct_median": statistics.median(r["server_cpu_pct"] for r in mine),
                "loadgen_cpu_pct_median": statistics.median(r["loadgen_cpu_pct"] for r in mine),
                "rate_limited": sum(r["rate_limited"] for r in mine),
                "error_frames": sum(r["error_frames"] for r in mine),
            }
    result = {"benchmark": "chat_commit", "started": started, "args": vars(args), "filesystem": fs,
              "machine": {"cpus": os.cpu_count(), "loadavg_end": os.getloadavg()}, "runs": runs, "summary": summary}
    path = hu.write_json(args.out, result)
    for users in loads:
        rows = []
        for mode in MODES:
            s = summary[f"{users}/{mode}"]
            rows += [
                (f"{mode}: committed chats/s, median ({', '.join(f'{v:.0f}' for v in s['committed_per_s'])})", s["committed_per_s_median"]),
                (f"{mode}: offered chats/s; committed % of offered", f"{hu.fmt(s['offered_per_s_median'])}; {hu.fmt(s['committed_of_offered_pct_median'])} %"),
                (f"{mode}: receipts missing; connections closed by the server", f"{s['receipts_missing']}; {s['closed_by_server']}"),
                (f"{mode}: send → RECEIPT (committed) p50 / p99 ms", f"{hu.fmt(s['ack_p50_ms_median'])} / {hu.fmt(s['ack_p99_ms_median'])}"),
                (f"{mode}: server / load generator CPU %", f"{hu.fmt(s['server_cpu_pct_median'])} / {hu.fmt(s['loadgen_cpu_pct_median'])}"),
            ]
        full, normal = summary[f"{users}/FULL"]["committed_per_s_median"], summary[f"{users}/NORMAL"]["committed_per_s_median"]
        rows.append(("FULL / NORMAL committed chats/s", f"{full / normal:.2f}×" if normal else "-"))
        hu.print_table(f"Chat commits, synchronous NORMAL (before) vs FULL (now) — {users} users × 5/s "
                       f"({users * 5}/s offered), {args.reps} alternating reps, data on {fs}", rows)
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
