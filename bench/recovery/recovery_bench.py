#!/usr/bin/env python3
"""Recovery after a reconnect (issue 22 §4): the time to recover a 1,000-message gap.

A STOMP subscriber holds a room's chat and product topics, notes the last `offset`/`epoch` of each,
and goes away; 1,000 orders then put 1,000 ORDER lines on the chat topic (rows of `live_chat`) and
1,000 product lists on the product topic (the history ring). It comes back and re-subscribes with
`recover-offset`/`recover-epoch`; printed: the time from its SUBSCRIBE to the RECOVERY marker, with
the count of messages handed over — chat from the database, product from the ring.

  python3 bench/recovery/recovery_bench.py --bin .build-bench/release/livehub
"""
import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hub"))
import hubutil as hu  # noqa: E402
import wsclient  # noqa: E402


def frame(command, headers, body=""):
    return command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n" + body + "\x00"


class Client:
    def __init__(self):
        self.buffer = b""
        self.frames = asyncio.Queue()

    def on_message(self, payload, t_ns):
        self.buffer += payload
        while b"\x00" in self.buffer:
            raw, _, self.buffer = self.buffer.partition(b"\x00")
            text = raw.decode(errors="replace").lstrip("\r\n")
            if not text:
                continue
            head, _, body = text.partition("\n\n")
            lines = head.split("\n")
            headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
            self.frames.put_nowait((lines[0], headers, body))

    async def next(self, command, destination=None, timeout=30):
        while True:
            got = await asyncio.wait_for(self.frames.get(), timeout)
            if got[0] == command and (destination is None or got[1].get("destination") == destination):
                return got


async def open_client(port):
    client = Client()
    proto = await wsclient.connect("127.0.0.1", port, "/ws/live", subprotocols=["v12.stomp"], on_message=client.on_message)
    proto.send_text(frame("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"}))
    await client.next("CONNECTED")
    return client, proto


async def recover_time(port, destination, position):
    client, proto = await open_client(port)
    t0 = time.monotonic()
    proto.send_text(frame("SUBSCRIBE", {"id": "sub-0", "destination": destination, "recover-offset": position[0], "recover-epoch": position[1]}))
    missed = 0
    while True:
        _, headers, body = await client.next("MESSAGE", destination)
        if "recovered" in headers:
            elapsed = time.monotonic() - t0
            proto.close()
            return elapsed, missed, headers["recovered"] == "true"
        missed += 1


async def run(args, server, room_id):
    chat, product = f"/topic/live/{room_id}/chat", f"/topic/live/{room_id}/product"
    internal = server.tokens["internal"]
    client, proto = await open_client(server.http_port)
    proto.send_text(frame("SUBSCRIBE", {"id": "c", "destination": chat}))
    proto.send_text(frame("SUBSCRIBE", {"id": "p", "destination": product, "receipt": "r"}))
    await client.next("RECEIPT")

    def order(i):
        status, body = server.request("POST", "/v1/notifications/live/orders", {
            "orderId": f"bench-{i}", "roomId": room_id, "userId": f"u{i}", "username": f"buyer {i}", "productId": 1,
            "productName": "Tea", "amount": 5}, token=internal)
        assert status in (200, 201), body

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as pool:
        await loop.run_in_executor(pool, order, "first")
    positions = {}
    for dest in (chat, product):
        _, headers, _ = await client.next("MESSAGE", dest)
        positions[dest] = (headers["offset"], headers["epoch"])
    proto.close()
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        await asyncio.gather(*[loop.run_in_executor(pool, order, i) for i in range(args.gap)])
    filling = time.monotonic() - t0
    results = {}
    for name, dest in (("chat (database)", chat), ("product (history ring)", product)):
        results[name] = await recover_time(server.http_port, dest, positions[dest])
    return filling, results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=".build-bench/release/livehub")
    p.add_argument("--gap", type=int, default=1000)
    args = p.parse_args()
    server = hu.Server(args.bin, hu.RESULTS / "recovery-bench.log", extra_env={
        "LIVEHUB_HUB_HISTORY_SIZE": str(args.gap), "LIVEHUB_RECOVERY_MAX_MESSAGES": str(args.gap)}).start()
    try:
        status, room = server.request("POST", "/v1/notifications/live/rooms", {"title": "recovery bench"}, token=server.tokens["owner"])
        assert status == 201, room
        status, body = server.request("POST", f"/v1/notifications/live/rooms/{room['id']}/products",
                                      {"productId": 1, "livePrice": 5, "productName": "Tea"}, token=server.tokens["owner"])
        assert status == 201, body
        filling, results = asyncio.run(run(args, server, room["id"]))
    finally:
        server.stop()
    print(f"gap: {args.gap} orders while away ({filling:.1f}s to make)")
    for name, (seconds, missed, recovered) in results.items():
        print(f"recovery of {name}: {missed} messages in {seconds * 1000:.0f} ms (recovered={recovered})")
    hu.RESULTS.mkdir(parents=True, exist_ok=True)
    (hu.RESULTS / "recovery-bench.json").write_text(json.dumps(
        {name: {"seconds": s, "missed": m, "recovered": r} for name, (s, m, r) in results.items()}, indent=2))


if __name__ == "__main__":
    main()
