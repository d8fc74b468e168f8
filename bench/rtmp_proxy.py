"""A transparent TCP proxy for one RTMP publisher that timestamps every video message it forwards.

The proxy sits between ffmpeg and the server on 127.0.0.1. It parses the client→server RTMP chunk
stream (handshake, chunk headers fmt 0-3, Set Chunk Size) just enough to know, for every video
message (type 9), its RTMP timestamp, whether it is a keyframe NAL unit, and the wall time at which
its last byte was handed to the server (`time.time()` right before `sendall`). Bytes are forwarded
unchanged. Latency figures are then "server saw the complete frame" → "playlist lists it".
"""
import socket
import struct
import threading
import time

HANDSHAKE = 1 + 1536 + 1536  # C0 + C1 + C2


class RtmpObserver:
    def __init__(self):
        self.buf = bytearray()
        self.skip = HANDSHAKE
        self.chunk_size = 128
        self.cs = {}
        self.video = []  # (rtmp ts ms, keyframe NALU?, avc packet type, wall time complete)
        self.audio = []  # (rtmp ts ms, wall time complete) of audio frames (AAC raw, not the sequence header)
        self.first_video_wall = None

    def feed(self, data, wall):
        self.buf += data
        pos = 0
        buf = self.buf
        if self.skip:
            n = min(self.skip, len(buf))
            pos += n
            self.skip -= n
        while True:
            start = pos
            if len(buf) - pos < 1:
                break
            b0 = buf[pos]
            fmt, csid, hl = b0 >> 6, b0 & 0x3F, 1
            if csid == 0:
                if len(buf) - pos < 2:
                    break
                csid, hl = buf[pos + 1] + 64, 2
            elif csid == 1:
                if len(buf) - pos < 3:
                    break
                csid, hl = buf[pos + 1] + buf[pos + 2] * 256 + 64, 3
            mh = (11, 7, 3, 0)[fmt]
            if len(buf) - pos < hl + mh:
                break
            st = self.cs.setdefault(csid, {"ts": 0, "delta": 0, "len": 0, "type": 0, "rem": 0, "ext": False, "first": b"", "start": None})
            h = pos + hl
            tsf = length = mtype = None
            if fmt <= 2:
                tsf = int.from_bytes(buf[h:h + 3], "big")
            if fmt <= 1:
                length = int.from_bytes(buf[h + 3:h + 6], "big")
                mtype = buf[h + 6]
            ext = (tsf == 0xFFFFFF) if fmt <= 2 else st["ext"]
            hdr = hl + mh + (4 if ext else 0)
            if len(buf) - pos < hdr:
                break
            if ext:
                tsf = struct.unpack(">I", buf[pos + hl + mh:pos + hdr])[0] if fmt <= 2 else tsf
            new_msg = fmt < 3 or st["rem"] == 0
            # payload size of this chunk
            msg_len = length if length is not None else st["len"]
            rem = msg_len if new_msg else st["rem"]
            n = min(self.chunk_size, rem)
            if len(buf) - pos < hdr + n:
                break
            # commit header
            if fmt == 0:
                st["ts"], st["delta"] = tsf, 0
            elif fmt in (1, 2):
                st["delta"] = tsf
                st["ts"] += tsf
            elif new_msg:
                st["ts"] += st["delta"]
            if fmt <= 2:
                st["ext"] = ext
            if length is not None:
                st["len"], st["type"] = length, mtype
            payload = bytes(buf[pos + hdr:pos + hdr + n])
            if new_msg:
                st["rem"] = st["len"]
                st["first"] = payload[:8]
            st["rem"] -= n
            pos += hdr + n
            if st["rem"] == 0:
                self._message(st["type"], st["ts"], st["first"], wall)
            del start
        del buf[:pos]

    def _message(self, mtype, ts, first, wall):
        if mtype == 1 and len(first) >= 4:
            self.chunk_size = struct.unpack(">I", first[:4])[0] & 0x7FFFFFFF
        elif mtype == 9 and len(first) >= 2:
            key = (first[0] >> 4) == 1
            avc_type = first[1] if (first[0] & 0x0F) == 7 else 1
            if avc_type == 1 and self.first_video_wall is None:
                self.first_video_wall = wall
            self.video.append((ts, key and avc_type == 1, avc_type, wall))
        elif mtype == 8 and len(first) >= 2 and not ((first[0] >> 4) == 10 and first[1] == 0):
            self.audio.append((ts, wall))


class RtmpProxy:
    """Accepts one connection on 127.0.0.1:port and relays it to 127.0.0.1:upstream_port."""

    def __init__(self, upstream_port, max_seconds=120):
        self.upstream_port = upstream_port
        self.max_seconds = max_seconds
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.lsock.settimeout(1.0)
        self.port = self.lsock.getsockname()[1]
        self.obs = RtmpObserver()
        self.connected_wall = None
        self._stop = threading.Event()
        self._socks = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        deadline = time.time() + self.max_seconds
        while not self._stop.is_set() and time.time() < deadline:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connected_wall = time.time()
            u = socket.create_connection(("127.0.0.1", self.upstream_port), 5)
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(1.0)
            self._socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()
            return  # one publisher per proxy

    def _pump(self, src, dst, observe):
        deadline = time.time() + self.max_seconds
        try:
            while not self._stop.is_set() and time.time() < deadline:
                try:
                    data = src.recv(262144)
                except socket.timeout:
                    continue
                if not data:
                    break
                dst.sendall(data)
                if observe:
                    self.obs.feed(data, time.time())
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        for s in self._socks + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass
        self._t.join(timeout=2)
