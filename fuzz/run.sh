#!/usr/bin/env bash
# Builds LiveHub's fuzz targets (libFuzzer + AddressSanitizer/LeakSanitizer, release, -enable-testing)
# and runs each over its committed seeds (fuzz/seeds/TARGET) and its working corpus
# (fuzz/corpus/TARGET, git-ignored, grows between runs).
#
# Usage: fuzz/run.sh [-t SECONDS] [-r RUNS] [-j JOBS] [TARGET...]
#   -t SECONDS  time per target (default 60); -r RUNS stops a target after RUNS executions instead
#   -j JOBS     targets run at the same time (default 1)
#   TARGET      any of the names below (default: all)
# One line per target: executions, executions/s, corpus size, result. Exits non-zero when a target
# crashed, trapped, leaked or reported a sanitizer error; the input that did it is in
# fuzz/artifacts/ and the log in fuzz/logs/ (both git-ignored). Turn such an input into a
# regression test in the normal suite.
set -euo pipefail
cd "$(dirname "$0")"

ALL_TARGETS=(RTMPFuzzer FLVCodecFuzzer HLSPackagerFuzzer HLSRequestFuzzer RecordingIndexFuzzer STOMPFuzzer SocketIOFuzzer SockJSFuzzer WebSocketFuzzer JSONFuzzer TokenFuzzer)
declare -A MAX_LEN=(
  [RTMPFuzzer]=65536 [FLVCodecFuzzer]=65536 [HLSPackagerFuzzer]=131072 [HLSRequestFuzzer]=1024 [RecordingIndexFuzzer]=16384
  [STOMPFuzzer]=8192 [SocketIOFuzzer]=8192 [SockJSFuzzer]=16384 [WebSocketFuzzer]=16384 [JSONFuzzer]=8192 [TokenFuzzer]=4096
)

seconds=60
runs=""
jobs=1
while getopts "t:r:j:" option; do
  case $option in
    t) seconds=$OPTARG ;;
    r) runs=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
  [ -n "${MAX_LEN[$target]:-}" ] || { echo "unknown target $target (one of: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

BUILD=(swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld --scratch-path .build-fuzz)
# SwiftPM keeps the build plan of a path dependency (the root package) across runs and does not see
# a source file moved there ("missing inputs"); dropping the plan re-plans it (objects are kept).
rm -f .build-fuzz/release.yaml .build-fuzz/*/release/description.json
"${BUILD[@]}" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' || true
"${BUILD[@]}" >/dev/null
bin=$("${BUILD[@]}" --show-bin-path)
mkdir -p corpus logs artifacts

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/lsan.supp:print_suppressions=0}
# A trap is reported by libFuzzer's own handler; Swift's backtracer would read memory ASan guards.
export SWIFT_BACKTRACE=enable=no

run_target() {
  local target=$1
  mkdir -p "corpus/$target"
  local limit=(-max_total_time="$seconds")
  [ -z "$runs" ] || limit=(-runs="$runs" -max_total_time=86400)
  local started=$SECONDS status=0
  "$bin/$target" "corpus/$target" "seeds/$target" "${limit[@]}" -max_len="${MAX_LEN[$target]}" \
    -timeout=25 -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="artifacts/$target-" \
    >"logs/$target.log" 2>&1 || status=$?
  local executed rate elapsed=$((SECONDS - started)) result
  executed=$(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$target.log" | awk '{print $2}' | tail -1)
  executed=${executed:-0}
  rate=$((executed / (elapsed > 0 ? elapsed : 1)))
  if [ $status -eq 0 ]; then result=ok; else result="FAILED (exit $status, see fuzz/logs/$target.log)"; fi
  printf '%-18s %12s execs %8s/s %6s s %6s corpus files  %s\n' "$target" "$executed" "$rate" "$elapsed" \
    "$(find "corpus/$target" -type f | wc -l)" "$result"
  [ $status -eq 0 ]
}

failed=0
pids=()
for target in "${targets[@]}"; do
  if [ "$jobs" -le 1 ]; then
    run_target "$target" || failed=1
  else
    run_target "$target" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit $failed
