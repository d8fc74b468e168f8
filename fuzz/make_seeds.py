#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/seeds/<Target>/, from the committed media fixtures and
from hand-written protocol samples. Deterministic: running it twice gives the same files.

Each seed is laid out the way its harness reads its input (FuzzSupport's `FuzzInput`): a mode
byte, then the harness's decisions (bytes, big-endian integers sized by their range, length-prefixed
chunks), then data. `Seed` below mirrors `FuzzInput` so the seeds stay in step with the harnesses.

Usage: fuzz/make_seeds.py            (rewrites fuzz/seeds/)
"""
import base64
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from rtmp_client import amf  # noqa: E402  (AMF0 as the hostile e2e publisher writes it)
FIXTURES = os.path.join(HERE, "..", "media-fixtures")
SEEDS = os.path.join(HERE, "seeds")
HANDSHAKE = 1 + 2 * 1536  # C0 + C1 + C2: where a capture's chunk stream starts
CAPTURE_BYTES = 16384


class Seed:
    """Mirrors FuzzInput: what a harness reads, written in the same order."""

    def __init__(self, mode=None):
        self.data = bytearray()
        if mode is not None:
            self.byte(mode)

    def byte(self, value):
        self.data.append(value & 0xFF)
        return self

    def bool(self, value):
        return self.byte(1 if value else 0)

    def u16(self, value):
        self.data += struct.pack(">H", value & 0xFFFF)
        return self

    def u32(self, value):
        self.data += struct.pack(">I", value & 0xFFFFFFFF)
        return self

    def u64(self, value):
        self.data += struct.pack(">Q", value & 0xFFFFFFFFFFFFFFFF)
        return self

    def int_in(self, low, high, value):
        """FuzzInput.int(in: low...high) returning `value`."""
        width, raw = high - low, value - low
        if width < 256:
            return self.byte(raw)
        if width < 65536:
            return self.u16(raw)
        if width < 1 << 32:
            return self.u32(raw)
        return self.u64(raw)

    def pick(self, index):
        return self.byte(index)

    def chunk(self, data, maximum):
        data = bytes(data)[:maximum]
        if maximum <= 255:
            self.byte(len(data))
        else:
            self.u16(len(data))
        self.data += data
        return self

    def raw(self, data):
        self.data += bytes(data)
        return self


def flv_tags(path):
    """(type, timestamp, body) of every tag of an FLV file."""
    data = open(path, "rb").read()
    index = 13
    while index + 11 <= len(data):
        kind = data[index]
        size = int.from_bytes(data[index + 1:index + 4], "big")
        timestamp = int.from_bytes(data[index + 4:index + 7], "big") | data[index + 7] << 24
        yield kind, timestamp, data[index + 11:index + 11 + size]
        index += 11 + size + 4


def capture(name):
    return open(os.path.join(FIXTURES, "captures", name), "rb").read()


CAPTURES = sorted(f for f in os.listdir(os.path.join(FIXTURES, "captures")) if f.endswith(".rtmp"))
FLV_FILES = ["h264-aac-2s-gop.flv", "h264-aac-1s-gop.flv", "audio-only.flv", "video-only.flv"]


def config_record(capture_name, marker):
    """The configuration record after an Enhanced RTMP SequenceStart marker (one whole chunk)."""
    data = capture(capture_name)
    index = data.index(marker)
    length = int.from_bytes(data[index - 8:index - 5], "big")
    return data[index + 5:index + length]


def avc_and_asc():
    avcc = asc = None
    for kind, _, body in flv_tags(os.path.join(FIXTURES, "h264-aac-2s-gop.flv")):
        if kind == 9 and body[1] == 0 and avcc is None:
            avcc = body[5:]
        if kind == 8 and body[1] == 0 and asc is None:
            asc = body[2:]
    return avcc, asc


METADATA = ("ecma", [
    ("duration", 0), ("width", 1280), ("height", 720), ("videodatarate", 2500), ("framerate", 30),
    ("videocodecid", 7), ("audiodatarate", 128), ("audiosamplerate", 48000), ("audiosamplesize", 16),
    ("stereo", True), ("audiocodecid", 10), ("encoder", "obs-output module (libobs version 29.0.2)"),
])
CONNECT = amf("connect") + amf(1) + amf(("object", [
    ("app", "live"), ("type", "nonprivate"), ("flashVer", "FMLE/3.0 (compatible; FMSc/1.0)"),
    ("tcUrl", "rtmp://127.0.0.1:1935/live"), ("fourCcList", ["av01", "hvc1", "avc1"]),
]))


def rtmp_seeds():
    seeds = {}
    for name in CAPTURES:
        data = capture(name)
        stem = name[:-5]
        seeds[f"connection-{stem}"] = Seed(0).byte(1).byte(0).raw(data[HANDSHAKE:HANDSHAKE + CAPTURE_BYTES])
        seeds[f"connection-late-answer-{stem}"] = Seed(0).byte(1).byte(1).raw(data[HANDSHAKE:HANDSHAKE + 4096])
        seeds[f"refused-{stem}"] = Seed(0).byte(0).byte(0).raw(data[HANDSHAKE:HANDSHAKE + 4096])
        seeds[f"handshake-{stem}"] = Seed(1).byte(1).byte(0).raw(data[:HANDSHAKE + 4096])
        seeds[f"chunks-{stem}"] = Seed(3).raw(data[HANDSHAKE:HANDSHAKE + CAPTURE_BYTES])
    seeds["amf-connect"] = Seed(2).raw(CONNECT)
    seeds["amf-metadata"] = Seed(2).raw(amf("@setDataFrame") + amf("onMetaData") + amf(METADATA))
    seeds["message-connect"] = Seed(4).byte(20).u32(0).raw(CONNECT)
    seeds["message-metadata"] = Seed(4).byte(18).u32(0).raw(amf("onMetaData") + amf(METADATA))
    seeds["message-set-chunk-size"] = Seed(4).byte(1).u32(0).u32(4096)
    seeds["message-user-control-ping"] = Seed(4).byte(4).u32(0).u16(6).u32(1234)
    return seeds


def flv_codec_seeds():
    seeds = {}
    for name in FLV_FILES:
        seed = Seed(0)
        for count, (kind, timestamp, body) in enumerate(flv_tags(os.path.join(FIXTURES, name))):
            if kind not in (8, 9) or count > 40:
                continue
            seed.bool(kind == 9).u32(timestamp).chunk(body[:3000], 65535)
        seeds[f"tags-{name[:-4]}"] = seed
    avcc, asc = avc_and_asc()
    hvcc = config_record("ertmp-hevc-aac.rtmp", b"\x90hvc1")
    av1c = config_record("ertmp-av1-aac.rtmp", b"\x90av01")
    # Enhanced RTMP sequence starts and coded frames as tags, as OBS sends HEVC and AV1.
    seeds["tags-enhanced"] = (Seed(0).bool(True).u32(0).chunk(b"\x90hvc1" + hvcc, 65535)
                             .bool(True).u32(33).chunk(b"\x91hvc1\x00\x00\x00" + bytes(16), 65535)
                             .bool(True).u32(0).chunk(b"\x90av01" + av1c, 65535)
                             .bool(True).u32(33).chunk(b"\x93av01" + bytes(16), 65535)
                             .bool(False).u32(0).chunk(b"\x90mp4a" + asc, 65535)
                             .bool(True).u32(66).chunk(b"\x96\x10avc1\x00\x00\x00\x08" + bytes(8), 65535))
    for index, (codec, record) in enumerate([("h264", avcc), ("hevc", hvcc), ("av1", av1c), ("aac", asc)]):
        seeds[f"config-{codec}"] = Seed(1).pick(index).raw(record)
    h264_sps = avcc[8:8 + int.from_bytes(avcc[6:8], "big")]
    seeds["sps-h264"] = Seed(2).byte(0).raw(h264_sps)
    # hvcC arrays start at byte 23: [type][count u16][length u16][NAL]...; the SPS is the second array.
    offset, hevc_sps = 23, None
    for _ in range(hvcc[22]):
        nal_type, count = hvcc[offset] & 0x3F, int.from_bytes(hvcc[offset + 1:offset + 3], "big")
        offset += 3
        for _ in range(count):
            length = int.from_bytes(hvcc[offset:offset + 2], "big")
            if nal_type == 33 and hevc_sps is None:
                hevc_sps = hvcc[offset + 2:offset + 2 + length]
            offset += 2 + length
    seeds["sps-hevc"] = Seed(2).byte(1).raw(hevc_sps)
    # av1C: 4 bytes, then configOBUs; the first is the sequence header OBU with a leb128 size.
    obus = av1c[4:]
    seeds["sequence-header-av1"] = Seed(2).byte(2).raw(obus[2:2 + obus[1]])
    seeds["metadata"] = Seed(3).raw(amf(METADATA))
    seeds["metadata-implausible"] = Seed(3).raw(amf(("ecma", [("framerate", 0), ("width", 1e300), ("height", -5), ("audiosamplerate", float("nan"))])))
    return seeds


def packager_seeds():
    avcc, asc = avc_and_asc()
    tags = list(flv_tags(os.path.join(FIXTURES, "h264-aac-1s-gop.flv")))
    seeds = {}
    for variant in range(3):
        seed = Seed().pick(variant).pick(1).pick(0).bool(variant == 0)
        seed.byte(0).int_in(1, 3, 1)               # publishStarted(session: 1)
        seed.byte(2).byte(0)                       # H.264 configuration (valid)
        seed.byte(2).byte(1)                       # AAC configuration (valid)
        last = {True: 0, False: 0}
        frames = 0
        for kind, timestamp, body in tags:
            if kind not in (8, 9) or body[1] != 1:
                continue
            is_video = kind == 9
            if is_video:
                frames += 1
                if frames > 45:
                    break
            step = timestamp - last[is_video]
            last[is_video] = timestamp
            seed.byte(3).bool(is_video).byte(0).int_in(-50, 2100, step)
            cts = int.from_bytes(body[2:5], "big", signed=True) if is_video else 0
            seed.int_in(-(1 << 23), (1 << 23) - 1, cts)
            if is_video:
                seed.byte(0 if body[0] >> 4 == 1 else 200)
            payload = body[5:] if is_video else body[2:]
            seed.chunk(payload, 65535)
            if is_video and frames % 15 == 0:
                seed.byte(9).int_in(0, 10_000, 500)  # render the playlists
                seed.byte(10).int_in(-1, 40, 1).int_in(-1, 10, 1).int_in(-1, 4, 0)
        seed.byte(11).byte(0)                      # thumbnail of the latest keyframe (libavcodec)
        seed.byte(8)                               # publishStopped
        seed.byte(0).int_in(1, 3, 2)               # a reconnect: discontinuity
        seed.byte(9).int_in(0, 10_000, 1000)
        seeds[f"publish-h264-aac-variant{variant}"] = seed
    seeds["metadata-then-fuzzed-config"] = (Seed().pick(0).pick(0).pick(0).bool(True)
                                            .byte(1).bool(True).u64(0).bool(True).u64(1 << 62).bool(True).u64(0)
                                            .bool(False).bool(False).bool(False).bool(False)
                                            .byte(2).byte(5).pick(0).chunk(avcc[:20], 512))
    return seeds


def request_seeds():
    seeds = {}
    targets = ["/hls/room-1/index.m3u8", "/hls/room-1/media.m3u8?_HLS_msn=2&_HLS_part=1",
               "/hls/room-1/media.m3u8?_HLS_msn=999999999", "/hls/room-1/seg-1.m4s", "/hls/room-1/part-2-0.m4s",
               "/hls/room-1/init-0.mp4", "/hls/room-1/thumbnail.jpg", "/hls/../etc/passwd", "/hls/room-1/seg-01.ts"]
    for index, target in enumerate(targets):
        seeds[f"target-{index}"] = Seed(0).raw(target.encode())
    for name in ["seg-3.m4s", "part-1-2.m4s", "init-0.mp4", "seg-4.ts", "part--1.m4s", "seg-999999999.m4s"]:
        seeds[f"file-{name}"] = Seed(1).raw(name.encode())
    seeds["directives"] = Seed(2).raw(b"_HLS_msn=3\n_HLS_part=2")
    seeds["directives-part-only"] = Seed(2).raw(b"_HLS_part=2")
    return seeds


def stomp_frame(command, headers, body=b""):
    text = command.encode() + b"\n" + b"".join(f"{k}:{v}\n".encode() for k, v in headers) + b"\n"
    return text + body + b"\x00"


STOMP_FRAMES = [
    stomp_frame("CONNECT", [("accept-version", "1.2,1.1,1.0"), ("heart-beat", "10000,10000"), ("host", "localhost")]),
    stomp_frame("CONNECT", [("accept-version", "1.2"), ("heart-beat", "9223372036854775807,0")]),
    stomp_frame("CONNECT", [("accept-version", "1.2"), ("Authorization", "Bearer token")]),
    stomp_frame("SUBSCRIBE", [("id", "sub-0"), ("destination", "/topic/live/room-1/chat"), ("receipt", "r-1")]),
    stomp_frame("SUBSCRIBE", [("id", "sub-1"), ("destination", "/user/queue/errors")]),
    stomp_frame("SEND", [("destination", "/app/live/room-1/chat"), ("content-type", "application/json"), ("content-length", "17")],
                b'{"message":"hi"}\x00'[:17]),
    stomp_frame("SEND", [("destination", "/app/live/room-1/join")]),
    stomp_frame("UNSUBSCRIBE", [("id", "sub-0")]),
    stomp_frame("DISCONNECT", [("receipt", "close-1")]),
    b"\n\r\n",
]


def stomp_seeds():
    seeds = {}
    for index, frame in enumerate(STOMP_FRAMES):
        seeds[f"parser-{index}"] = Seed(0).bool(True).chunk(frame, 300)
    seeds["parser-escapes"] = Seed(0).bool(True).chunk(stomp_frame("SEND", [("destination", "/a\\cb\\n"), ("x", "\\\\")]), 300)
    script = Seed(1).bool(True).pick(1).pick(1).bool(False).byte(255)
    for frame in STOMP_FRAMES[:1] + STOMP_FRAMES[3:7]:
        script.byte(0).chunk(frame, 400)
    script.byte(5).bool(True).byte(6).bool(True).byte(3).int_in(0, 70_000, 25_000)
    script.byte(0).chunk(STOMP_FRAMES[7] + STOMP_FRAMES[8], 400)
    seeds["session-guest"] = script
    auth = Seed(1).bool(True).pick(1).pick(1).bool(True).byte(255)
    auth.byte(0).chunk(STOMP_FRAMES[2], 400).byte(4).bool(True).chunk(b"user-1", 24).chunk(b"Evil\nuser-name:x", 24).bool(True)
    auth.byte(0).chunk(STOMP_FRAMES[3] + STOMP_FRAMES[5], 400).byte(5).bool(False).chunk(b"nope", 40).byte(6).bool(False).chunk(b"too fast", 40)
    seeds["session-token"] = auth
    overflow = Seed(1).bool(True).pick(1).pick(1).bool(False).byte(255)
    overflow.byte(0).chunk(STOMP_FRAMES[1], 400).byte(3).int_in(0, 70_000, 1000).byte(3).int_in(0, 70_000, 60_000)
    seeds["session-huge-heart-beat"] = overflow
    return seeds


def socketio_seeds():
    packets = ['40', '40{"token":"abc"}', '41', '42["notification:read",{"notificationId":"n1"}]', '4212["AUTH",{"token":"t"}]',
               '43[{"ok":true}]', '451-["upload",{"_placeholder":true,"num":0}]', '44{"message":"x"}', '42/admin,["x"]', '2', '3probe', '1']
    seeds = {f"packet-{index}": Seed(0).raw(packet.encode()) for index, packet in enumerate(packets)}
    # requireAuthEvent: connect without a token, leave and re-join the namespace, wait.
    replay = Seed(1).bool(False).pick(0).byte(255)
    for text, wait in [("40", 4000), ("41", 0), ("40", 4000), ("41", 0), ("40", 4000)]:
        replay.byte(0).chunk(text.encode(), 300)
        if wait:
            replay.byte(3).int_in(0, 60_000, wait)
    replay.byte(5)
    seeds["session-auth-deadline-reset"] = replay
    happy = Seed(1).bool(True).pick(0).byte(255)
    happy.byte(0).chunk(b'40{"token":"t"}', 300).byte(4).bool(True).chunk(b"u1", 16).chunk(b"User", 16)
    happy.byte(0).chunk(b'421["notification:read",{"notificationId":"n1"}]', 300).byte(4).bool(False).bool(True)
    happy.byte(3).int_in(0, 60_000, 25_000).byte(0).chunk(b"3", 300).byte(2)
    seeds["session-token"] = happy
    # Mode 2: long-polling bodies (engine.io-protocol v4: packets separated by 0x1E, binary as b + base64).
    bodies = [b"4hello\x1e4\xe2\x82\xac\xe2\x82\xac", b"2\x1ebAQID\x1e40", b'40{"token":"t"}\x1e421["x",{}]', b"40\x1e\x1e2",
              b"b!!!!", b"bAQ=="]
    for index, body in enumerate(bodies):
        seeds[f"payload-{index}"] = Seed(2).pick(0).raw(body)
    seeds["payload-small-limit"] = Seed(2).pick(1).raw(b'42["notification:read",{"notificationId":"' + b"x" * 64 + b'"}]')
    # Mode 3: a polling session: POST bodies (0), known packets (2), polls (3), clock ticks (4), an oversized POST (5).
    polled = Seed(3).byte(0).chunk(b'40{"token":"good-1"}', 600).byte(3)
    polled.byte(0).chunk(b'421["x",{}]\x1e422["fail"]\x1e2', 600).byte(3)
    polled.byte(4).int_in(0, 4000, 1000).byte(3).byte(0).chunk(b"3", 600).byte(3)
    polled.byte(0).chunk(b"41\x1e1", 600).byte(3)
    seeds["polling-token"] = polled
    auth = Seed(3).byte(2).byte(0).pick(1).byte(3).byte(4).int_in(0, 4000, 2000).byte(3).byte(4).int_in(0, 4000, 1500).byte(3)
    seeds["polling-auth-deadline"] = auth
    idle = Seed(3).byte(2).byte(1).pick(0).pick(2).byte(3).byte(4).int_in(0, 4000, 2500).byte(3)
    seeds["polling-idle"] = idle
    hostile = Seed(3).byte(0).chunk(b"\x1e\x1e", 600).byte(3).byte(0).chunk(b"b\x00\x01", 600).byte(5).byte(3)
    seeds["polling-hostile"] = hostile
    return seeds


def sockjs_seeds():
    messages = [json.dumps([f.decode("latin1") for f in STOMP_FRAMES[:1]]), json.dumps([f.decode("latin1") for f in STOMP_FRAMES[3:6]]),
                json.dumps("SEND\ndestination:/app/x\n\nhi\u0000"), "[]", "  ", '["\\u2028\\ud83d\\ude00"]']
    seeds = {}
    # mode 0: WebSocket frames assembled into client messages
    for index, message in enumerate(messages):
        data = message.encode()
        seeds[f"message-{index}"] = Seed(0).pick(2).pick(0).chunk(data, 2000).bool(True)
    fragmented = messages[1].encode()
    seeds["fragmented"] = Seed(0).pick(1).pick(0).chunk(fragmented[:10], 2000).bool(False).pick(2).chunk(fragmented[10:], 2000).bool(True)
    # mode 1: xhr_send bodies
    for index, body in enumerate(messages[:2] + ['["x', "", "[1,2]", '"single"', '["\\u0000\\n"]']):
        seeds[f"send-body-{index}"] = Seed(1).raw(body.encode())
    # mode 2: an HTTP session fed bodies and publishes (queue limit, body limit, then steps:
    # 0 = publish, else an xhr_send body)
    connect = json.dumps(["CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\u0000"]).encode()
    subscribe = json.dumps(["SUBSCRIBE\nid:sub-0\ndestination:/topic/live/1/chat\nreceipt:r\n\n\u0000"]).encode()
    send = json.dumps(["SEND\ndestination:/app/live/1/chat\ncontent-type:application/json\n\n{\"message\":\"hi\"}\u0000"]).encode()
    session = Seed(2).pick(1).pick(1).pick(1).chunk(connect, 4000).pick(1).chunk(subscribe, 4000)
    seeds["session-chat"] = session.pick(0).byte(7).pick(1).chunk(send, 4000).pick(0).byte(8)
    seeds["session-broken"] = Seed(2).pick(1).pick(0).pick(1).chunk(b'["x', 4000).pick(1).chunk(connect, 4000).pick(1).chunk(json.dumps(["HELLO\n\n\u0000"]).encode(), 4000)
    slow = Seed(2).pick(0).pick(1).pick(1).chunk(connect, 4000).pick(1).chunk(subscribe, 4000)
    for n in range(8):
        slow.pick(0).byte(n)
    seeds["session-slow"] = slow
    return seeds


def ws_frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04", rsv=0):
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    length = len(payload)
    masked = 0x80 if mask else 0
    if length < 126:
        head += bytes([masked | length])
    elif length < 65536:
        head += bytes([masked | 126]) + struct.pack(">H", length)
    else:
        head += bytes([masked | 127]) + struct.pack(">Q", length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def websocket_seeds():
    frames = {
        "text": ws_frame(1, STOMP_FRAMES[0]),
        "fragmented": ws_frame(1, b"hello ", fin=False) + ws_frame(0, b"wor", fin=False) + ws_frame(9, b"ping") + ws_frame(0, b"ld"),
        "binary": ws_frame(2, bytes(range(200))),
        "close": ws_frame(8, struct.pack(">H", 1000) + b"bye"),
        "close-bad-code": ws_frame(8, struct.pack(">H", 999)),
        "unmasked": ws_frame(1, b"x", mask=None),
        "rsv": ws_frame(1, b"x", rsv=0x40),
        "pong": ws_frame(10, b""),
        "too-large": ws_frame(2, bytes(5000)),
    }
    seeds = {}
    for name, data in frames.items():
        seed = Seed(0)
        for offset in range(0, len(data), 600):
            seed.chunk(data[offset:offset + 600], 600)
        seeds[name] = seed
    seeds["outbound"] = Seed(3).bool(True).int_in(0, 70_000, 300).raw(bytes(300))
    return seeds


def json_seeds():
    docs = ['{"token":"abc","n":1.5e300,"a":[1,-0,0.1,true,false,null]}', '["notification:read",{"notificationId":"x"}]',
            '"\\ud83d\\ude00\\u0000\\n"', '[[[[[[[[[[]]]]]]]]]]', '{"a":{"b":{"c":"d"}}}', '123456789012345678901234567890', '-1e-400',
            # issue 19: the old Kafka LiveOrderEvent (ISO and array timestamps) and the stock/user services' answers
            '{"orderId":9001,"roomId":"r","userId":5,"username":"kim","productId":101,"productName":"Coat","amount":149000.0,"timestamp":"2026-12-07T14:03:22.123"}',
            '{"roomId":7,"amount":1.49E5,"timestamp":[2026,12,7,14,3,22,123000000]}', '2026-02-28T23:59:59.999999999+09:00',
            '{"id":7,"name":"Green tea","price":299000,"imageUrl":"https://img.example/tea.png","stock":12}',
            '{"data":{"productName":"Cup","originalPrice":"1000.50","productImageUrl":"http://i/x.png","stockQuantity":-3}}',
            '{"data":{"nickname":"Lee","profileImageUrl":"https://img.example/lee.png"}}',
            # issue 22: flash-deal bodies, sane and hostile
            '{"liveProductId":"p1","dealPrice":49.5,"quantity":100,"perBuyerLimit":2,"startsInSeconds":0,"durationSeconds":600}',
            '{"liveProductId":"p1","dealPrice":1e309,"quantity":2.5,"perBuyerLimit":-1,"startsInSeconds":3601,"durationSeconds":9}',
            '{"quantity":1e300}']
    return {f"doc-{index}": Seed().raw(doc.encode()) for index, doc in enumerate(docs)}


def recording_index_seeds():
    # issue 21: a recording's index.jsonl (HLS/RecordingIndex.swift), whole, torn and corrupted.
    t0 = 1764038400000
    lines = [
        '{"k":"start","ms":%d,"variant":"fmp4LowLatency","td":2}' % t0,
        '{"k":"init","n":0}',
        '{"k":"seg","msn":0,"d":2.000,"pdt":%d,"disc":false,"init":0,"bytes":123456}' % t0,
        '{"k":"chapter","id":"f4","start":%d,"attrs":{"X-PRODUCT-ID":"p1","X-PRODUCT-NAME":"Silk \\"scarf\\""},"class":"com.livehub.product"}' % (t0 + 500),
        '{"k":"thumb","id":"f4","file":"chapter-0.jpg"}',
        '{"k":"seg","msn":1,"d":1.500,"pdt":%d,"disc":false,"init":0,"bytes":1000}' % (t0 + 2000),
        '{"k":"chapter-end","id":"f4","end":%d}' % (t0 + 3000),
        '{"k":"end","ms":%d}' % (t0 + 4000),
        '{"k":"start","ms":%d,"variant":"fmp4LowLatency","td":2}' % (t0 + 60000),
        '{"k":"init","n":1}',
        '{"k":"seg","msn":2,"d":2.000,"pdt":%d,"disc":true,"init":1,"bytes":5}' % (t0 + 60000),
    ]
    whole = "\n".join(lines) + "\n"
    return {
        "index-whole": Seed().raw(whole.encode()),
        "index-torn": Seed().raw(whole[:-25].encode()),
        "index-hostile": Seed().raw(("\n".join([
            '{"k":"seg","msn":-1,"d":1e308,"pdt":99999999999999999999,"disc":1,"init":null,"bytes":-1}',
            '{"k":"thumb","id":"../x","file":"../index.jsonl"}',
            '{"k":"chapter","id":"a","start":0,"attrs":{"X-A":"\\r\\n#EXT-X-ENDLIST"}}',
            '{"k":"start","ms":0,"variant":"mpegts","td":3600}', '{"k":"seg","msn":999999999,"d":3600,"pdt":0,"disc":false,"init":null,"bytes":0}',
        ]) + "\n").encode()),
    }


def token_seeds():
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b'{"alg":"HS256","typ":"JWT"}'
    # Signed by the harness with its own secret; these seeds only give the claims' layout.
    claims = [
        {"sub": "u1", "userId": "u1", "username": "Shop", "roles": ["SHOP_OWNER"], "exp": 4102444800},
        {"sub": "u2", "roles": "USER,SHOP_OWNER", "exp": 1e300, "nbf": -1e300},
        {"sub": "", "exp": "tomorrow"},
        {"userId": 12345678901234567890, "exp": 4102444800, "realm_access": {"roles": ["SHOP_OWNER"]}},
        {"sub": "u3", "iss": "https://auth.example", "aud": ["livehub", "other"], "exp": 4102444800, "iat": 1700000000},
    ]
    seeds = {}
    for index, claim in enumerate(claims):
        seeds[f"signed-{index}"] = Seed(1).chunk(header, 200).raw(json.dumps(claim).encode())
    seeds["signed-alg-none"] = Seed(1).chunk(b'{"alg":"none"}', 200).raw(json.dumps(claims[0]).encode())
    seeds["signed-rs256-header"] = Seed(1).chunk(b'{"alg":"RS256","kid":"k1"}', 200).raw(json.dumps(claims[0]).encode())
    unsigned = b64(header) + "." + b64(json.dumps(claims[0]).encode()) + "."
    seeds["text-unsigned"] = Seed(0).raw(unsigned.encode())
    seeds["text-garbage"] = Seed(0).raw(b"Bearer a.b.c.d")
    # The timeline's opaque cursor and its seconds (issue 21) are parsed from the same text.
    seeds["text-timeline-cursor"] = Seed(0).raw(b64(b"v1.1800000000123.c.17").encode())
    seeds["text-timeline-seconds"] = Seed(0).raw(b"31.9")
    return seeds


TARGETS = {
    "RTMPFuzzer": rtmp_seeds,
    "FLVCodecFuzzer": flv_codec_seeds,
    "HLSPackagerFuzzer": packager_seeds,
    "HLSRequestFuzzer": request_seeds,
    "RecordingIndexFuzzer": recording_index_seeds,
    "STOMPFuzzer": stomp_seeds,
    "SocketIOFuzzer": socketio_seeds,
    "SockJSFuzzer": sockjs_seeds,
    "WebSocketFuzzer": websocket_seeds,
    "JSONFuzzer": json_seeds,
    "TokenFuzzer": token_seeds,
}


def main():
    for target, make in TARGETS.items():
        folder = os.path.join(SEEDS, target)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for name, seed in sorted(make().items()):
            with open(os.path.join(folder, name), "wb") as out:
                out.write(bytes(seed.data))
    total = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(SEEDS) for f in files)
    print(f"seeds written to {SEEDS}: {total} bytes")


if __name__ == "__main__":
    main()
