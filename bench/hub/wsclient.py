"""A minimal asyncio WebSocket client (RFC 6455) for load generation: thousands of connections
in one event loop, stdlib only.

- client handshake (GET + Upgrade, Sec-WebSocket-Key / Accept check, optional subprotocol)
- masked text frames out; unmasked frames in (text/binary, continuation, ping → pong, close)
- an `asyncio.Protocol` (no streams) so per-frame overhead stays small; `on_message(payload, t_ns)`
  gets the payload bytes and the monotonic receive time of the TCP read that completed it.
"""
import asyncio
import base64
import hashlib
import os
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 16 * 1024 * 1024


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    reps = (n + 3) // 4
    k = int.from_bytes((key * reps)[:n], "little")
    return (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


class WSClientProtocol(asyncio.Protocol):
    def __init__(self, host, port, path, subprotocols=None, on_message=None, on_close=None, on_open=None):
        self.host, self.port, self.path = host, port, path
        self.subprotocols = subprotocols
        self.on_message = on_message or (lambda payload, t: None)
        self.on_close = on_close
        self.on_open = on_open
        self.transport = None
        self.buf = bytearray()
        self.handshaken = False
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.fragments = None
        self.close_code = None
        self.key = base64.b64encode(os.urandom(16))
        self.subprotocol = None
        self.bytes_in = 0

    # -- asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key.decode()}", "Sec-WebSocket-Version: 13"]
        if self.subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(self.subprotocols))
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        if self.on_close:
            self.on_close(self)

    def data_received(self, data):
        now = time.monotonic_ns()
        self.bytes_in += len(data)
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[:end + 4]
            status = head.split("\r\n", 1)[0]
            headers = {}
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            expect = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
            if " 101 " not in status + " " or headers.get("sec-websocket-accept") != expect:
                self.opened.set_exception(ConnectionError(f"handshake refused: {status}"))
                self.transport.close()
                return
            self.subprotocol = headers.get("sec-websocket-protocol")
            self.handshaken = True
            self.opened.set_result(True)
            if self.on_open:  # before any frame that came with the 101 is dispatched
                self.on_open(self)
        # frames
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                hdr = 10
            if b1 & 0x80:  # server must not mask; tolerate anyway
                hdr += 4
            if length > MAX_FRAME:
                self.transport.close()
                return
            if n - pos < hdr + length:
                break
            payload = bytes(buf[pos + hdr:pos + hdr + length])
            if b1 & 0x80:
                payload = _mask(payload, bytes(buf[pos + hdr - 4:pos + hdr]))
            pos += hdr + length
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode in (1, 2):
                if fin:
                    self.on_message(payload, now)
                else:
                    self.fragments = [payload]
            elif opcode == 0:
                if self.fragments is not None:
                    self.fragments.append(payload)
                    if fin:
                        whole = b"".join(self.fragments)
                        self.fragments = None
                        self.on_message(whole, now)
            elif opcode == 9:
                self.transport.write(encode_frame(10, payload))
            elif opcode == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                try:
                    self.transport.write(encode_frame(8, payload[:2]))
                except Exception:
                    pass
                self.transport.close()
                break
        if pos:
            del buf[:pos]

    # -- API
    def send_text(self, text):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(1, text.encode() if isinstance(text, str) else text))

    def close(self, code=1000):
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.write(encode_frame(8, struct.pack("!H", code)))
            except Exception:
                pass
            self.transport.close()


async def connect(host, port, path, subprotocols=None, on_message=None, on_close=None, timeout=15, on_open=None):
    """`on_open(proto)` runs as soon as the 101 is accepted, before frames that arrived with it."""
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: WSClientProtocol(host, port, path, subprotocols, on_message, on_close, on_open),
                               host, port),
        timeout)
    await asyncio.wait_for(proto.opened, timeout)
    return proto
