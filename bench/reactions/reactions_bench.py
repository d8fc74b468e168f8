#!/usr/bin/env python3
"""Reactions (issue 22 §2): how many reactions a second one node absorbs, and what that costs each
viewer in frames a second.

S sender connections each send R reactions (`SEND /app/live/{room}/react`, several STOMP frames
per WebSocket message) as fast as TCP lets them, while V viewers hold
`/topic/live/{room}/reactions`. Printed: reactions/s absorbed (the sum of the windows' counts one
viewer received, over the time from the first send to the last window, waiting until a second
passes without one), and frames per viewer per second (each viewer's reaction MESSAGEs over the
time they arrived in).
Stdlib only (bench/hub/wsclient.py); keeps under a minute.

  python3 bench/reactions/reactions_bench.py --bin .build-bench/release/livehub
"""
import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hub"))
import hubutil as hu  # noqa: E402
import wsclient  # noqa: E402

KINDS = ["heart", "fire", "clap", "laugh", "wow"]


def frame(command, headers, body=""):
    return command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n" + body + "\x00"


class Client:
    def __init__(self):
        self.buffer = b""
        self.connected = asyncio.get_event_loop().create_future()
        self.frames = []  # (t, headers, body) of reaction MESSAGEs

    def on_message(self, payload, t_ns):
        self.buffer += payload
        while b"\x00" in self.buffer:
            raw, _, self.buffer = self.buffer.partition(b"\x00")
            text = raw.decode(errors="replace").lstrip("\r\n")
            if not text:
                continue
            head, _, body = text.partition("\n\n")
            lines = head.split("\n")
            if lines[0] == "CONNECTED" and not self.connected.done():
                self.connected.set_result(True)
            elif lines[0] == "MESSAGE":
                headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
                if headers.get("destination", "").endswith("/reactions"):
                    self.frames.append((t_ns / 1e9, body))


async def open_client(port, subscribe=None):
    client = Client()
    proto = await wsclient.connect("127.0.0.1", port, "/ws/live", subprotocols=["v12.stomp"], on_message=client.on_message)
    proto.send_text(frame("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"}))
    await asyncio.wait_for(client.connected, 15)
    if subscribe:
        proto.send_text(frame("SUBSCRIBE", {"id": "sub-0", "destination": subscribe, "receipt": "r"}))
    return client, proto


async def run(args, server, room_id):
    topic = f"/topic/live/{room_id}/reactions"
    viewers = [await open_client(server.http_port, topic) for _ in range(args.viewers)]
    senders = [await open_client(server.http_port) for _ in range(args.senders)]
    await asyncio.sleep(0.5)
    batch = "".join(
        frame("SEND", {"destination": f"/app/live/{room_id}/react", "content-type": "application/json"}, json.dumps({"type": KINDS[i % 5]}))
        for i in range(args.batch))
    sent = 0
    t0 = time.monotonic()
    rounds = max(1, args.per_sender // args.batch)
    for _ in range(rounds):
        for _, proto in senders:
            proto.send_text(batch)
            sent += args.batch
        await asyncio.sleep(args.pause)
    # Until the backlog is processed: a second without a new window.
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        count = len(viewers[0][0].frames)
        await asyncio.sleep(1.0)
        if len(viewers[0][0].frames) == count:
            break
    sending = (viewers[0][0].frames[-1][0] - t0) if viewers[0][0].frames else time.monotonic() - t0
    first = viewers[0][0].frames
    accepted = sum(sum(json.loads(body)["counts"].values()) for _, body in first)
    rates = []
    for client, _ in viewers:
        if len(client.frames) >= 2:
            span = client.frames[-1][0] - client.frames[0][0]
            rates.append((len(client.frames) - 1) / span if span > 0 else 0)
    for _, proto in viewers + senders:
        proto.close()
    return sent, accepted, sending, len(first), rates


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=".build-bench/release/livehub")
    p.add_argument("--viewers", type=int, default=200)
    p.add_argument("--senders", type=int, default=50)
    p.add_argument("--batch", type=int, default=20, help="reactions per WebSocket message")
    p.add_argument("--pause", type=float, default=0.005, help="seconds between rounds of sends")
    p.add_argument("--per-sender", type=int, default=2000, help="reactions each sender sends")
    p.add_argument("--timeout", type=float, default=40, help="longest wait for the backlog")
    p.add_argument("--window-ms", type=int, default=250)
    args = p.parse_args()
    hu.raise_nofile(4096)
    server = hu.Server(args.bin, hu.RESULTS / "reactions-bench.log", extra_env={
        "LIVEHUB_REACTIONS_PER_SECOND": "10000", "LIVEHUB_REACTION_WINDOW_MS": str(args.window_ms)}).start()
    try:
        status, room = server.request("POST", "/v1/notifications/live/rooms", {"title": "reactions bench"}, token=server.tokens["owner"])
        assert status == 201, room
        cpu0 = server.cpu_s()
        sent, accepted, sending, windows, rates = asyncio.run(run(args, server, room["id"]))
        cpu = server.cpu_s() - cpu0
    finally:
        server.stop()
    per_viewer = sum(rates) / len(rates) if rates else 0
    print(f"reactions: {sent} sent by {args.senders} connections, {accepted} accepted and summed in {sending:.1f}s "
          f"= {accepted / sending:,.0f} reactions/s absorbed; server CPU {cpu:.1f}s")
    print(f"viewers: {args.viewers}, {windows} windows at {args.window_ms} ms -> "
          f"{per_viewer:.2f} frames per viewer per second (max {max(rates) if rates else 0:.2f})")
    hu.RESULTS.mkdir(parents=True, exist_ok=True)
    (hu.RESULTS / "reactions-bench.json").write_text(json.dumps({
        "sent": sent, "accepted": accepted, "seconds": sending, "reactions_per_s": accepted / sending,
        "frames_per_viewer_per_s": per_viewer, "viewers": args.viewers, "senders": args.senders, "server_cpu_s": cpu}, indent=2))


if __name__ == "__main__":
    main()
