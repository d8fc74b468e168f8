"""A raw RTMP publisher for hostile tests: the simple handshake, RTMP 1.0 chunking and AMF0, with
every field under the test's control (metadata numbers, sequence headers, timestamps), so a test can
send what ffmpeg and OBS never would. Client → server only; the server's answers are read and
mostly ignored (the test looks at what the server does, not at what it says)."""
import socket
import struct
import time


def amf(value):
    """AMF0: None, bool, numbers, str, list (strict array), ("object"|"ecma", [(key, value)])."""
    if value is None:
        return b"\x05"
    if isinstance(value, bool):
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, (int, float)):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        data = value.encode()
        return b"\x02" + struct.pack(">H", len(data)) + data
    if isinstance(value, list):
        return b"\x0a" + struct.pack(">I", len(value)) + b"".join(amf(v) for v in value)
    kind, pairs = value
    body = b"".join(struct.pack(">H", len(k.encode())) + k.encode() + amf(v) for k, v in pairs)
    head = b"\x03" if kind == "object" else b"\x08" + struct.pack(">I", len(pairs))
    return head + body + b"\x00\x00\x09"


class BitWriter:
    """Exp-Golomb writer for hand-made H.264 SPS (ITU-T H.264 §9.1)."""

    def __init__(self):
        self.bits = []

    def u(self, value, count):
        self.bits += [(value >> i) & 1 for i in range(count - 1, -1, -1)]

    def ue(self, value):
        x = value + 1
        length = x.bit_length()
        self.u(0, length - 1)
        self.u(x, length)

    def se(self, value):
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self, header):
        bits = self.bits + [1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
        out, zeros = bytearray(header), 0
        for byte in raw:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def h264_sps(width_mbs_minus1=39, height_units_minus1=22, scaling_delta=None):
    """A High-profile SPS; absurd sizes or an out-of-range scaling-list delta on request."""
    w = BitWriter()
    w.u(100, 8), w.u(0, 8), w.u(40, 8)
    w.ue(0), w.ue(1), w.ue(0), w.ue(0), w.u(0, 1)
    w.u(1 if scaling_delta is not None else 0, 1)
    if scaling_delta is not None:
        w.u(1, 1)
        w.se(scaling_delta)
        for _ in range(15):
            w.se(0)
        for _ in range(7):
            w.u(0, 1)
    w.ue(0), w.ue(2), w.ue(1), w.u(0, 1)
    w.ue(width_mbs_minus1), w.ue(height_units_minus1)
    w.u(1, 1), w.u(1, 1), w.u(0, 1), w.u(0, 1)
    return w.nal(b"\x67")


def avcc(sps, pps=b"\x68\xee\x3c\x80"):
    return bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps + b"\x01" + struct.pack(">H", len(pps)) + pps


class RawPublisher:
    def __init__(self, port, host="127.0.0.1", timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.chunk_size = 128
        self.received = bytearray()

    def handshake(self):
        self.sock.sendall(b"\x03" + bytes(1536))
        self._read_exactly(1 + 2 * 1536)
        self.sock.sendall(bytes(1536))

    def _read_exactly(self, count):
        data = bytearray()
        while len(data) < count:
            piece = self.sock.recv(count - len(data))
            if not piece:
                raise ConnectionError("closed during the handshake")
            data += piece
        return bytes(data)

    def message(self, csid, type_id, msid, timestamp, body):
        """fmt 0 first chunk (extended timestamp when needed), fmt 3 continuations."""
        extended = timestamp >= 0xFFFFFF
        head = bytes([csid]) + (0xFFFFFF if extended else timestamp).to_bytes(3, "big")
        head += len(body).to_bytes(3, "big") + bytes([type_id]) + struct.pack("<I", msid)
        ext = struct.pack(">I", timestamp & 0xFFFFFFFF) if extended else b""
        out = bytearray(head + ext)
        for offset in range(0, max(1, len(body)), self.chunk_size):
            if offset:
                out += bytes([0xC0 | csid]) + ext
            out += body[offset:offset + self.chunk_size]
        return bytes(out)

    def send(self, data):
        self.sock.sendall(data)

    def set_chunk_size(self, size):
        self.send(self.message(2, 1, 0, 0, struct.pack(">I", size)))
        self.chunk_size = size

    def command(self, name, tx, *args, msid=0, csid=3):
        self.send(self.message(csid, 20, msid, 0, amf(name) + amf(tx) + b"".join(amf(a) for a in args)))

    def publish(self, key, app="live"):
        """connect … publish(key), as ffmpeg sends them."""
        self.handshake()
        self.set_chunk_size(4096)
        self.command("connect", 1, ("object", [("app", app), ("type", "nonprivate"), ("tcUrl", f"rtmp://127.0.0.1/{app}")]))
        self.command("releaseStream", 2, None, key)
        self.command("FCPublish", 3, None, key)
        self.command("createStream", 4, None)
        self.command("publish", 5, None, key, "live", msid=1, csid=4)

    def metadata(self, pairs):
        self.send(self.message(5, 18, 1, 0, amf("@setDataFrame") + amf("onMetaData") + amf(("ecma", pairs))))

    def video(self, timestamp, body):
        self.send(self.message(6, 9, 1, timestamp, body))

    def audio(self, timestamp, body):
        self.send(self.message(4, 8, 1, timestamp, body))

    def avc_sequence_header(self, record):
        self.video(0, b"\x17\x00\x00\x00\x00" + record)

    def avc_frame(self, timestamp, keyframe, nal=b"\x65\x88\x84\x00\x33\xff"):
        self.video(timestamp, (b"\x17" if keyframe else b"\x27") + b"\x01\x00\x00\x00" + struct.pack(">I", len(nal)) + nal)

    def aac_sequence_header(self, config=b"\x11\x90"):
        self.audio(0, b"\xaf\x00" + config)

    def is_closed_by_server(self, within=5.0):
        """True once the server closed the connection (reads and drops what it sent)."""
        deadline = time.time() + within
        self.sock.settimeout(0.2)
        while time.time() < deadline:
            try:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.received += data
            except socket.timeout:
                continue
            except OSError:
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
