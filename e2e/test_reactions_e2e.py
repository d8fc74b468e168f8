"""Issue 22 §2 end to end: reactions. A 10,000-reaction burst from many STOMP connections reaches a
viewer as aggregated windows (at most ~4 frames a second at 250 ms) whose counts add up to what was
accepted; an unknown type is refused; guests are limited per connection, users per user."""
import json
import threading
import time

from stomp_client import StompWS, frame

ENV = {"LIVEHUB_REACTIONS_PER_SECOND": "1000", "LIVEHUB_REACTION_WINDOW_MS": "250"}


def ws_url(hub):
    return f"ws://127.0.0.1:{hub.http_port}/ws/live"


def react_frames(room_id, kinds):
    out = []
    for kind in kinds:
        body = json.dumps({"type": kind})
        out.append(frame("SEND", {"destination": f"/app/live/{room_id}/react", "content-type": "application/json", "content-length": str(len(body))}, body))
    return out


def blast(client, room_id, kinds, per_message=50):
    """Sends the reactions, several STOMP frames per WebSocket message (as a busy client would)."""
    frames = react_frames(room_id, kinds)
    for i in range(0, len(frames), per_message):
        client.send_raw("".join(frames[i:i + per_message]))


def collect_windows(viewer, destination, expected_total, timeout=30):
    windows = []
    total = 0
    deadline = time.time() + timeout
    while total < expected_total and time.time() < deadline:
        _, headers, body = viewer.expect("MESSAGE", timeout=max(0.05, deadline - time.time()), where=lambda h, b: h.get("destination") == destination)
        parsed = json.loads(body)
        windows.append((time.time(), headers, parsed))
        total += sum(parsed["counts"].values())
    return windows, total


def refusals(client, seconds=0.5):
    return [json.loads(f[2]) for f in client.drain(seconds) if f[0] == "MESSAGE" and f[1].get("destination") == "/user/queue/errors"]


def test_a_10000_reaction_burst_reaches_a_viewer_as_at_most_4_windows_a_second(make_livehub):
    hub = make_livehub(env=ENV).start()
    rid = hub.create_room("hearts")["id"]
    destination = f"/topic/live/{rid}/reactions"
    viewer = StompWS(ws_url(hub))
    senders = [StompWS(ws_url(hub)) for _ in range(20)]
    try:
        viewer.subscribe(destination, "r", receipt="ready")
        for s in senders:
            s.subscribe("/user/queue/errors", "e", receipt="e")
        kinds = ["heart"] * 300 + ["fire"] * 100 + ["clap"] * 50 + ["laugh"] * 30 + ["wow"] * 20  # 500 per sender
        started = time.time()
        threads = [threading.Thread(target=blast, args=(s, rid, kinds)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        windows, total = collect_windows(viewer, destination, 10_000)
        elapsed = windows[-1][0] - started
        refused = sum(len(refusals(s, 0.05)) for s in senders)
        assert refused == 0
        assert total == 10_000, f"{total} in {len(windows)} windows"
        sums = {}
        for _, _, w in windows:
            assert w["windowMs"] == 250 and all(n > 0 for n in w["counts"].values())
            for k, n in w["counts"].items():
                sums[k] = sums.get(k, 0) + n
        assert sums == {"heart": 6000, "fire": 2000, "clap": 1000, "laugh": 600, "wow": 400}
        # At most one frame per 250 ms window (with scheduling slack): ≤ ~4 per second.
        assert len(windows) <= elapsed / 0.25 + 2, f"{len(windows)} frames in {elapsed:.2f}s"
        # The cadence is one window per 250 ms: the median gap between frames, as received (a loaded
        # client may read two frames back to back after a stall, so not the smallest gap).
        gaps = sorted(b[0] - a[0] for a, b in zip(windows, windows[1:]))
        assert not gaps or gaps[len(gaps) // 2] > 0.2, gaps
        assert all(int(b[1]["offset"]) > int(a[1]["offset"]) for a, b in zip(windows, windows[1:])), "reaction windows carry offsets"
        print(f"10000 reactions in {elapsed:.2f}s -> {len(windows)} frames ({len(windows) / max(elapsed, 0.001):.1f}/s)")
    finally:
        viewer.close()
        for s in senders:
            s.close()


def test_an_unknown_type_is_refused_and_guests_and_users_are_rate_limited(make_livehub):
    low = 20
    hub = make_livehub(env={"LIVEHUB_REACTIONS_PER_SECOND": str(low)}).start()
    rid = hub.create_room("limits")["id"]
    destination = f"/topic/live/{rid}/reactions"
    viewer = StompWS(ws_url(hub))
    guest = StompWS(ws_url(hub))
    tabs = [StompWS(ws_url(hub), token=hub.tokens["viewer"]) for _ in range(2)]
    try:
        viewer.subscribe(destination, "r", receipt="ready")
        for c in [guest] + tabs:
            c.subscribe("/user/queue/errors", "e", receipt="e")
        for bad in [{"type": "poop"}, {"type": 1}, {}]:
            guest.send_json(f"/app/live/{rid}/react", bad, receipt="bad")
            _, headers, _ = guest.expect("RECEIPT")
            assert headers["status"] == "refused" and headers["error-code"] in ("invalid-reaction", "invalid-payload"), headers
        refusals(guest, 0.2)
        started = time.time()
        # A guest connection sends 200 at once; one signed-in user sends 100 on each of two tabs
        # (one budget for both). A last SEND with a receipt tells when each was processed.
        blast(guest, rid, ["heart"] * 200)
        guest.send_json(f"/app/live/{rid}/react", {"type": "wow"}, receipt="done")
        threads = [threading.Thread(target=blast, args=(t, rid, ["clap"] * 100)) for t in tabs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for t in tabs:
            t.send_json(f"/app/live/{rid}/react", {"type": "wow"}, receipt="done")
        for c in [guest] + tabs:
            c.expect("RECEIPT", timeout=20, where=lambda h, b: h.get("receipt-id") == "done")
        took = time.time() - started
        guest_refused = len([r for r in refusals(guest) if r["error"] == "rate-limited"])
        user_refused = sum(len([r for r in refusals(t) if r["error"] == "rate-limited"]) for t in tabs)
        guest_accepted, user_accepted = 201 - guest_refused, 202 - user_refused
        budget = low + low * took + 2  # a full bucket, then the refill while they were processed
        assert low <= guest_accepted <= budget, (guest_accepted, took)
        assert low <= user_accepted <= budget, ("one budget for the user's two tabs", user_accepted, took)
        accepted = guest_accepted + user_accepted
        windows, total = collect_windows(viewer, destination, accepted, timeout=5)
        assert total == accepted
        assert not [f for f in viewer.drain(0.6) if f[0] == "MESSAGE" and f[1].get("destination") == destination], "nothing more than what was accepted"
    finally:
        for c in [viewer, guest] + tabs:
            c.close()
