#!/usr/bin/env bash
# Records the client->server bytes of a real ffmpeg publish of h264-aac-2s-gop.flv:
# ffmpeg -> tools/rtmp_proxy.py (records) -> nginx-rtmp on loopback (config in a temp dir).
# Output: captures/ffmpeg-h264-aac.rtmp (stream key "capture-key").
set -euo pipefail
cd "$(dirname "$0")"
./generate.sh
tmp=$(mktemp -d)
nginx_port=$((20000 + RANDOM % 10000)); proxy_port=$((nginx_port + 1))
nginx_pid=$(tools/nginx-rtmp.sh "$tmp" "$nginx_port")
trap 'kill $nginx_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
sleep 0.5
python3 tools/rtmp_proxy.py --listen "$proxy_port" --upstream "127.0.0.1:$nginx_port" --out captures/ffmpeg-h264-aac.rtmp > "$tmp/proxy.out" &
proxy_pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/proxy.out" 2>/dev/null && break; sleep 0.1; done
ffmpeg -hide_banner -loglevel error -i h264-aac-2s-gop.flv -c copy -f flv "rtmp://127.0.0.1:$proxy_port/live/capture-key"
wait $proxy_pid
echo "recorded captures/ffmpeg-h264-aac.rtmp ($(stat -c %s captures/ffmpeg-h264-aac.rtmp) bytes)"
