#!/usr/bin/env python3
"""Hand-built client->server RTMP captures for what Debian's ffmpeg 5.1 cannot send:

  captures/ertmp-hevc-aac.rtmp  Enhanced RTMP v2 HEVC (hvc1: SequenceStart, CodedFrames with SI24
                                composition time, CodedFramesX, SequenceEnd) + legacy AAC
  captures/ertmp-av1-aac.rtmp   Enhanced RTMP v2 AV1 (av01) + Enhanced RTMP audio (mp4a FourCC);
                                every 10th frame sent as a ManyTracks multitrack packet whose
                                track 1 must be ignored
  captures/timestamp-wrap.rtmp  legacy H.264/AAC (h264-aac-1s-gop.flv) with RTMP timestamps that
                                start 1500 ms before 2^32 and wrap; extended timestamps, fmt 0
                                for keyframes (continuations repeat the extended timestamp) and
                                fmt 1 deltas otherwise

The media is encoded with ffmpeg (libx265, libsvtav1, aac) into MP4, the samples are read at the
pos/size ffprobe reports, the config records are ffprobe's extradata (hvcC/av1C/ASC), and the
expected summaries (expected/*.json) come from ffprobe of those same sources.
Usage: media-fixtures/build-captures.py   (idempotent: keeps existing captures unless --force)
"""
import os, struct, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "tools"))
import summarize  # noqa: E402

KEY = "handbuilt-key"

# ---------------------------------------------------------------- AMF0
def amf(value):
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
    if isinstance(value, tuple) and value[0] in ("object", "ecma"):
        body = b"".join(struct.pack(">H", len(k.encode())) + k.encode() + amf(v) for k, v in value[1])
        head = b"\x03" if value[0] == "object" else b"\x08" + struct.pack(">I", len(value[1]))
        return head + body + b"\x00\x00\x09"
    raise TypeError(value)

def obj(*pairs):
    return ("object", list(pairs))

def ecma(*pairs):
    return ("ecma", list(pairs))

# ---------------------------------------------------------------- chunk writer
class ChunkWriter:
    """RTMP 1.0 §5.3 chunking as ffmpeg writes it (extended timestamp repeated on fmt 3)."""
    def __init__(self):
        self.out = bytearray()
        self.chunk_size = 128
        self.last = {}  # csid -> timestamp of the previous message

    def handshake(self):
        self.out += b"\x03" + struct.pack(">II", 0, 0) + bytes((i * 7 + 13) & 0xFF for i in range(1528))
        self.out += bytes(1536)  # C2: would echo S1; servers ignore its content

    def message(self, csid, type_id, msid, timestamp, body, delta=False):
        timestamp &= 0xFFFFFFFF
        if delta and csid in self.last:
            field = (timestamp - self.last[csid]) & 0xFFFFFFFF
            header = bytes([0x40 | csid])
        else:
            field = timestamp
            delta = False
            header = bytes([csid])
        extended = field >= 0xFFFFFF
        f24 = 0xFFFFFF if extended else field
        header += f24.to_bytes(3, "big") + len(body).to_bytes(3, "big") + bytes([type_id])
        if not delta:
            header += struct.pack("<I", msid)
        ext = struct.pack(">I", field) if extended else b""
        self.out += header + ext + body[:self.chunk_size]
        for offset in range(self.chunk_size, len(body), self.chunk_size):
            self.out += bytes([0xC0 | csid]) + ext + body[offset:offset + self.chunk_size]
        self.last[csid] = timestamp

    def command(self, name, tx, *args, msid=0, csid=3):
        self.message(csid, 20, msid, 0, b"".join(amf(v) for v in (name, tx) + args))

    def set_chunk_size(self, size):
        self.message(2, 1, 0, 0, struct.pack(">I", size))
        self.chunk_size = size

    def publish_preamble(self, metadata, four_cc_list=None):
        self.handshake()
        self.set_chunk_size(4096)
        connect = [("app", "live"), ("type", "nonprivate"), ("flashVer", "FMLE/3.0 (compatible; FMSc/1.0)"),
                   ("tcUrl", "rtmp://127.0.0.1:1935/live")]
        if four_cc_list:
            connect.append(("fourCcList", four_cc_list))
        self.command("connect", 1, obj(*connect))
        self.command("releaseStream", 2, None, KEY)
        self.command("FCPublish", 3, None, KEY)
        self.command("createStream", 4, None)
        self.command("publish", 5, None, KEY, "live", msid=1, csid=4)
        self.message(4, 18, 1, 0, amf("@setDataFrame") + amf("onMetaData") + amf(ecma(*metadata)))

# ---------------------------------------------------------------- sources
def ffmpeg(*args):
    subprocess.check_call(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args])

def samples(path):
    """(kind, dts_ms, pts_ms, keyframe, bytes) in file order, plus {kind: extradata}."""
    streams, packets = summarize.ffprobe(path)
    data = open(path, "rb").read()
    kinds = {s["index"]: s["codec_type"] for s in streams}
    extradata = {s["codec_type"]: summarize.hexdump_bytes(s.get("extradata", "")) for s in streams}
    out = []
    for p in packets:
        pos, size = int(p["pos"]), int(p["size"])
        out.append((kinds[p["stream_index"]], summarize.ms(p["dts_time"]), summarize.ms(p["pts_time"]),
                    "K" in p["flags"], data[pos:pos + size]))
    return out, extradata

def shift_for(items):
    return -min(dts for _, dts, _, _, _ in items)

def si24(value):
    return (value & 0xFFFFFF).to_bytes(3, "big")

def build_hevc(tmp):
    src = os.path.join(tmp, "hevc.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
           "-t", "3", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
           "pools=1:frame-threads=1:log-level=error:keyint=15:min-keyint=15:scenecut=0:bframes=2",
           "-b:v", "150k", "-tag:v", "hvc1", "-c:a", "aac", "-b:a", "48k", "-ar", "48000", "-ac", "2",
           "-fflags", "+bitexact", "-map_metadata", "-1", src)
    items, extradata = samples(src)
    shift = shift_for(items)
    w = ChunkWriter()
    w.publish_preamble([("width", 320), ("height", 180), ("framerate", 15), ("videocodecid", 1752589105),
                        ("audiocodecid", 10), ("audiosamplerate", 48000), ("audiochannels", 2),
                        ("encoder", "build-captures.py")], four_cc_list=["av01", "vp09", "hvc1"])
    w.message(4, 8, 1, 0, b"\xaf\x00" + extradata["audio"])
    w.message(6, 9, 1, 0, b"\x90hvc1" + extradata["video"])
    last = 0
    for kind, dts, pts, key, data in sorted(items, key=lambda i: i[1]):
        ts = dts + shift
        if kind == "audio":
            w.message(4, 8, 1, ts, b"\xaf\x01" + data, delta=True)
        else:
            frame = 0x10 if key else 0x20
            cts = pts - dts
            body = bytes([0x80 | frame | 1]) + b"hvc1" + si24(cts) + data if cts else bytes([0x80 | frame | 3]) + b"hvc1" + data
            w.message(6, 9, 1, ts, body, delta=True)
        last = ts
    w.message(6, 9, 1, last, b"\x92hvc1", delta=True)  # SequenceEnd
    return w.out, summarize.summarize(src, shift), "ffprobe of the libx265+aac MP4 the capture was built from"

def build_av1(tmp):
    src = os.path.join(tmp, "av1.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-f", "lavfi", "-i", "sine=frequency=550:sample_rate=48000",
           "-t", "3", "-c:v", "libsvtav1", "-preset", "12", "-g", "15", "-b:v", "150k",
           "-c:a", "aac", "-b:a", "48k", "-ar", "48000", "-ac", "2",
           "-fflags", "+bitexact", "-map_metadata", "-1", src)
    items, extradata = samples(src)
    shift = shift_for(items)
    w = ChunkWriter()
    w.publish_preamble([("width", 320), ("height", 180), ("framerate", 15), ("videocodecid", 1635135537),
                        ("audiocodecid", 1836069985), ("encoder", "build-captures.py")], four_cc_list=["*"])
    w.message(4, 8, 1, 0, b"\x90mp4a" + extradata["audio"])  # ExAudio SequenceStart
    w.message(6, 9, 1, 0, b"\x90av01" + extradata["video"])  # ExVideo SequenceStart
    video_index = 0
    for kind, dts, pts, key, data in sorted(items, key=lambda i: i[1]):
        ts = dts + shift
        if kind == "audio":
            w.message(4, 8, 1, ts, b"\x91mp4a" + data, delta=True)  # ExAudio CodedFrames
            continue
        frame = 0x10 if key else 0x20
        if video_index % 10 == 9:
            # Multitrack (6), ManyTracks (1) of CodedFrames (1): track 0 and a track 1 to ignore.
            tracks = b"".join(bytes([tid]) + len(data).to_bytes(3, "big") + data for tid in (0, 1))
            body = bytes([0x80 | frame | 6, 0x11]) + b"av01" + tracks
        else:
            body = bytes([0x80 | frame | 1]) + b"av01" + data  # av01 CodedFrames: no composition time
        w.message(6, 9, 1, ts, body, delta=True)
        video_index += 1
    return w.out, summarize.summarize(src, shift), "ffprobe of the libsvtav1+aac MP4 the capture was built from"

def flv_tags(path):
    data = open(path, "rb").read()
    offset = struct.unpack(">I", data[5:9])[0] + 4
    while offset + 11 <= len(data):
        tag_type = data[offset]
        size = int.from_bytes(data[offset + 1:offset + 4], "big")
        ts = int.from_bytes(data[offset + 4:offset + 7], "big") | data[offset + 7] << 24
        yield tag_type, ts, data[offset + 11:offset + 11 + size]
        offset += 11 + size + 4

def build_wrap(tmp):
    subprocess.check_call([os.path.join(HERE, "generate.sh")])
    src = os.path.join(HERE, "h264-aac-1s-gop.flv")
    shift = (1 << 32) - 1500
    w = ChunkWriter()
    w.handshake()
    w.set_chunk_size(4096)
    w.command("connect", 1, obj(("app", "live"), ("type", "nonprivate"), ("tcUrl", "rtmp://127.0.0.1/live")))
    w.command("releaseStream", 2, None, KEY)
    w.command("FCPublish", 3, None, KEY)
    w.command("createStream", 4, None)
    w.command("publish", 5, None, KEY + "?token=ignored", "live", msid=1, csid=4)
    for tag_type, ts, body in flv_tags(src):
        rtmp_ts = (ts + shift) & 0xFFFFFFFF
        if tag_type == 18:
            w.message(5, 18, 1, 0, amf("@setDataFrame") + body)
        elif tag_type == 8:
            w.message(4, 8, 1, rtmp_ts, body, delta=True)
        elif tag_type == 9:
            keyframe = body[0] >> 4 == 1
            w.message(6, 9, 1, rtmp_ts, body, delta=not keyframe)
    return w.out, summarize.summarize(src, shift), "ffprobe of h264-aac-1s-gop.flv, timestamps + (2^32 - 1500) ms"

if __name__ == "__main__":
    force = "--force" in sys.argv
    os.chdir(HERE)
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("ertmp-hevc-aac", build_hevc), ("ertmp-av1-aac", build_av1), ("timestamp-wrap", build_wrap)):
            capture = os.path.join("captures", name + ".rtmp")
            if os.path.exists(capture) and not force:
                continue
            data, summary, how = build(tmp)
            with open(capture, "wb") as f:
                f.write(data)
            summarize.write(os.path.join("expected", name + ".json"), summary, os.path.basename(capture), how)
            print(f"built {capture} ({len(data)} bytes)")
