#!/usr/bin/env bash
# Builds the Ingest fuzzer with libFuzzer + AddressSanitizer and runs it for SECONDS (default 60).
# Usage: fuzz/run.sh [SECONDS]   — corpus in fuzz/corpus/, crash inputs in fuzz/bin/ (both git-ignored).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
swift build -c debug -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz --product IngestFuzzer
binary=$(swift build -c debug -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz --show-bin-path)/IngestFuzzer
mkdir -p corpus bin
# Seed the corpus with the recorded captures (mode byte 0 = whole connection, handshake stripped).
seed() { # mode byte, capture: the first 20 KB after the handshake
  printf "$1"
  tail -c +3074 "$2" | head -c 20000 || true
}
if [[ -z "$(ls -A corpus)" ]]; then
  for capture in ../media-fixtures/captures/*.rtmp; do
    name=$(basename "$capture" .rtmp)
    seed '\x00' "$capture" > "corpus/seed-$name"
    seed '\x04' "$capture" > "corpus/seed-chunks-$name"
  done
fi
"$binary" corpus -max_total_time="$seconds" -max_len=65536 -artifact_prefix=bin/ -print_final_stats=1
