#!/usr/bin/env python3
"""Notification bell load: Socket.IO v4 tabs against the release binary.

  python3 bench/hub/bell_load.py --clients 1000 --users 200 [--notifications 1000] [--rate 50]

Opens `--clients` Engine.IO/Socket.IO WebSocket clients (minimal client over bench/hub/wsclient.py:
`0{…}` → `40{"token"}` → `40{"sid"}`, `2` → `3`), each signed in as one of `--users` minted users
(tabs assigned at random, `--clients/--users` per user on average). Then POSTs `--notifications`
notifications to random users through `POST /internal/notifications` at `--rate`/s (from a small
thread pool, keep-alive), each title carrying the monotonic time taken just before the POST, and
measures: connection success, delivery (every tab of the target user must get each push), push
latency (before-POST → receipt), unreadCount consistency, server RSS/CPU, /metrics counters.
Stdlib only. Writes bench/results/bell-latest.json; server log at bench/results/bell-server.log.
"""
import argparse
import array
import asyncio
import concurrent.futures
import http.client
import json
import os
import random
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubutil as hu  # noqa: E402
import wsclient  # noqa: E402

MARK = re.compile(r"bn(\d+)@(\d+)")


class Tab:
    def __init__(self, user, token, stats):
        self.user, self.token, self.stats = user, token, stats
        self.ws = None
        self.ready = None
        self.last_unread = None
        self.received = 0
        self.closed_by_server = False
        self.pings = 0

    async def open(self, port, timeout=20):
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()

        def on_message(payload, t):
            if payload[:1] == b"2":  # engine ping
                self.ws.send_text(b"3")
                self.pings += 1
                return
            if payload[:2] == b"42":
                event, data = json.loads(payload[2:])
                self.stats.events[event] = self.stats.events.get(event, 0) + 1
                if event == "notification:new":
                    m = MARK.match(data.get("title", ""))
                    if m:
                        k = int(m.group(1))
                        self.stats.on_push(self, k, (t - int(m.group(2))) // 1000, data)
                    self.last_unread = data.get("unreadCount")
                elif event == "unreadCount:updated":
                    if self.last_unread is None:
                        self.last_unread = data.get("count")
                return
            if payload[:1] == b"0":  # engine open
                self.ws.send_text("40" + json.dumps({"token": self.token}))
                return
            if payload[:2] == b"40" and not self.ready.done():
                body = json.loads(payload[2:] or b"{}")
                if "sid" in body:
                    self.ready.set_result(True)
                else:
                    self.ready.set_exception(ConnectionError(f"40 without sid: {payload[:100]!r}"))
                return
            if payload[:2] == b"44" and not self.ready.done():
                self.ready.set_exception(ConnectionError(f"connect_error {payload[:150]!r}"))
                return
            if payload[:1] == b"1" or payload[:2] == b"41":
                self.closed_by_server = True

        def on_close(proto):
            self.closed_by_server = True
            if not self.ready.done():
                self.ready.set_exception(ConnectionError(f"closed during connect ({proto.close_code})"))

        def on_open(proto):
            self.ws = proto

        self.ws = await wsclient.connect("127.0.0.1", port, "/socket.io/?EIO=4&transport=websocket", None,
                                         on_message, on_close, timeout, on_open=on_open)
        await asyncio.wait_for(self.ready, timeout)

    def close(self):
        self.closed_by_server = False
        if self.ws:
            self.ws.send_text(b"41")
            self.ws.close()


class Stats:
    def __init__(self):
        self.lat = array.array("q")
        self.recv = {}  # k → tabs that received it
        self.dups = 0
        self.seen = set()
        self.events = {}

    def on_push(self, tab, k, lat_us, data):
        key = (id(tab), k)
        if key in self.seen:
            self.dups += 1
            return
        self.seen.add(key)
        self.lat.append(lat_us)
        self.recv[k] = self.recv.get(k, 0) + 1
        tab.received += 1


def poster(base_port, internal_token):
    local = threading.local()

    def post(k, user):
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", base_port, timeout=30)
        t0 = time.monotonic_ns()
        body = json.dumps({"userId": user, "type": "INFO", "title": f"bn{k}@{t0}", "body": "bench"})
        try:
            conn.request("POST", "/internal/notifications", body,
                         {"Content-Type": "application/json", "Authorization": f"Bearer {internal_token}"})
            r = conn.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException):
            local.conn = None
            status = -1
        return k, status, (time.monotonic_ns() - t0) // 1000
    return post


async def run(args, server, result):
    rng = random.Random(args.seed)
    users = [f"bell-user-{i}" for i in range(args.users)]
    tokens = {u: server.mint(u, u) for u in users}
    stats = Stats()
    assignment = [users[i] if i < len(users) else rng.choice(users) for i in range(args.clients)]  # everyone ≥ 1 tab
    tabs = [Tab(u, tokens[u], stats) for u in assignment]
    tabs_of = {}
    for t in tabs:
        tabs_of.setdefault(t.user, []).append(t)
    rss0, cpu0 = server.rss_kib(), server.cpu_s()
    sem = asyncio.Semaphore(args.connect_concurrency)
    errors = {}
    connected = []

    async def one(tab):
        async with sem:
            try:
                await tab.open(server.http_port)
                connected.append(tab)
            except Exception as e:
                key = type(e).__name__ + ": " + str(e)[:120]
                errors[key] = errors.get(key, 0) + 1
                if tab.ws:
                    tab.ws.close()

    hu.log(f"opening {args.clients} Socket.IO clients for {args.users} users")
    t0 = time.monotonic()
    await asyncio.gather(*(one(t) for t in tabs))
    connect_s = time.monotonic() - t0
    await asyncio.sleep(2.0)
    rss1 = server.rss_kib()
    connected_ids = {id(t) for t in connected}
    live_tabs = {u: [t for t in ts if id(t) in connected_ids] for u, ts in tabs_of.items()}
    hu.log(f"connected {len(connected)}/{args.clients} in {connect_s:.1f}s; server RSS {rss0/1024:.1f} → {rss1/1024:.1f} MiB")
    result.update({
        "clients_requested": args.clients, "clients_connected": len(connected),
        "connection_success_pct": 100.0 * len(connected) / args.clients, "connect_errors": errors,
        "connect_seconds": connect_s, "users": args.users,
        "tabs_per_user_min": min(len(v) for v in tabs_of.values()), "tabs_per_user_max": max(len(v) for v in tabs_of.values()),
        "server_rss_before_connect_kib": rss0, "server_rss_after_connect_kib": rss1,
        "server_rss_per_idle_connection_kib": (rss1 - rss0) / len(connected) if connected else None,
        "server_cpu_s_connect": server.cpu_s() - cpu0,
    })

    # notifications
    result["events_before_push"] = dict(stats.events)
    metrics_before = hu.hub_metrics(server.metrics())
    targets = [rng.choice(users) for _ in range(args.notifications)]
    expected = {k: len(live_tabs[u]) for k, u in enumerate(targets)}
    post = poster(server.http_port, server.tokens["internal"])
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.post_concurrency)
    loop = asyncio.get_running_loop()
    busy0 = hu.system_cpu()
    cpu_s0, self0, t_s0 = server.cpu_s(), hu.self_cpu_s(), time.monotonic()
    peak_rss = rss1
    hu.log(f"posting {args.notifications} notifications at {args.rate}/s ({args.post_concurrency} POST threads)")
    futs = []
    late = 0.0
    t_start = time.monotonic()
    for k, u in enumerate(targets):
        delay = t_start + k / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        futs.append(loop.run_in_executor(pool, post, k, u))
        if k % 50 == 0:
            peak_rss = max(peak_rss, server.rss_kib())
    posted = await asyncio.gather(*futs)
    t_sent = time.monotonic()
    total_expected = sum(expected.values())
    deadline = time.monotonic() + args.drain_timeout
    while sum(min(stats.recv.get(k, 0), e) for k, e in expected.items()) < total_expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    t_end = time.monotonic()
    peak_rss = max(peak_rss, server.rss_kib())
    busy1 = hu.system_cpu()
    server_cpu = server.cpu_s() - cpu_s0
    self_cpu = hu.self_cpu_s() - self0
    wall = t_end - t_s0
    metrics_after = hu.hub_metrics(server.metrics())
    pool.shutdown(wait=True)

    delivered = sum(min(stats.recv.get(k, 0), e) for k, e in expected.items())
    fully = sum(1 for k, e in expected.items() if stats.recv.get(k, 0) >= e)
    ok_posts = sum(1 for _, s, _ in posted if s == 201)
    post_lat = hu.latency_summary_ms([us for _, s, us in posted])
    # unreadCount consistency: each tab's last unreadCount = notifications created for its user
    per_user = {}
    for k, u in enumerate(targets):
        if posted[k][1] == 201:
            per_user[u] = per_user.get(u, 0) + 1
    unread_mismatch = sum(1 for t in connected if t.received and t.last_unread != per_user.get(t.user, 0))
    closed = sum(1 for t in connected if t.closed_by_server)
    result.update({
        "notifications": args.notifications, "rate_target": args.rate, "posted_ok": ok_posts,
        "post_status_other": {str(s): sum(1 for _, x, _ in posted if x == s) for s in {x for _, x, _ in posted} if s != 201},
        "send_seconds": t_sent - t_start, "max_post_lateness_ms": late * 1000,
        "notifications_per_s": ok_posts / (t_sent - t_start) if t_sent > t_start else None,
        "post_latency": post_lat,
        "deliveries_expected": total_expected, "deliveries_received": delivered,
        "delivery_pct": 100.0 * delivered / total_expected if total_expected else None,
        "notifications_fully_delivered": fully, "duplicates": stats.dups,
        "push_latency": hu.latency_summary_ms(stats.lat),
        "unread_count_mismatches": unread_mismatch, "clients_closed_by_server": closed,
        "engine_pings_answered": sum(t.pings for t in connected),
        "server_cpu_s": server_cpu, "server_cpu_pct": 100 * server_cpu / wall,
        "loadgen_cpu_s": self_cpu, "loadgen_cpu_pct": 100 * self_cpu / wall,
        "machine_cpu_pct": 100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
        "server_rss_peak_kib": peak_rss, "server_rss_end_kib": server.rss_kib(),
        "hub_metrics_delta": {k: metrics_after.get(k, 0) - metrics_before.get(k, 0) for k in metrics_after
                              if metrics_after.get(k, 0) != metrics_before.get(k, 0)},
        "hub_metrics_end": metrics_after,
        "events_by_type": stats.events,
    })
    for t in connected:
        t.close()
    await asyncio.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--notifications", type=int, default=1500, help="default: 30 s at 50/s (> one 25 s ping interval)")
    ap.add_argument("--rate", type=float, default=50.0, help="notifications per second")
    ap.add_argument("--post-concurrency", type=int, default=8)
    ap.add_argument("--connect-concurrency", type=int, default=100)
    ap.add_argument("--drain-timeout", type=float, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bin", default=os.environ.get("LIVEHUB_BIN", str(hu.DEFAULT_BIN)))
    ap.add_argument("--out", default="bell-latest.json")
    args = ap.parse_args()
    if args.users > args.clients:
        ap.error("--users must be ≤ --clients (every user gets at least one tab)")
    nofile = hu.raise_nofile(args.clients + 200)
    server = hu.Server(args.bin, hu.RESULTS / (Path(args.out).stem.replace("-latest", "") + "-server.log"))
    result = {"benchmark": "bell_load", "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args),
              "machine": {"cpus": os.cpu_count(), "nofile": nofile, "loadavg_start": os.getloadavg()}}
    t_all = time.monotonic()
    try:
        server.start()
        result["server_pid"] = server.pid
        asyncio.run(run(args, server, result))
        result["server_cpu_total_s"] = server.cpu_s()
        result["server_threads"] = hu.proc_threads(server.pid)
    finally:
        server.stop()
        result["server_exit_code"] = server.proc.returncode if server.proc else None
        result["server_log_problems"] = hu.log_problems(server.output())
        result["wall_s"] = time.monotonic() - t_all
        result["machine"]["loadavg_end"] = os.getloadavg()
        path = hu.write_json(args.out, result)
    report(result)
    print(f"\nJSON: {path}\nserver log: {server.log_path}")


def report(r):
    pl, ql = r.get("push_latency", {}), r.get("post_latency", {})
    rows = [
        ("clients connected / requested", f"{r.get('clients_connected')}/{r.get('clients_requested')} ({hu.fmt(r.get('connection_success_pct'))}%)"),
        ("users (tabs per user min–max)", f"{r.get('users')} ({r.get('tabs_per_user_min')}–{r.get('tabs_per_user_max')})"),
        ("connect time s", r.get("connect_seconds")),
        ("server RSS before connect MiB", (r.get("server_rss_before_connect_kib") or 0) / 1024),
        ("server RSS after connect MiB", (r.get("server_rss_after_connect_kib") or 0) / 1024),
        ("server RSS per idle connection KiB", r.get("server_rss_per_idle_connection_kib")),
        ("notifications posted ok / sent", f"{r.get('posted_ok')}/{r.get('notifications')} at {hu.fmt(r.get('rate_target'))}/s"),
        ("notifications created/s", r.get("notifications_per_s")),
        ("POST latency p50 / p99 ms", f"{hu.fmt(ql.get('p50_ms'))} / {hu.fmt(ql.get('p99_ms'))}"),
        ("deliveries received / expected", f"{r.get('deliveries_received')}/{r.get('deliveries_expected')} ({hu.fmt(r.get('delivery_pct'))}%)"),
        ("notifications reaching every tab", r.get("notifications_fully_delivered")),
        ("duplicates", r.get("duplicates")),
        ("push latency p50 ms", pl.get("p50_ms")), ("push latency p90 ms", pl.get("p90_ms")),
        ("push latency p99 ms", pl.get("p99_ms")), ("push latency max ms", pl.get("max_ms")),
        ("unreadCount mismatches (tabs)", r.get("unread_count_mismatches")),
        ("clients closed by server", r.get("clients_closed_by_server")),
        ("engine pings answered", r.get("engine_pings_answered")),
        ("server CPU % (push phase)", r.get("server_cpu_pct")),
        ("loadgen CPU % (push phase)", r.get("loadgen_cpu_pct")),
        ("machine CPU % (all cores)", r.get("machine_cpu_pct")),
        ("server RSS peak / end MiB", f"{hu.fmt((r.get('server_rss_peak_kib') or 0) / 1024)} / {hu.fmt((r.get('server_rss_end_kib') or 0) / 1024)}"),
        ("server CPU s total", r.get("server_cpu_total_s")),
        ("events before push phase", ", ".join(f"{k}={v}" for k, v in sorted((r.get("events_before_push") or {}).items()))),
        ("events received by type (total)", ", ".join(f"{k}={v}" for k, v in sorted((r.get("events_by_type") or {}).items()))),
        ("loadavg start / end (1 min)", f"{r['machine']['loadavg_start'][0]:.2f} / {r['machine'].get('loadavg_end', [0])[0]:.2f}"),
    ]
    hu.print_table(f"Notification bell — {r.get('clients_requested')} clients / {r.get('users')} users", rows)
    m = r.get("hub_metrics_end", {})
    hu.print_table("livehub_hub_* at end of push phase", [(k, v) for k, v in sorted(m.items())])
    if r.get("server_log_problems"):
        print("server log warnings/errors:")
        for line, n in r["server_log_problems"]:
            print(f"  {n}× {line}")


if __name__ == "__main__":
    main()
