#!/usr/bin/env python3
"""Flash-deal claims (issue 22 §1): 1,000 buyers claim one deal at the same moment.

Each buyer has its own JWT (minted with the server's dev secret) and its own keep-alive HTTP/1.1
connection, opened beforehand; a start signal releases all 1,000 `POST …/deals/{id}/claims` at
once. Every claim is one transaction (atomic decrement + per-buyer check), so the answers must be
exactly `--units` 201s and the rest 409 `SOLD_OUT` — the bench fails otherwise. Reported: claims/s
(answers over the time from the first send to the last answer) and the claim latency p50/p99
(send → full answer, as a buyer sees it), per round and as the median of the rounds.

    python3 bench/deals/claims_bench.py --bin .build-bench/release/livehub [--buyers 1000] [--units 100] [--rounds 3]
        [--database-url postgres://…]   # PostgreSQL instead of the default SQLite file

Stdlib only; the load generator is one asyncio loop (its CPU is reported: at ~100 % of a core it
would set the pace, not the server). Writes bench/results/deal-claims.json.
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hub"))
from hubutil import sign  # noqa: E402

API = "/v1/notifications/live"


class Buyer:
    def __init__(self, token):
        self.token = token
        self.reader = self.writer = None

    async def open(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)

    async def post(self, path, body):
        data = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        self.writer.write(head + data)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return status, json.loads(payload or b"null")

    def close(self):
        if self.writer:
            self.writer.close()


async def round_(server, secret, owner, args, index):
    _, room = common.http_json("POST", server.base + f"{API}/rooms", {"title": f"deal bench {index}"}, owner)
    _, product = common.http_json("POST", server.base + f"{API}/rooms/{room['id']}/products",
                                  {"productId": "bench-sku", "livePrice": 100, "productName": "Bench"}, owner)
    _, deal = common.http_json("POST", server.base + f"{API}/rooms/{room['id']}/deals",
                               {"liveProductId": product["id"], "dealPrice": 10, "quantity": args.units, "perBuyerLimit": 1,
                                "durationSeconds": 600}, owner)
    expiry = int(time.time()) + 3600
    buyers = [Buyer(sign(secret, {"sub": f"bench-{index}-{i}", "username": f"b{i}", "exp": expiry})) for i in range(args.buyers)]
    sem = asyncio.Semaphore(100)

    async def connect(buyer):
        async with sem:
            await buyer.open(server.http_port)

    await asyncio.gather(*(connect(b) for b in buyers))
    path = f"{API}/rooms/{room['id']}/deals/{deal['id']}/claims"
    go = asyncio.Event()
    latencies, answers = [], []

    async def claim(buyer):
        await go.wait()
        sent = time.perf_counter()
        status, body = await buyer.post(path, {"quantity": 1})
        latencies.append((time.perf_counter() - sent) * 1000)
        answers.append((status, body))

    tasks = [asyncio.create_task(claim(b)) for b in buyers]
    await asyncio.sleep(0.2)
    cpu0 = time.process_time()
    began = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu0
    for b in buyers:
        b.close()
    won = sum(1 for s, _ in answers if s == 201)
    sold_out = sum(1 for s, body in answers if s == 409 and body.get("error") == "SOLD_OUT")
    _, listed = common.http_json("GET", server.base + f"{API}/rooms/{room['id']}/deals")
    ok = won == args.units and sold_out == args.buyers - args.units and listed[0]["remaining"] == 0
    latencies.sort()
    return {
        "buyers": args.buyers, "units": args.units, "successes": won, "sold_out": sold_out, "exact": ok,
        "seconds": round(elapsed, 3), "claims_per_s": round(args.buyers / elapsed, 1),
        "p50_ms": round(common.percentile(latencies, 50), 2), "p99_ms": round(common.percentile(latencies, 99), 2),
        "loadgen_cpu_pct": round(100 * cpu / elapsed, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=".build-bench/release/livehub")
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    common.CACHE.mkdir(parents=True, exist_ok=True)
    server = common.LiveHub(args.bin, common.CACHE)
    if args.database_url:
        server.env["LIVEHUB_DATABASE_URL"] = args.database_url
    backend = "postgresql" if args.database_url else "sqlite"
    try:
        server.start()
        secret = (server.dir / "data" / "jwt-secret").read_text().strip()
        owner = {"Authorization": f"Bearer {server.token}"}
        rounds = []
        for index in range(args.rounds):
            result = asyncio.run(round_(server, secret, owner, args, index))
            rounds.append(result)
            common.log(f"round {index + 1}: {result['successes']} of {result['buyers']} claims won ({'exact' if result['exact'] else 'WRONG'}), "
                       f"{result['claims_per_s']} claims/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                       f"load generator {result['loadgen_cpu_pct']} % CPU")
    finally:
        server.stop()
    summary = {
        "backend": backend, "buyers": args.buyers, "units": args.units, "rounds": rounds,
        "claims_per_s": statistics.median(r["claims_per_s"] for r in rounds),
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds), "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "exact": all(r["exact"] for r in rounds),
    }
    out = common.BENCH / "results" / "deal-claims.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"deal claims ({backend}): {args.buyers} buyers on {args.units} units, median of {len(rounds)}: "
          f"{summary['claims_per_s']} claims/s, p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
          f"exactly {args.units} successes every round: {summary['exact']}  → {out}")
    if not summary["exact"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
