#!/usr/bin/env python3
"""Server RSS per idle connection, layer by layer, against the release binary.

  python3 bench/hub/idle_memory.py [--connections 5000] [--bin .build-bench/release/livehub]

For each layer a fresh server is started and N connections are opened and left idle:
  http   an HTTP/1.1 keep-alive connection that made one request (Hummingbird's connection alone)
  ws     the same upgraded to WebSocket on /ws/live (v12.stomp), nothing sent after the upgrade
  stomp  the WebSocket plus a STOMP CONNECT answered by CONNECTED
  subscribe  plus SUBSCRIBE to a room's chat topic (with receipt)
  join   plus SEND join (counted as a viewer) — what a watching viewer costs
RSS per connection = (VmRSS after − before) / N, 3 s after the last connection is up.
Stdlib only; 127.0.0.1 only; writes bench/results/idle-memory.json.
"""
import argparse
import asyncio
import base64
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hubutil as hu  # noqa: E402

LAYERS = ["http", "ws", "stomp", "subscribe", "join"]


def ws_frame(text):
    """A masked client text frame (RFC 6455 §5.3)."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def open_one(layer, port, room, timeout=30):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    if layer == "http":
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        return writer
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws/live HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head[:80])
    if layer == "ws":
        return writer
    writer.write(ws_frame("CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\x00"))
    await wait_for_bytes(reader, b"CONNECTED", timeout)
    if layer in ("subscribe", "join"):
        writer.write(ws_frame(f"SUBSCRIBE\nid:sub-0\ndestination:/topic/live/{room}/chat\nreceipt:r1\n\n\x00"))
        await wait_for_bytes(reader, b"RECEIPT", timeout)
    if layer == "join":
        writer.write(ws_frame(f"SEND\ndestination:/app/live/{room}/join\nreceipt:r2\n\n\x00"))
        await wait_for_bytes(reader, b"RECEIPT", timeout)
    return writer


async def wait_for_bytes(reader, marker, timeout):
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(marker)
        chunk = await asyncio.wait_for(reader.read(4096), left)
        if not chunk:
            raise ConnectionError("closed")
        seen += chunk


async def measure(layer, server, room, n, batch=200):
    before = server.rss_kib()
    writers, failed = [], 0
    for start in range(0, n, batch):
        results = await asyncio.gather(*[open_one(layer, server.http_port, room) for _ in range(start, min(n, start + batch))],
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                failed += 1
            else:
                writers.append(r)
    await asyncio.sleep(3)
    after = server.rss_kib()
    for w in writers:
        w.close()
    ok = len(writers)
    return {"layer": layer, "connections": ok, "failed": failed, "rss_before_kib": before, "rss_after_kib": after,
            "rss_per_connection_kib": round((after - before) / ok, 2) if ok else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--bin", default=os.environ.get("LIVEHUB_BIN", ".build-bench/release/livehub"))
    args = ap.parse_args()
    hu.raise_nofile(args.connections + 200)
    rows = []
    for layer in LAYERS:
        server = hu.Server(args.bin, hu.RESULTS / f"idle-memory-{layer}-server.log", {"LIVEHUB_LOG_LEVEL": "warning"}).start()
        try:
            status, room = server.request("POST", "/v1/notifications/live/rooms", {"title": "idle memory"}, token=server.tokens["owner"])
            if status >= 300:
                raise SystemExit(f"room creation failed: {status} {room}")
            time.sleep(1)
            row = asyncio.run(measure(layer, server, room["id"], args.connections))
        finally:
            server.stop()
        hu.log(f"{layer}: {row['connections']} up ({row['failed']} failed), {row['rss_per_connection_kib']} KiB each")
        rows.append(row)
    hu.print_table(f"Server RSS per idle connection — {args.connections} connections per layer",
                   [(r["layer"], f"{r['rss_per_connection_kib']} KiB ({r['connections']} up, {r['failed']} failed)") for r in rows])
    hu.write_json("idle-memory.json", {"connections": args.connections, "layers": rows})


if __name__ == "__main__":
    main()
