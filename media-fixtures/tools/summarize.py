#!/usr/bin/env python3
"""Expected packet summaries for the replay and end-to-end tests, derived with ffprobe from the
media the bytes came from - never from LiveHub's own decoder.

summarize.py flv FILE.flv OUT.json            -- an FLV file (ffprobe)
summarize.py nginx CAPTURE.rtmp KEY OUT.json  -- replay a client->server capture into nginx-rtmp
                                                 with `record all`, ffprobe the recorded FLV
"""
import hashlib, json, os, subprocess, sys, tempfile, time

CODECS = {"h264": "h264", "hevc": "hevc", "av1": "av1", "aac": "aac"}
HERE = os.path.dirname(os.path.abspath(__file__))

def hexdump_bytes(dump):
    out = bytearray()
    for line in dump.strip().splitlines():
        if ": " not in line:
            continue
        hexpart = line.split(": ", 1)[1][:39].replace(" ", "")
        out += bytes.fromhex(hexpart)
    return bytes(out)

def ffprobe(path):
    streams = json.loads(subprocess.check_output(
        ["ffprobe", "-v", "error", "-show_streams", "-show_data", "-of", "json", path]))["streams"]
    packets = json.loads(subprocess.check_output(
        ["ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,dts_time,flags,pos,size",
         "-of", "json", path]))["packets"]
    return streams, packets

def ms(value):
    return int(round(float(value) * 1000))

def summarize(path, shift_ms=0):
    """Per track kind: count, keyframes, config hash, first/last dts/pts in ms (+shift_ms)."""
    streams, packets = ffprobe(path)
    result = {"video": None, "audio": None}
    for stream in streams:
        kind = stream["codec_type"]
        if kind not in result or stream["codec_name"] not in CODECS:
            continue
        own = [p for p in packets if p["stream_index"] == stream["index"]]
        extradata = hexdump_bytes(stream.get("extradata", ""))
        dts = [ms(p["dts_time"]) + shift_ms for p in own]
        pts = [ms(p["pts_time"]) + shift_ms for p in own]
        result[kind] = {
            "codec": CODECS[stream["codec_name"]],
            "count": len(own),
            "keyframes": sum(1 for p in own if "K" in p["flags"]),
            "configSHA256": hashlib.sha256(extradata).hexdigest(),
            "firstDts": dts[0], "lastDts": dts[-1],
            "firstPts": pts[0], "lastPts": pts[-1],
        }
    return result

def write(out, summary, source, how):
    summary = {"source": source, "how": how, **summary}
    with open(out, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")

def via_nginx(capture, key, out):
    tmp = tempfile.mkdtemp()
    port = 21000 + os.getpid() % 5000
    pid = int(subprocess.check_output([os.path.join(HERE, "nginx-rtmp.sh"), tmp, str(port)]).strip())
    try:
        time.sleep(0.5)
        subprocess.check_call([sys.executable, os.path.join(HERE, "rtmp_proxy.py"), "--upstream",
                               f"127.0.0.1:{port}", "--replay", capture, "--linger", "2"])
        time.sleep(0.5)
    finally:
        os.kill(pid, 15)
        time.sleep(0.5)
    recorded = os.path.join(tmp, "rec", key + ".flv")
    return summarize(recorded)

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "flv":
        path, out = sys.argv[2], sys.argv[3]
        write(out, summarize(path), os.path.basename(path), "ffprobe of the FLV file")
    elif mode == "nginx":
        capture, key, out = sys.argv[2], sys.argv[3], sys.argv[4]
        write(out, via_nginx(capture, key, out), os.path.basename(capture),
              "capture replayed into nginx-rtmp (record all), recorded FLV read by ffprobe")
    else:
        sys.exit(__doc__)
