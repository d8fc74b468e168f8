"""A small hand-written STOMP 1.2 client over websocket-client (what @stomp/stompjs does on the wire)."""
import json
import queue
import threading
import time

import websocket


def frame(command, headers=None, body=""):
    lines = [command] + [f"{k}:{v}" for k, v in (headers or {}).items()]
    return "\n".join(lines) + "\n\n" + body + "\x00"


def parse(text):
    """Parses every frame in one WebSocket message; heart-beat EOLs are skipped."""
    frames = []
    while text:
        text = text.lstrip("\r\n")
        if not text:
            break
        head, _, rest = text.partition("\n\n")
        lines = head.replace("\r\n", "\n").split("\n")
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers.setdefault(key, value)
        if "content-length" in headers:
            length = int(headers["content-length"])
            raw = rest.encode()
            body = raw[:length].decode()
            text = raw[length + 1:].decode()
        else:
            body, _, text = rest.partition("\x00")
        frames.append((lines[0], headers, body))
    return frames


class StompWS:
    def __init__(self, url, token=None, subprotocols=("v12.stomp", "v11.stomp", "v10.stomp"), sockjs=False, connect=True):
        self.sockjs = sockjs
        self.ws = websocket.create_connection(url, subprotocols=list(subprotocols) if subprotocols else None, timeout=10)
        self.frames = queue.Queue()
        self.closed = threading.Event()
        self.raw = []
        threading.Thread(target=self._read, daemon=True).start()
        if sockjs:
            assert self._next_raw(5) == "o"
        if connect:
            headers = {"accept-version": "1.2,1.1,1.0", "heart-beat": "0,0"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self.send_frame("CONNECT", headers)
            command, headers, _ = self.expect("CONNECTED")
            self.session = headers.get("session")

    def _next_raw(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.raw:
                return self.raw.pop(0)
            time.sleep(0.01)
        raise TimeoutError("no SockJS frame")

    def _read(self):
        try:
            while True:
                try:
                    message = self.ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue  # the socket's 10 s timeout is for connecting and sending; a quiet read is not a close
                if isinstance(message, bytes):
                    message = message.decode()
                if not message:
                    continue
                if self.sockjs:
                    kind = message[0]
                    if kind == "a":
                        for item in json.loads(message[1:]):
                            for parsed in parse(item):
                                self.frames.put(parsed)
                    elif kind in "oc":
                        self.raw.append(message)
                        if kind == "c":
                            break
                    continue
                for parsed in parse(message):
                    self.frames.put(parsed)
        except Exception:
            pass
        finally:
            self.closed.set()

    def send_raw(self, text):
        if self.sockjs:
            self.ws.send(json.dumps([text]))
        else:
            self.ws.send(text)

    def send_frame(self, command, headers=None, body=""):
        self.send_raw(frame(command, headers, body))

    def subscribe(self, destination, sub_id, receipt=None):
        headers = {"destination": destination, "id": sub_id, "ack": "auto"}
        if receipt:
            headers["receipt"] = receipt
        self.send_frame("SUBSCRIBE", headers)
        if receipt:
            return self.expect("RECEIPT")

    def send_json(self, destination, payload, receipt=None):
        body = json.dumps(payload)
        headers = {"destination": destination, "content-type": "application/json", "content-length": str(len(body.encode()))}
        if receipt:
            headers["receipt"] = receipt
        self.send_frame("SEND", headers, body)

    def expect(self, command, timeout=10, where=None):
        """The next frame of `command` (optionally matching `where(headers, body)`); others are kept."""
        deadline = time.time() + timeout
        skipped = []
        try:
            while time.time() < deadline:
                try:
                    got = self.frames.get(timeout=max(0.01, deadline - time.time()))
                except queue.Empty:
                    break
                if got[0] == command and (where is None or where(got[1], got[2])):
                    return got
                skipped.append(got)
        finally:
            for item in skipped:
                self.frames.put(item)
        raise AssertionError(f"no {command} within {timeout}s; other frames: {skipped[:5]}")

    def messages(self, destination, count, timeout=10):
        out = []
        deadline = time.time() + timeout
        while len(out) < count and time.time() < deadline:
            _, headers, body = self.expect("MESSAGE", timeout=max(0.05, deadline - time.time()), where=lambda h, b: h.get("destination") == destination)
            out.append((headers, json.loads(body)))
        return out

    def drain(self, seconds=0.3):
        time.sleep(seconds)
        items = []
        while not self.frames.empty():
            items.append(self.frames.get())
        return items

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
