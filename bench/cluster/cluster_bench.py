#!/usr/bin/env python3
"""Issue 20: what running several nodes on PostgreSQL costs, on this machine, A/B in one run.

Rows (each repetition runs the single-node reference and the cluster alternately, the first one
flipping every repetition, so that machine drift spreads over both):
1. **Chat delivery, cross-node**: `--subscribers` STOMP subscribers of one room, spread round-robin
   over 3 nodes, one sender on node 2 sending `--messages` chats at `--rate`/s; send → receive
   latency p50/p99 over every (message, subscriber) pair. Next to it the same load on one node with
   SQLite (today's figure).
2. **Committed chats/s**: `--users` signed-in users, each chatting at the server's rate limit (5/s)
   with a STOMP `receipt` on every SEND (answered once the line is committed and broadcast), on
   one node with SQLite against one node with PostgreSQL, and against 3 nodes (senders spread over
   them), where every line is also a broker publish: that is the broker's sustained publishes/s.
3. **HLS through a non-origin node**: ffmpeg publishes to node 1; `--viewers` concurrent clients
   fetch the newest part of the room in a loop for `--seconds`, either from node 1 (the origin) or
   from node 2 (the proxy): requests/s, fetch p50/p99, and how many requests reached the origin.

All nodes and PostgreSQL (tools/pg-temp.sh, in a temporary directory, fsync on) run on this
machine; 2 cores are shared by everything, load generator included, so the figures are a floor.

    python3 bench/cluster/cluster_bench.py --bin .build-bench/release/livehub [--reps 2]

Writes bench/results/cluster.json. Stdlib only.
"""
import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "hub"))
import hubutil as hu  # noqa: E402
from stomp_fanout import StompConn  # noqa: E402

REPO = HERE.parents[1]
PG_TEMP = REPO / "tools" / "pg-temp.sh"
FIXTURE = REPO / "media-fixtures" / "h264-aac-2s-gop.flv"
SECRET = "cluster-bench-secret-0123456789abcdef0123456789abcdef0123456789abcdef"
INTERNAL = "cluster-bench-internal-token-0123456789"
MARK = re.compile(rb"bm(\d+)@(\d+)")


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="livehub-pg-bench-")
        os.chmod(self.dir, 0o755)
        self.url = subprocess.run([str(PG_TEMP), "start", f"{self.dir}/cluster", str(hu.free_port())],
                                  check=True, capture_output=True, text=True).stdout.strip()
        self.count = 0

    def new_database(self):
        self.count += 1
        name = f"bench_{os.getpid()}_{self.count}"
        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        subprocess.run(["psql", admin, "-qtAc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self):
        subprocess.run([str(PG_TEMP), "stop", f"{self.dir}/cluster"], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_nodes(args, count, database_url, label):
    """`count` dev-mode nodes sharing one secret and internal token (written into their data dirs)."""
    nodes = []
    for index in range(1, count + 1):
        env = {"LIVEHUB_WS_MAX_CONNECTIONS_PER_USER": "0"}
        if database_url:
            env.update({"LIVEHUB_DATABASE_URL": database_url, "LIVEHUB_NODE_ID": f"node{index}"})
        server = hu.Server(args.bin, hu.RESULTS / f"cluster-{label}-node{index}.log", extra_env=env)
        (server.data_dir / "jwt-secret").write_text(SECRET)
        (server.data_dir / "internal-token").write_text(INTERNAL)
        server.env["LIVEHUB_NODE_ADVERTISE_URL"] = server.base
        nodes.append(server.start())
    return nodes


def stop_nodes(nodes):
    for node in nodes:
        node.stop()


def create_room(node):
    owner = hu.sign(SECRET, {"sub": "owner-1", "roles": ["SHOP_OWNER"], "exp": int(time.time()) + 7200})
    status, room = node.request("POST", "/v1/notifications/live/rooms", {"title": "bench"}, owner)
    assert status == 201, room
    return room


# ---------------------------------------------------------------- 1. cross-node delivery

async def delivery(args, nodes):
    room = create_room(nodes[0])
    topic = f"/topic/live/{room['id']}/chat"
    received = []  # (message index, latency ns)

    def on_payload(_conn, payload, t_ns):
        for match in MARK.finditer(payload):
            received.append(t_ns - int(match.group(2)))

    subscribers = []
    semaphore = asyncio.Semaphore(100)

    async def open_one(index):
        node = nodes[index % len(nodes)]
        async with semaphore:
            conn = await StompConn().open("127.0.0.1", node.http_port, on_payload=on_payload)
            await conn.subscribe(topic, f"s{index}")
            subscribers.append(conn)

    await asyncio.gather(*(open_one(i) for i in range(args.subscribers)))
    senders = []
    sender_node = nodes[1 % len(nodes)]
    for index in range(max(1, int(args.rate / 4) + 1)):
        senders.append(await StompConn().open("127.0.0.1", sender_node.http_port,
                                              token=hu.sign(SECRET, {"sub": f"sender-{index}", "exp": int(time.time()) + 7200})))
    await asyncio.sleep(1)
    start = time.monotonic()
    for i in range(args.messages):
        delay = start + i / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        senders[i % len(senders)].send_json(f"/app/live/{room['id']}/chat", {"message": f"bm{i}@{time.monotonic_ns()}"})
    expected = args.messages * args.subscribers
    deadline = time.monotonic() + 30
    while len(received) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for conn in subscribers + senders:
        conn.close()
    summary = hu.latency_summary_ms([ns / 1000 for ns in received])
    summary["delivered"] = f"{len(received)}/{expected}"
    return summary


# ---------------------------------------------------------------- 2. committed chats/s

async def committed(args, nodes):
    room = create_room(nodes[0])
    destination = f"/app/live/{room['id']}/chat"
    users = []
    for index in range(args.users):
        node = nodes[index % len(nodes)]
        users.append(await StompConn().open("127.0.0.1", node.http_port,
                                            token=hu.sign(SECRET, {"sub": f"u{index}", "exp": int(time.time()) + 7200})))
    latencies = []
    sent = 0
    loop = asyncio.get_running_loop()

    async def chatter(index, conn):
        nonlocal sent
        await asyncio.sleep(index / args.users * 0.2)
        end = time.monotonic() + args.seconds
        n = 0
        while time.monotonic() < end:
            rid = f"c{index}-{n}"
            future = loop.create_future()
            conn.receipts[rid] = future
            body = json.dumps({"message": f"chat {n}"})
            t0 = time.monotonic_ns()
            conn.ws.send_text(f"SEND\ndestination:{destination}\ncontent-type:application/json\ncontent-length:{len(body)}\nreceipt:{rid}\n\n{body}\x00")
            sent += 1
            future.add_done_callback(lambda f, t0=t0: latencies.append(time.monotonic_ns() - t0) if not f.exception() else None)
            n += 1
            await asyncio.sleep(0.21)

    t0 = time.monotonic()
    await asyncio.gather(*(chatter(i, c) for i, c in enumerate(users)))
    deadline = time.monotonic() + 30
    while len(latencies) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - t0
    for conn in users:
        conn.close()
    summary = hu.latency_summary_ms([ns / 1000 for ns in latencies])
    return {"committed_per_s": len(latencies) / elapsed, "sent": sent, "committed": len(latencies),
            "receipt_p50_ms": summary.get("p50_ms"), "receipt_p99_ms": summary.get("p99_ms")}


# ---------------------------------------------------------------- 3. HLS through a non-origin node

def hls_rows(args, nodes):
    room = create_room(nodes[0])
    ffmpeg = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", str(FIXTURE),
                               "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{nodes[0].rtmp_port}/live/{room['streamKey']}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    try:
        base = f"/hls/{room['id']}"
        deadline = time.time() + 40
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(nodes[1].base + base + "/media.m3u8", timeout=5) as r:
                    if b"#EXT-X-PART:" in r.read():
                        break
            except OSError:
                pass
            time.sleep(0.3)
        order = ["origin", "proxy"] if args.rep % 2 == 0 else ["proxy", "origin"]
        for which in order:
            node = nodes[0] if which == "origin" else nodes[1]
            origin_before = hls_requests(nodes[0])
            times, stop_at = [], time.time() + args.seconds
            lock = threading.Lock()

            def viewer():
                while time.time() < stop_at:
                    try:
                        with urllib.request.urlopen(node.base + base + "/media.m3u8", timeout=10) as r:
                            playlist = r.read().decode()
                        part = [line for line in playlist.splitlines() if line.startswith("#EXT-X-PART:")][-1]
                        uri = re.search(r'URI="([^"]+)"', part).group(1)
                        t0 = time.monotonic()
                        with urllib.request.urlopen(node.base + base + "/" + uri, timeout=10) as r:
                            r.read()
                        with lock:
                            times.append(time.monotonic() - t0)
                    except (OSError, IndexError, AttributeError):
                        time.sleep(0.05)

            threads = [threading.Thread(target=viewer) for _ in range(args.viewers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            times.sort()
            results[which] = {"part_fetches_per_s": len(times) / args.seconds,
                              "part_fetch_p50_ms": 1000 * hu.percentile(times, 50) if times else None,
                              "part_fetch_p99_ms": 1000 * hu.percentile(times, 99) if times else None,
                              "origin_hls_requests": hls_requests(nodes[0]) - origin_before}
    finally:
        ffmpeg.terminate()
        ffmpeg.wait()
    return results


def hls_requests(node):
    """HLS requests the node answered, from its /metrics (fast path and router)."""
    total = 0.0
    for line in node.metrics().splitlines():
        if line.startswith("livehub_http_requests_total") and 'route="/hls' in line:
            total += float(line.rpartition(" ")[2])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("LIVEHUB_BIN", str(REPO / ".build-bench" / "release" / "livehub")))
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--only", default="delivery,committed,hls")
    args = ap.parse_args()
    hu.raise_nofile(args.subscribers * 4 + 1000)
    only = set(args.only.split(","))
    postgres = Postgres()
    rows = {}
    try:
        for rep in range(args.reps):
            args.rep = rep
            setups = [("sqlite-1", 1, False), ("postgres-1", 1, True), ("postgres-3", 3, True)]
            if rep % 2:
                setups.reverse()
            for label, count, on_postgres in setups:
                for row in ("delivery", "committed"):
                    if row not in only or (row == "delivery" and label == "postgres-1"):
                        continue
                    nodes = start_nodes(args, count, postgres.new_database() if on_postgres else None, label)
                    try:
                        result = asyncio.run(delivery(args, nodes) if row == "delivery" else committed(args, nodes))
                    finally:
                        stop_nodes(nodes)
                    rows.setdefault(f"{row}/{label}", []).append(result)
                    hu.log(row, label, result)
            if "hls" in only:
                nodes = start_nodes(args, 2, postgres.new_database(), "hls")
                try:
                    for which, result in hls_rows(args, nodes).items():
                        rows.setdefault(f"hls/{which}", []).append(result)
                        hu.log("hls", which, result)
                finally:
                    stop_nodes(nodes)
    finally:
        postgres.stop()

    def median(key, field):
        values = [r[field] for r in rows.get(key, []) if r.get(field) is not None]
        return statistics.median(values) if values else None

    table = []
    for label in ("sqlite-1", "postgres-3"):
        table.append((f"chat delivery p50 ms, {args.subscribers} subs [{label}]", median(f"delivery/{label}", "p50_ms")))
        table.append((f"chat delivery p99 ms, {args.subscribers} subs [{label}]", median(f"delivery/{label}", "p99_ms")))
    for label in ("sqlite-1", "postgres-1", "postgres-3"):
        table.append((f"committed chats/s, {args.users} users [{label}]", median(f"committed/{label}", "committed_per_s")))
        table.append((f"chat receipt p99 ms [{label}]", median(f"committed/{label}", "receipt_p99_ms")))
    sqlite, pg = median("committed/sqlite-1", "committed_per_s"), median("committed/postgres-1", "committed_per_s")
    if sqlite and pg:
        table.append(("committed chats/s PostgreSQL ÷ SQLite", pg / sqlite))
    for which in ("origin", "proxy"):
        table.append((f"HLS part fetches/s, {args.viewers} viewers [{which}]", median(f"hls/{which}", "part_fetches_per_s")))
        table.append((f"HLS part fetch p50 ms [{which}]", median(f"hls/{which}", "part_fetch_p50_ms")))
        table.append((f"HLS part fetch p99 ms [{which}]", median(f"hls/{which}", "part_fetch_p99_ms")))
        table.append((f"requests reaching the origin [{which}]", median(f"hls/{which}", "origin_hls_requests")))
    hu.print_table("Cluster (issue 20): 3 nodes + PostgreSQL on this machine, medians of A/B alternating repetitions", table)
    hu.write_json("cluster.json", {"args": vars(args), "rows": rows, "table": table})


if __name__ == "__main__":
    main()
