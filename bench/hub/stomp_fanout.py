#!/usr/bin/env python3
"""Live-room hub load: STOMP chat fan-out latency and chat throughput against the release binary.

  python3 bench/hub/stomp_fanout.py --subscribers 2000 [--messages 200] [--rate 10] [--workers 1]

Phase 1 (fan-out): N guest WebSocket STOMP connections subscribe to one room's chat topic (and send
`join`); a few signed-in senders (distinct minted users, each under 5 msgs/s) send `--messages`
chats at `--rate`/s total, each carrying its send time (monotonic ns) in the text. Every subscriber
records receive − send for every delivery.
Phase 2 (throughput): `--tp-users` signed-in users send to a second room at `--tp-user-rate`/s each
for `--tp-seconds`; one observer subscribes; committed chats/s is counted from the SQLite rows.

With `--native PATH` (or env HUBLOAD_BIN) phase 1's subscribers are the native bench/hubload binary
instead (see bench/hub/README.md); otherwise they run in `--workers` forked processes (one asyncio
loop each). Senders, sampling and the throughput phase run in the main process. The load generator
shares the machine with the server: its CPU is measured and reported next to the server's, and each
worker reports its event-loop lag (the part of a latency figure that is client-side queueing).
Stdlib only. Writes bench/results/hub-latest.json; server log at bench/results/hub-server.log.
"""
import argparse
import array
import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import signal
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubutil as hu  # noqa: E402
import wsclient  # noqa: E402

SUBPROTOCOLS = ["v12.stomp", "v11.stomp", "v10.stomp"]
MARK = re.compile(rb"bm(\d+)@(\d+)")


def stomp_frame(command, headers, body=""):
    return command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n" + body + "\x00"


async def send_timed_chats(senders, room_id, args):
    """`args.messages` chats at `args.rate`/s round-robin over `senders`, each marked `bm{i}@{send ns}`.
    Returns (start monotonic s, start monotonic ns, send time ns per message, max lateness s)."""
    dest = f"/app/live/{room_id}/chat"
    t_start = time.monotonic()
    t_start_ns = time.monotonic_ns()
    late = 0.0
    send_times = [0] * args.messages
    for i in range(args.messages):
        delay = t_start + i / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        send_times[i] = time.monotonic_ns()
        senders[i % len(senders)].send_json(dest, {"message": f"bm{i}@{send_times[i]}" + (" " + args.padding if args.padding else "")})
    return t_start, t_start_ns, send_times, late


async def idle_server_cpu_pct(server, seconds):
    """Server CPU (% of one core) over `seconds` with every subscriber connected and silent: what
    idle viewers cost (heart-beat and liveness ticks). None when `seconds` is 0."""
    if seconds <= 0:
        return None
    cpu0 = server.cpu_s()
    await asyncio.sleep(seconds)
    return 100 * (server.cpu_s() - cpu0) / seconds


async def measure_teardown(server, result, limit_s=120):
    """How long until the server has forgotten every STOMP connection (gauge back to 0), and RSS then."""
    t_td = time.monotonic()
    gauge = None
    while time.monotonic() - t_td < limit_s:
        m = hu.hub_metrics(server.metrics())
        gauge = m.get('livehub_hub_connections{protocol="stomp"}')
        if gauge == 0:
            break
        await asyncio.sleep(0.25)
    result["teardown_s"] = time.monotonic() - t_td
    result["teardown_connections_left"] = gauge
    result["server_rss_after_teardown_kib"] = server.rss_kib()


class StompConn:
    """One STOMP session over wsclient; `on_frame(kind, payload, t_ns)` sees raw WS messages."""

    def __init__(self):
        self.ws = None
        self.connected = None
        self.receipts = {}
        self.errors = []
        self.count = 0
        self.closed_by_server = False

    async def open(self, host, port, token=None, on_payload=None, timeout=20):
        loop = asyncio.get_running_loop()
        self.connected = loop.create_future()
        self.on_payload = on_payload

        def on_message(payload, t):
            if self.connected.done():
                if payload.startswith(b"RECEIPT"):
                    rid = payload.split(b"receipt-id:", 1)[1].split(b"\n", 1)[0].decode()
                    fut = self.receipts.pop(rid, None)
                    if fut and not fut.done():
                        fut.set_result(True)
                    if b"\x00MESSAGE" not in payload:
                        return
                elif payload.startswith(b"ERROR"):
                    self.errors.append(payload[:300].decode(errors="replace"))
                    return
                if self.on_payload:
                    self.on_payload(self, payload, t)
            else:
                if payload.startswith(b"CONNECTED"):
                    self.connected.set_result(True)
                elif payload.startswith(b"ERROR"):
                    self.connected.set_exception(ConnectionError(payload[:200].decode(errors="replace")))

        def on_close(proto):
            self.closed_by_server = True
            if not self.connected.done():
                self.connected.set_exception(ConnectionError(f"closed before CONNECTED ({proto.close_code})"))
            for fut in self.receipts.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))

        self.ws = await wsclient.connect(host, port, "/ws/live", SUBPROTOCOLS, on_message, on_close, timeout)
        headers = {"accept-version": "1.2,1.1,1.0", "heart-beat": "0,0", "host": "127.0.0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.ws.send_text(stomp_frame("CONNECT", headers))
        await asyncio.wait_for(self.connected, timeout)
        return self

    async def subscribe(self, destination, sub_id="sub-0", timeout=20):
        rid = f"r-{sub_id}"
        fut = asyncio.get_running_loop().create_future()
        self.receipts[rid] = fut
        self.ws.send_text(stomp_frame("SUBSCRIBE", {"destination": destination, "id": sub_id, "ack": "auto", "receipt": rid}))
        await asyncio.wait_for(fut, timeout)

    def send_json(self, destination, payload):
        body = json.dumps(payload)
        self.ws.send_text(stomp_frame("SEND", {"destination": destination, "content-type": "application/json",
                                               "content-length": str(len(body.encode()))}, body))

    def close(self):
        self.closed_by_server = False
        if self.ws:
            try:
                self.ws.send_text(stomp_frame("DISCONNECT", {}))
            except Exception:
                pass
            self.ws.close()


# ---------------------------------------------------------------- subscriber worker (own process)

def worker_entry(index, count, host, port, room_id, expected, concurrency, join, pipe):
    hu.raise_nofile(count + 100)
    try:
        asyncio.run(worker_main(index, count, host, port, room_id, expected, concurrency, join, pipe))
    except Exception as e:  # report and exit
        pipe.send(("error", repr(e)))


async def worker_main(index, count, host, port, room_id, expected, concurrency, join, pipe):
    loop = asyncio.get_running_loop()
    topic = f"/topic/live/{room_id}/chat"
    lat = array.array("q")
    conns = []
    errors = {}
    sem = asyncio.Semaphore(concurrency)
    complete = [0]
    all_done = loop.create_future()
    deliveries = [0]
    first_last = [None, None]
    first_rx = array.array("q", [0]) * expected  # per chat: first / last receive time in this worker
    last_rx = array.array("q", [0]) * expected

    def on_payload(conn, payload, t):
        for m in MARK.finditer(payload):
            lat.append((t - int(m.group(2))) // 1000)
            seq = int(m.group(1))
            if seq < expected:
                if not first_rx[seq]:
                    first_rx[seq] = t
                last_rx[seq] = t
            conn.count += 1
            deliveries[0] += 1
            if conn.count == expected:
                complete[0] += 1
                if complete[0] == len(conns) and not all_done.done():
                    all_done.set_result(True)
        if first_last[0] is None:
            first_last[0] = t
        first_last[1] = t

    async def one(i):
        async with sem:
            c = StompConn()
            try:
                await c.open(host, port, on_payload=on_payload)
                await c.subscribe(topic)
                if join:
                    c.send_json(f"/app/live/{room_id}/join", {})
                conns.append(c)
            except Exception as e:
                key = type(e).__name__ + ": " + str(e)[:120]
                errors[key] = errors.get(key, 0) + 1
                try:
                    c.close()
                except Exception:
                    pass

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    pipe.send(("ready", len(conns), count - len(conns), errors, time.monotonic() - t0))

    # event-loop lag sampler: how late a 10 ms sleep wakes up (client-side queueing)
    lags = array.array("q")

    async def lag_sampler():
        while True:
            a = time.monotonic_ns()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic_ns() - a - 10_000_000) // 1000)

    sampler = loop.create_task(lag_sampler())
    stop = loop.create_future()
    loop.add_reader(pipe.fileno(), lambda: (not stop.done()) and stop.set_result(pipe.recv()))
    if not conns and not all_done.done():
        all_done.set_result(True)
    done_task = asyncio.ensure_future(asyncio.shield(all_done))
    await asyncio.wait([done_task, stop], return_when=asyncio.FIRST_COMPLETED)
    if all_done.done():
        pipe.send(("complete",))
    if not stop.done():
        await stop
    loop.remove_reader(pipe.fileno())
    sampler.cancel()
    counts = [c.count for c in conns]
    dropped = sum(1 for c in conns if c.closed_by_server)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)
    lag_sorted = sorted(lags)
    pipe.send(("done", {
        "connections": len(conns), "deliveries": deliveries[0], "latencies_us": lat.tobytes(),
        "min_count": min(counts) if counts else 0, "max_count": max(counts) if counts else 0,
        "complete": sum(1 for x in counts if x >= expected), "closed_by_server": dropped,
        "first_rx_ns": first_last[0], "last_rx_ns": first_last[1],
        "per_chat_first": first_rx.tobytes(), "per_chat_last": last_rx.tobytes(),
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "loop_lag_p50_ms": hu.percentile(lag_sorted, 50) / 1000 if lag_sorted else None,
        "loop_lag_p99_ms": hu.percentile(lag_sorted, 99) / 1000 if lag_sorted else None,
        "loop_lag_max_ms": lag_sorted[-1] / 1000 if lag_sorted else None,
    }))


# ---------------------------------------------------------------- main process helpers

class Sampler:
    """Samples server RSS / CPU and whole-machine CPU every `period` s while running."""

    def __init__(self, server, period=0.5):
        self.server, self.period = server, period
        self.samples = []
        self.task = None

    async def run(self):
        while True:
            busy, total = hu.system_cpu()
            self.samples.append((time.monotonic(), self.server.rss_kib(), self.server.cpu_s(), busy, total))
            await asyncio.sleep(self.period)

    def start(self):
        self.samples.clear()
        self.task = asyncio.get_running_loop().create_task(self.run())

    def stop(self):
        if self.task:
            self.task.cancel()
        busy, total = hu.system_cpu()
        self.samples.append((time.monotonic(), self.server.rss_kib(), self.server.cpu_s(), busy, total))
        s = self.samples
        wall = s[-1][0] - s[0][0]
        return {"wall_s": wall, "rss_peak_kib": max(x[1] for x in s),
                "server_cpu_s": s[-1][2] - s[0][2],
                "server_cpu_pct": 100 * (s[-1][2] - s[0][2]) / wall if wall > 0 else None,
                "machine_cpu_pct_of_2_cores": 100 * os.cpu_count() * (s[-1][3] - s[0][3]) / max(1, s[-1][4] - s[0][4]) / os.cpu_count()}


def count_chats(server, room_id):
    db = server.data_dir / "livehub.sqlite"
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT COUNT(*) FROM live_chat WHERE liveRoomId = ?", (room_id,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as e:
        hu.log("sqlite count failed:", e)
        return None


async def recv(pipe, timeout):
    loop = asyncio.get_running_loop()
    ok = await loop.run_in_executor(None, pipe.poll, timeout)
    if not ok:
        raise TimeoutError("worker did not answer")
    return pipe.recv()


async def open_senders(server, n, prefix):
    senders = []
    for i in range(n):
        c = StompConn()
        await c.open("127.0.0.1", server.http_port, token=server.mint(f"{prefix}-{i}", f"{prefix} {i}"))
        senders.append(c)
    return senders


async def fanout_phase(args, server, room_id, result):
    n = args.subscribers
    workers = max(1, min(args.workers, n))
    shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    ctx = mp.get_context("fork")
    procs, pipes = [], []
    rss0, cpu0 = server.rss_kib(), server.cpu_s()
    result["server_rss_before_connect_kib"] = rss0
    hu.log(f"opening {n} STOMP subscribers in {workers} worker process(es) (concurrency {args.connect_concurrency})")
    t_conn = time.monotonic()
    for i, share in enumerate(shares):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker_entry, args=(i, share, "127.0.0.1", server.http_port, room_id, args.messages,
                                                   max(1, args.connect_concurrency // workers), not args.no_join, child),
                        daemon=True)
        p.start()
        procs.append(p)
        pipes.append(parent)
    ok = failed = 0
    errors = {}
    try:
        for pipe in pipes:
            msg = await recv(pipe, args.connect_timeout)
            if msg[0] == "error":
                raise RuntimeError(f"worker failed: {msg[1]}")
            ok += msg[1]
            failed += msg[2]
            for k, v in msg[3].items():
                errors[k] = errors.get(k, 0) + v
        connect_s = time.monotonic() - t_conn
        await asyncio.sleep(2.0)  # let the server settle (allocations, joins)
        rss1, cpu1 = server.rss_kib(), server.cpu_s()
        idle_pct = await idle_server_cpu_pct(server, args.idle_seconds)
        hu.log(f"connected {ok}/{n} in {connect_s:.1f}s; server RSS {rss0/1024:.1f} → {rss1/1024:.1f} MiB")
        status, room = server.request("GET", f"/v1/notifications/live/rooms/{room_id}")
        result.update({
            "subscribers_requested": n, "subscribers_connected": ok, "subscribers_failed": failed,
            "connect_errors": errors, "connection_success_pct": 100.0 * ok / n, "connect_seconds": connect_s,
            "connects_per_s": ok / connect_s if connect_s else None,
            "server_rss_after_connect_kib": rss1,
            "server_rss_per_idle_connection_kib": (rss1 - rss0) / ok if ok else None,
            "server_cpu_s_connect": cpu1 - cpu0,
            "server_cpu_pct_idle": idle_pct,
            "viewer_count_reported": room.get("viewerCount") if isinstance(room, dict) else None,
        })

        # senders: distinct signed-in users, each ≤ args.per_sender_rate msgs/s
        nsenders = args.senders or max(1, math.ceil(args.rate / args.per_sender_rate))
        senders = await open_senders(server, nsenders, "fanout-sender")
        hu.log(f"sending {args.messages} chats at {args.rate}/s from {nsenders} senders "
               f"({args.rate / nsenders:.2f}/s each) → {args.messages * ok:,} expected deliveries")
        metrics_before = hu.hub_metrics(server.metrics())
        sampler = Sampler(server)
        sampler.start()
        t_start, t_start_ns, send_times, late = await send_timed_chats(senders, room_id, args)
        t_sent = time.monotonic()
        hu.log(f"sent {args.messages} in {t_sent - t_start:.1f}s (max send lateness {late*1000:.0f} ms); waiting for deliveries")
        # wait for every worker to be complete or the drain timeout
        pending = set(range(workers))
        deadline = time.monotonic() + args.drain_timeout
        while pending and time.monotonic() < deadline:
            for w in list(pending):
                if pipes[w].poll():
                    msg = pipes[w].recv()
                    if msg[0] == "complete":
                        pending.discard(w)
                    elif msg[0] == "error":
                        raise RuntimeError(msg[1])
            await asyncio.sleep(0.05)
        phase = sampler.stop()
        metrics_after = hu.hub_metrics(server.metrics())
        for pipe in pipes:
            pipe.send(("stop",))
        lat = array.array("q")
        parts = []
        first = [0] * args.messages
        last = [0] * args.messages
        for pipe in pipes:
            while True:
                msg = await recv(pipe, 60)
                if msg[0] == "done":
                    break
            d = msg[1]
            lat.frombytes(d.pop("latencies_us"))
            f_arr, l_arr = array.array("q"), array.array("q")
            f_arr.frombytes(d.pop("per_chat_first"))
            l_arr.frombytes(d.pop("per_chat_last"))
            for i in range(args.messages):
                if f_arr[i] and (not first[i] or f_arr[i] < first[i]):
                    first[i] = f_arr[i]
                if l_arr[i] > last[i]:
                    last[i] = l_arr[i]
            parts.append(d)
        deliveries = sum(p["deliveries"] for p in parts)
        last_rx = max((p["last_rx_ns"] or 0) for p in parts)
        span = (last_rx - t_start_ns) / 1e9 if last_rx else None
        committed = count_chats(server, room_id)
        sender_errors = [e for s in senders for e in s.errors]
        for s in senders:
            s.close()
        await measure_teardown(server, result)
        summary = hu.latency_summary_ms(lat)
        sent_at = send_times
        first_lat = [(first[i] - sent_at[i]) // 1000 for i in range(args.messages) if first[i] and sent_at[i]]
        spread = [(last[i] - first[i]) // 1000 for i in range(args.messages) if first[i]]
        result.update({
            "messages_sent": args.messages, "send_rate_target": args.rate, "senders": nsenders,
            "send_seconds": t_sent - t_start, "max_send_lateness_ms": late * 1000,
            "deliveries_expected": args.messages * ok, "deliveries_received": deliveries,
            "delivery_pct": 100.0 * deliveries / (args.messages * ok) if ok else None,
            "subscribers_complete": sum(p["complete"] for p in parts),
            "subscribers_closed_by_server": sum(p["closed_by_server"] for p in parts),
            "min_per_subscriber": min(p["min_count"] for p in parts), "max_per_subscriber": max(p["max_count"] for p in parts),
            "latency": summary,
            "first_delivery_latency": hu.latency_summary_ms(first_lat),
            "fanout_spread_last_minus_first": hu.latency_summary_ms(spread),
            "delivery_span_s": span, "deliveries_per_s": deliveries / span if span else None,
            "committed_chats": committed, "committed_chats_per_s": committed / (t_sent - t_start) if committed else None,
            "sender_errors": sender_errors[:5], "sender_error_count": len(sender_errors),
            "phase": phase, "server_rss_end_fanout_kib": server.rss_kib(),
            "loadgen_worker_cpu_s": sum(p["cpu_s"] for p in parts),
            "loadgen_worker_cpu_pct": 100 * sum(p["cpu_s"] for p in parts) / phase["wall_s"] if phase["wall_s"] else None,
            "worker_loop_lag_p99_ms": max((p["loop_lag_p99_ms"] or 0) for p in parts),
            "worker_loop_lag_max_ms": max((p["loop_lag_max_ms"] or 0) for p in parts),
            "workers": parts and len(parts),
            "hub_metrics_delta": {k: metrics_after.get(k, 0) - metrics_before.get(k, 0) for k in metrics_after
                                  if metrics_after.get(k, 0) != metrics_before.get(k, 0)},
        })
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


# ---------------------------------------------------------------- native subscribers (bench/hubload)

_NATIVE_PGIDS = set()  # hubload process groups still to be killed (main()'s finally, if all else failed)


def kill_native_leftovers():
    for pgid in list(_NATIVE_PGIDS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _NATIVE_PGIDS.discard(pgid)


class NativeLoadgen:
    """The `hubload` binary as a child in its own process group; stdout lines go to a queue."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = asyncio.Queue()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, cmd):
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
            start_new_session=True, limit=1 << 24)
        _NATIVE_PGIDS.add(proc.pid)
        return cls(proc)

    async def _read(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self.lines.put(None)
                return
            await self.lines.put(line.decode(errors="replace").rstrip("\n"))

    async def expect(self, tag, timeout, also=()):
        """The JSON of the next `tag {...}` line (lines tagged in `also` are returned as (tag, json))."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"hubload: no {tag} line within {timeout:.0f}s")
            try:
                line = await asyncio.wait_for(self.lines.get(), left)
            except asyncio.TimeoutError:
                raise TimeoutError(f"hubload: no {tag} line within {timeout:.0f}s") from None
            if line is None:
                await self.proc.wait()
                raise RuntimeError(f"hubload exited ({self.proc.returncode}) before {tag}")
            word, _, rest = line.partition(" ")
            if word == tag or word in also:
                payload = json.loads(rest) if rest.startswith("{") else {}
                return payload if not also else (word, payload)
            hu.log(f"hubload: {line[:300]}")

    def cpu_s(self):
        try:
            return hu.proc_cpu_s(self.proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            return None

    def rss_kib(self):
        try:
            return hu.proc_rss_kib(self.proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            return None

    def stop(self):
        try:
            self.proc.stdin.write(b"STOP\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            pass

    async def kill(self):
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                pass
        _NATIVE_PGIDS.discard(self.proc.pid)
        self.reader.cancel()


async def fanout_phase_native(args, server, room_id, result):
    """Phase 1 with the native `hubload` subscribers instead of forked Python workers: same
    senders, sampling, teardown and result fields (where they exist)."""
    n = args.subscribers
    binary = Path(args.native).resolve()
    if not binary.is_file():
        raise SystemExit(f"no hubload binary at {binary}; build it: swift build -c release --package-path bench/hubload")
    rss0, cpu0 = server.rss_kib(), server.cpu_s()
    result["server_rss_before_connect_kib"] = rss0
    result["loadgen"] = "native"
    max_s = args.connect_timeout + args.messages / args.rate + args.drain_timeout + 300
    cmd = [str(binary), "--host", "127.0.0.1", "--port", str(server.http_port), "--path", "/ws/live",
           "--subscribers", str(n), "--destination", f"/topic/live/{room_id}/chat",
           "--connect-rate", str(args.native_connect_rate), "--max-in-flight", str(args.connect_concurrency),
           "--event-loops", str(args.native_event_loops), "--expect", str(args.messages),
           "--max-seconds", str(int(max_s))]
    if not args.no_join:
        cmd += ["--join", f"/app/live/{room_id}/join"]
    if args.native_read_pause_us > 0:
        cmd += ["--read-pause-us", str(args.native_read_pause_us)]
    hu.log(f"opening {n} STOMP subscribers with native hubload ({args.native_event_loops} event loop(s), "
           f"{args.native_connect_rate:g} connects/s, ≤ {args.connect_concurrency} in flight)")
    t_conn = time.monotonic()
    gen = await NativeLoadgen.start(cmd)
    senders = []
    try:
        ready = await gen.expect("READY", args.connect_timeout + 60)
        ok, failed = ready["subscribed"], ready["failed"]
        errors = {k: v for k, v in (ready.get("failures") or {}).items() if v}
        connect_s = time.monotonic() - t_conn
        loadgen_cpu_connect = gen.cpu_s()
        await asyncio.sleep(2.0)  # let the server settle (allocations, joins)
        rss1, cpu1 = server.rss_kib(), server.cpu_s()
        idle_pct = await idle_server_cpu_pct(server, args.idle_seconds)
        hu.log(f"connected {ok}/{n} in {connect_s:.1f}s (hubload: {ready.get('seconds')}s); "
               f"server RSS {rss0/1024:.1f} → {rss1/1024:.1f} MiB; hubload RSS {(gen.rss_kib() or 0)/1024:.1f} MiB")
        status, room = server.request("GET", f"/v1/notifications/live/rooms/{room_id}")
        result.update({
            "subscribers_requested": n, "subscribers_connected": ok, "subscribers_failed": failed,
            "connect_errors": errors, "connection_success_pct": 100.0 * ok / n if n else None,
            "connect_seconds": connect_s, "connects_per_s": ok / connect_s if connect_s else None,
            "server_rss_after_connect_kib": rss1,
            "server_rss_per_idle_connection_kib": (rss1 - rss0) / ok if ok else None,
            "server_cpu_s_connect": cpu1 - cpu0,
            "server_cpu_pct_idle": idle_pct,
            "viewer_count_reported": room.get("viewerCount") if isinstance(room, dict) else None,
            "loadgen_cpu_s_connect": loadgen_cpu_connect,
            "loadgen_rss_after_connect_kib": gen.rss_kib(),
        })

        nsenders = args.senders or max(1, math.ceil(args.rate / args.per_sender_rate))
        senders = await open_senders(server, nsenders, "fanout-sender")
        hu.log(f"sending {args.messages} chats at {args.rate}/s from {nsenders} senders "
               f"({args.rate / nsenders:.2f}/s each) → {args.messages * ok:,} expected deliveries")
        metrics_before = hu.hub_metrics(server.metrics())
        sampler = Sampler(server)
        cpu_gen0 = gen.cpu_s()
        sampler.start()
        t_start, t_start_ns, send_times, late = await send_timed_chats(senders, room_id, args)
        t_sent = time.monotonic()
        hu.log(f"sent {args.messages} in {t_sent - t_start:.1f}s (max send lateness {late*1000:.0f} ms); waiting for deliveries")
        complete_line = None
        if ok:
            try:
                complete_line = await gen.expect("COMPLETE", args.drain_timeout)
            except TimeoutError:
                hu.log(f"not every subscriber complete after {args.drain_timeout:.0f}s drain")
        phase = sampler.stop()
        cpu_gen1 = gen.cpu_s()
        metrics_after = hu.hub_metrics(server.metrics())
        gen.stop()
        r = await gen.expect("RESULT", 120)
        try:
            await asyncio.wait_for(gen.proc.wait(), 60)
        except asyncio.TimeoutError:
            hu.log("hubload did not exit within 60 s after RESULT; killing it")
        committed = count_chats(server, room_id)
        sender_errors = [e for s in senders for e in s.errors]
        for s in senders:
            s.close()
        senders = []
        await measure_teardown(server, result)
        deliveries = r["deliveries"]
        last_rx = r.get("last_rx_ns") or 0
        span = (last_rx - t_start_ns) / 1e9 if last_rx else None
        per_sub = r.get("per_subscriber") or {}
        lag = r.get("loop_lag") or {}
        gen_cpu = (cpu_gen1 - cpu_gen0) if cpu_gen0 is not None and cpu_gen1 is not None else None
        result.update({
            "messages_sent": args.messages, "send_rate_target": args.rate, "senders": nsenders,
            "send_seconds": t_sent - t_start, "max_send_lateness_ms": late * 1000,
            "deliveries_expected": args.messages * ok, "deliveries_received": deliveries,
            "delivery_pct": 100.0 * deliveries / (args.messages * ok) if ok else None,
            "subscribers_complete": per_sub.get("complete"),
            "subscribers_closed_by_server": r.get("closed_by_server"),
            "min_per_subscriber": per_sub.get("min"), "max_per_subscriber": per_sub.get("max"),
            "messages_seen": r.get("messages_seen"),
            "min_deliveries_per_message": r.get("min_deliveries_per_message"),
            "max_deliveries_per_message": r.get("max_deliveries_per_message"),
            "latency": r.get("latency") or {"count": 0},
            "first_delivery_latency": r.get("first_delivery_latency") or {"count": 0},
            "fanout_spread_last_minus_first": r.get("spread") or {"count": 0},
            "delivery_span_s": span, "deliveries_per_s": deliveries / span if span else None,
            "deliveries_per_s_first_to_last": r.get("deliveries_per_second"),
            "all_complete_reported": complete_line is not None,
            "committed_chats": committed, "committed_chats_per_s": committed / (t_sent - t_start) if committed else None,
            "sender_errors": sender_errors[:5], "sender_error_count": len(sender_errors),
            "phase": phase, "server_rss_end_fanout_kib": server.rss_kib(),
            "loadgen_worker_cpu_s": gen_cpu,
            "loadgen_worker_cpu_pct": 100 * gen_cpu / phase["wall_s"] if gen_cpu is not None and phase["wall_s"] else None,
            "loadgen_cpu_s_total": r.get("cpu_s_total"),
            "worker_loop_lag_p99_ms": lag.get("p99_ms"), "worker_loop_lag_max_ms": lag.get("max_ms"),
            "workers": 0,
            "native_result": r,
            "hub_metrics_delta": {k: metrics_after.get(k, 0) - metrics_before.get(k, 0) for k in metrics_after
                                  if metrics_after.get(k, 0) != metrics_before.get(k, 0)},
        })
    finally:
        for s in senders:
            s.close()
        await gen.kill()


async def throughput_phase(args, server, room_id, result):
    hu.log(f"throughput: {args.tp_users} users × {args.tp_user_rate}/s for {args.tp_seconds}s")
    observer_lat = array.array("q")

    def on_payload(conn, payload, t):
        for m in MARK.finditer(payload):
            observer_lat.append((t - int(m.group(2))) // 1000)
            conn.count += 1

    observer = StompConn()
    await observer.open("127.0.0.1", server.http_port, on_payload=on_payload)
    await observer.subscribe(f"/topic/live/{room_id}/chat")
    users = []
    sem = asyncio.Semaphore(50)

    async def mk(i):
        async with sem:
            c = StompConn()
            await c.open("127.0.0.1", server.http_port, token=server.mint(f"tp-user-{i}", f"tp {i}"))
            users.append(c)

    await asyncio.gather(*(mk(i) for i in range(args.tp_users)))
    metrics_before = hu.hub_metrics(server.metrics())
    before = count_chats(server, room_id) or 0
    sampler = Sampler(server)
    sampler.start()
    dest = f"/app/live/{room_id}/chat"
    interval = 1.0 / args.tp_user_rate
    per_user = int(args.tp_seconds * args.tp_user_rate)
    # one schedule for all users, staggered across the interval
    schedule = sorted((k * interval + (u / len(users)) * interval, u) for u in range(len(users)) for k in range(per_user))
    t0 = time.monotonic()
    seq = 0
    for offset, u in schedule:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        users[u].send_json(dest, {"message": f"bm{seq}@{time.monotonic_ns()}"})
        seq += 1
    t_sent = time.monotonic()
    deadline = time.monotonic() + args.drain_timeout
    while observer.count < seq and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    phase = sampler.stop()
    await asyncio.sleep(0.5)
    committed = (count_chats(server, room_id) or 0) - before
    metrics_after = hu.hub_metrics(server.metrics())
    rate_limited = sum(v - metrics_before.get(k, 0) for k, v in metrics_after.items() if k.startswith("livehub_hub_rate_limited_total"))
    errors = [e for c in users for e in c.errors]
    for c in users + [observer]:
        c.close()
    send_s = t_sent - t0
    result.update({
        "users": len(users), "per_user_rate": args.tp_user_rate, "seconds": send_s,
        "offered": seq, "offered_per_s": seq / send_s,
        "committed": committed, "committed_per_s": committed / send_s,
        "observer_received": observer.count, "observer_latency": hu.latency_summary_ms(observer_lat),
        "rate_limited": rate_limited, "error_frames": len(errors), "error_samples": errors[:3],
        "phase": phase,
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=2000)
    ap.add_argument("--messages", type=int, default=200, help="chats sent in the fan-out phase")
    ap.add_argument("--rate", type=float, default=10.0, help="fan-out chats per second (all senders)")
    ap.add_argument("--per-sender-rate", type=float, default=4.0, help="≤ 5 (server limit)")
    ap.add_argument("--senders", type=int, default=0, help="default ceil(rate / per-sender-rate)")
    ap.add_argument("--padding", default="", help="extra text appended to every chat")
    ap.add_argument("--workers", type=int, default=1, help="subscriber processes")
    ap.add_argument("--connect-concurrency", type=int, default=200)
    ap.add_argument("--connect-timeout", type=float, default=300)
    ap.add_argument("--drain-timeout", type=float, default=30)
    ap.add_argument("--no-join", action="store_true", help="subscribers do not SEND /join")
    ap.add_argument("--idle-seconds", type=float, default=5.0,
                    help="server CPU of the connected, silent subscribers measured over this long (0: skip)")
    ap.add_argument("--tp-users", type=int, default=200)
    ap.add_argument("--tp-user-rate", type=float, default=5.0)
    ap.add_argument("--tp-seconds", type=float, default=10.0)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--bin", default=os.environ.get("LIVEHUB_BIN", str(hu.DEFAULT_BIN)))
    ap.add_argument("--native", default=os.environ.get("HUBLOAD_BIN") or None, metavar="PATH_TO_HUBLOAD_BINARY",
                    help="phase 1 subscribers from the native bench/hubload binary instead of Python workers (env HUBLOAD_BIN)")
    ap.add_argument("--native-connect-rate", type=float, default=2000.0, help="hubload connects per second")
    ap.add_argument("--native-event-loops", type=int, default=1, help="hubload event loop threads")
    ap.add_argument("--native-read-pause-us", type=int, default=0,
                    help="stompsub only: pause after a read round that did not fill its event array (µs), "
                         "so co-located subscribers are not woken per delivery")
    ap.add_argument("--out", default="hub-latest.json")
    args = ap.parse_args()
    if args.per_sender_rate > 5:
        ap.error("--per-sender-rate must be ≤ 5 (the server's per-user limit)")
    nofile = hu.raise_nofile(args.subscribers + args.tp_users + 200)
    if nofile < args.subscribers + 100:
        hu.log(f"warning: RLIMIT_NOFILE is {nofile}; not enough for {args.subscribers} connections")
    server = hu.Server(args.bin, hu.RESULTS / (Path(args.out).stem.replace("-latest", "") + "-server.log"))
    result = {"benchmark": "stomp_fanout", "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args),
              "machine": {"cpus": os.cpu_count(), "nofile": nofile, "loadavg_start": os.getloadavg()}, "fanout": {}, "throughput": {}}
    t_all = time.monotonic()
    cpu_self0 = hu.self_cpu_s()
    try:
        server.start()
        result["server_pid"] = server.pid
        result["server_rss_start_kib"] = server.rss_kib()
        owner = server.tokens["owner"]
        s1, room = server.request("POST", "/v1/notifications/live/rooms", {"title": "fanout bench"}, owner)
        s2, room2 = server.request("POST", "/v1/notifications/live/rooms", {"title": "throughput bench"}, owner)
        assert s1 == 201 and s2 == 201, (s1, room, s2, room2)
        if args.native:
            asyncio.run(fanout_phase_native(args, server, room["id"], result["fanout"]))
        else:
            asyncio.run(fanout_phase(args, server, room["id"], result["fanout"]))
        if not args.skip_throughput:
            asyncio.run(throughput_phase(args, server, room2["id"], result["throughput"]))
        result["server_rss_end_kib"] = server.rss_kib()
        result["server_cpu_total_s"] = server.cpu_s()
        result["server_threads"] = hu.proc_threads(server.pid)
        result["hub_metrics_end"] = hu.hub_metrics(server.metrics())
        result["metrics_response_s_after_disconnects"] = server.last_metrics_s
    finally:
        kill_native_leftovers()
        server.stop()
        result["server_exit_code"] = server.proc.returncode if server.proc else None
        result["server_log_problems"] = hu.log_problems(server.output())
        result["loadgen_main_cpu_s"] = hu.self_cpu_s() - cpu_self0
        result["wall_s"] = time.monotonic() - t_all
        result["machine"]["loadavg_end"] = os.getloadavg()
        path = hu.write_json(args.out, result)
    report(result)
    print(f"\nJSON: {path}\nserver log: {server.log_path}")


def report(r):
    f = r["fanout"]
    lat = f.get("latency", {})
    ph = f.get("phase", {})
    native = f.get("loadgen") == "native"
    rows = [
        ("subscriber load generator", (f"native {Path(r['args'].get('native') or '').name} ({r['args'].get('native_event_loops')} thread(s))" if native
                                       else f"python ({r['args'].get('workers')} worker process(es))")),
        ("subscribers connected / requested", f"{f.get('subscribers_connected')}/{f.get('subscribers_requested')} ({hu.fmt(f.get('connection_success_pct'))}%)"),
        ("connect time s (connects/s)", f"{hu.fmt(f.get('connect_seconds'))} ({hu.fmt(f.get('connects_per_s'))})"),
        ("server RSS before connect MiB", (f.get("server_rss_before_connect_kib") or 0) / 1024),
        ("server RSS after connect MiB", (f.get("server_rss_after_connect_kib") or 0) / 1024),
        ("server RSS per idle connection KiB", f.get("server_rss_per_idle_connection_kib")),
        ("viewer count reported by room", f.get("viewer_count_reported")),
        ("chats sent (rate/s, senders)", f"{f.get('messages_sent')} ({hu.fmt(f.get('send_rate_target'))}/s, {f.get('senders')})"),
        ("deliveries received / expected", f"{hu.fmt(f.get('deliveries_received'))}/{hu.fmt(f.get('deliveries_expected'))} ({hu.fmt(f.get('delivery_pct'))}%)"),
        ("subscribers complete", f.get("subscribers_complete")),
        ("subscribers closed by server", f.get("subscribers_closed_by_server")),
        ("latency p50 ms", lat.get("p50_ms")), ("latency p90 ms", lat.get("p90_ms")),
        ("latency p99 ms", lat.get("p99_ms")), ("latency p99.9 ms", lat.get("p999_ms")),
        ("latency max ms", lat.get("max_ms")),
        ("first-subscriber latency p50 / p99 ms", f"{hu.fmt(f.get('first_delivery_latency', {}).get('p50_ms'))} / {hu.fmt(f.get('first_delivery_latency', {}).get('p99_ms'))}"),
        ("fan-out spread (last−first) p50 / p99 ms", f"{hu.fmt(f.get('fanout_spread_last_minus_first', {}).get('p50_ms'))} / {hu.fmt(f.get('fanout_spread_last_minus_first', {}).get('p99_ms'))}"),
        ("deliveries/s sustained", f.get("deliveries_per_s")),
    ] + ([("deliveries/s first→last delivery", f.get("deliveries_per_s_first_to_last")),
          ("min / max deliveries per message", f"{hu.fmt(f.get('min_deliveries_per_message'))} / {hu.fmt(f.get('max_deliveries_per_message'))} ({hu.fmt(f.get('messages_seen'))} seen)")]
         if native else []) + [
        ("committed chats (per s)", f"{f.get('committed_chats')} ({hu.fmt(f.get('committed_chats_per_s'))})"),
        ("sender ERROR frames", f.get("sender_error_count")),
        ("server CPU % with the subscribers idle", f.get("server_cpu_pct_idle")),
        ("server CPU % during fan-out", ph.get("server_cpu_pct")),
        ("loadgen subscriber CPU %" + (" (hubload, during fan-out)" if native else ""), f.get("loadgen_worker_cpu_pct")),
        ("machine CPU % (all cores)", ph.get("machine_cpu_pct_of_2_cores")),
        ("client loop lag p99 / max ms", f"{hu.fmt(f.get('worker_loop_lag_p99_ms'))} / {hu.fmt(f.get('worker_loop_lag_max_ms'))}"),
        ("server RSS peak during fan-out MiB", (ph.get("rss_peak_kib") or 0) / 1024),
        ("server RSS end of fan-out MiB", (f.get("server_rss_end_fanout_kib") or 0) / 1024),
        ("teardown s (all sockets closed → gauge 0)", f.get("teardown_s")),
        ("server RSS after teardown MiB", (f.get("server_rss_after_teardown_kib") or 0) / 1024),
    ]
    hu.print_table(f"STOMP fan-out — {f.get('subscribers_requested')} subscribers", rows)
    t = r.get("throughput") or {}
    if t:
        ol = t.get("observer_latency", {})
        hu.print_table("Chat throughput", [
            ("users × rate", f"{t.get('users')} × {t.get('per_user_rate')}/s"),
            ("offered (per s)", f"{t.get('offered')} ({hu.fmt(t.get('offered_per_s'))})"),
            ("committed (per s)", f"{t.get('committed')} ({hu.fmt(t.get('committed_per_s'))})"),
            ("rate-limited", t.get("rate_limited")), ("ERROR frames", t.get("error_frames")),
            ("observer received", t.get("observer_received")),
            ("observer latency p50 / p99 / max ms", f"{hu.fmt(ol.get('p50_ms'))} / {hu.fmt(ol.get('p99_ms'))} / {hu.fmt(ol.get('max_ms'))}"),
            ("server CPU %", (t.get("phase") or {}).get("server_cpu_pct")),
        ])
    m = r.get("hub_metrics_end", {})
    hu.print_table("Server totals", [
        ("server CPU s total", r.get("server_cpu_total_s")), ("server RSS end MiB", (r.get("server_rss_end_kib") or 0) / 1024),
        ("server threads", r.get("server_threads")), ("loadgen main-process CPU s", r.get("loadgen_main_cpu_s")),
        ("loadavg start / end (1 min)", f"{r['machine']['loadavg_start'][0]:.2f} / {r['machine'].get('loadavg_end', [0])[0]:.2f}"),
    ] + [(k, v) for k, v in sorted(m.items()) if "stomp" in k or "socketio" not in k])
    if r.get("server_log_problems"):
        print("server log warnings/errors:")
        for line, n in r["server_log_problems"]:
            print(f"  {n}× {line}")


if __name__ == "__main__":
    main()
