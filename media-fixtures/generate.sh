#!/usr/bin/env bash
# Generates the FLV test fixtures with ffmpeg's lavfi sources (testsrc2 + sine).
# Deterministic (bit-exact flags, one encoder thread) and idempotent: an existing file is kept
# unless --force is given. Usage: media-fixtures/generate.sh [--force]
set -euo pipefail
cd "$(dirname "$0")"
force=0
[[ "${1:-}" == "--force" ]] && force=1

common_video=(-c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -bf 2
  -b:v 250k -maxrate 250k -bufsize 500k -threads 1 -x264-params "threads=1:lookahead-threads=1"
  -flags:v +bitexact)
common_audio=(-c:a aac -b:a 64k -ar 48000 -ac 2 -flags:a +bitexact)
common_out=(-fflags +bitexact -map_metadata -1 -f flv)

make() { # name, then ffmpeg arguments
  local name=$1; shift
  if [[ $force -eq 0 && -s $name ]]; then return; fi
  ffmpeg -hide_banner -loglevel error -y "$@" "${common_out[@]}" "$name.tmp"
  mv "$name.tmp" "$name"
  echo "generated $name ($(stat -c %s "$name") bytes)"
}

video_src=(-f lavfi -i "testsrc2=size=640x360:rate=30")
audio_src=(-f lavfi -i "sine=frequency=440:sample_rate=48000")

make h264-aac-2s-gop.flv "${video_src[@]}" "${audio_src[@]}" -t 6 \
  "${common_video[@]}" -g 60 -keyint_min 60 -sc_threshold 0 "${common_audio[@]}"
make h264-aac-1s-gop.flv "${video_src[@]}" "${audio_src[@]}" -t 4 \
  "${common_video[@]}" -g 30 -keyint_min 30 -sc_threshold 0 "${common_audio[@]}"
make audio-only.flv "${audio_src[@]}" -t 4 "${common_audio[@]}"
make video-only.flv "${video_src[@]}" -t 4 "${common_video[@]}" -g 30 -keyint_min 30 -sc_threshold 0
