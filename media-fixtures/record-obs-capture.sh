#!/usr/bin/env bash
# Records the client->server bytes of a real OBS Studio publish, headless:
#   xvfb-run obs --startstreaming  ->  tools/rtmp_proxy.py (records)  ->  nginx-rtmp on loopback
# OBS gets a throw-away HOME with one profile (custom RTMP server, x264 veryfast 640x360 30 fps
# 1000 kbps CBR, keyframe every 1 s, AAC 128 kbps 48 kHz stereo) and one scene: a looping media
# source playing h264-aac-2s-gop.flv (moving picture + a tone, so that the encoder has real work).
# The first CAPTURE_BYTES bytes (default 400,000: handshake, connect, publish, metadata, sequence
# headers, ~3 s of media, cut mid-chunk) become captures/obs29-h264-aac.rtmp (stream key
# "obs-capture-key"), and expected/obs29-h264-aac.json is written from ffprobe of what nginx-rtmp
# recorded when the capture is replayed into it (tools/summarize.py nginx).
#
# Needs: obs-studio xvfb xauth nginx libnginx-mod-rtmp ffmpeg python3 (Debian 12 packages).
# Usage: media-fixtures/record-obs-capture.sh [--force]   (keeps an existing capture otherwise)
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
out=captures/obs29-h264-aac.rtmp
expected=expected/obs29-h264-aac.json
key=obs-capture-key
capture_bytes=${CAPTURE_BYTES:-400000}
if [[ -s $out && ${1:-} != --force ]]; then echo "$out exists (use --force to record it again)"; exit 0; fi
for tool in obs xvfb-run nginx ffprobe python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install obs-studio xvfb xauth nginx libnginx-mod-rtmp ffmpeg" >&2; exit 1; }
done
./generate.sh

tmp=$(mktemp -d)
nginx_port=$((20000 + RANDOM % 10000)); proxy_port=$((nginx_port + 1))
nginx_pid=$(tools/nginx-rtmp.sh "$tmp" "$nginx_port")
obs_pid=""
cleanup() {
  [[ -n $obs_pid ]] && kill -- "-$obs_pid" 2>/dev/null || true
  kill "$nginx_pid" 2>/dev/null || true
  pkill -f "rtmp_proxy.py --listen $proxy_port" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- OBS configuration in a throw-away HOME (tools/obs-home.sh; the e2e OBS test uses it too) ----
tools/obs-home.sh "$tmp/home" "rtmp://127.0.0.1:$proxy_port/live" "$key" "$here/h264-aac-2s-gop.flv"

# --- record --------------------------------------------------------------------------------------
python3 tools/rtmp_proxy.py --listen "$proxy_port" --upstream "127.0.0.1:$nginx_port" --out "$tmp/full.rtmp" > "$tmp/proxy.out" &
for _ in $(seq 50); do grep -q ready "$tmp/proxy.out" 2>/dev/null && break; sleep 0.1; done
# A session of its own: killing its process group stops OBS and its X server together.
HOME=$tmp/home setsid tools/obs-headless.sh > "$tmp/obs.log" 2>&1 &
obs_pid=$!
wanted=$((capture_bytes + 50000))
for _ in $(seq 600); do
  size=$(stat -c %s "$tmp/full.rtmp" 2>/dev/null || echo 0)
  (( size >= wanted )) && break
  kill -0 "$obs_pid" 2>/dev/null || { echo "OBS exited early; its log:" >&2; tail -40 "$tmp/obs.log" >&2; exit 1; }
  sleep 0.1
done
size=$(stat -c %s "$tmp/full.rtmp" 2>/dev/null || echo 0)
(( size >= wanted )) || { echo "OBS sent only $size bytes in 60 s; its log:" >&2; tail -40 "$tmp/obs.log" >&2; exit 1; }
kill -- "-$obs_pid" 2>/dev/null || true; wait "$obs_pid" 2>/dev/null || true; obs_pid=""
head -c "$capture_bytes" "$tmp/full.rtmp" > "$out"
grep -m1 -o "OBS [0-9][0-9.]*[^ ]*" "$tmp/obs.log" || true
echo "recorded $out ($(stat -c %s "$out") bytes)"

# --- expected packet summary (ffprobe of what nginx-rtmp recorded from a replay) -----------------
kill "$nginx_pid" 2>/dev/null || true
python3 tools/summarize.py nginx "$out" "$key" "$expected"
echo "wrote $expected"
