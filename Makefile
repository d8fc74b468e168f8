# LiveHub — two commands: `make run` and `make test` (see README.md).
SHELL := /bin/bash
APT_PACKAGES := libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libsqlite3-dev libssl-dev pkg-config ffmpeg
TEST_APT_PACKAGES := python3-venv chromium chromium-driver openssl obs-studio xvfb xauth nodejs node-sockjs-client postgresql
VENV := .venv-test
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run build deps test-deps test swift-test e2e-test bench microbench fuzz fuzz-smoke fixtures clean

## Install the system packages LiveHub needs (only the missing ones).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; fi

build: deps
	swift build -c release --product livehub

## Build (release) and start the server in dev mode (generated secrets, sample tokens; see README
## "Auth" for production settings) with the embedded SQLite default.
run: build
	.build/release/livehub --dev

test-deps: deps
	@missing=""; for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; fi
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r e2e/requirements.txt

## The whole test suite: Swift unit/integration tests, then end-to-end tests with real clients, on
## SQLite and again on PostgreSQL. A throw-away PostgreSQL cluster (tools/pg-temp.sh) runs for the
## duration, in a temporary directory; LIVEHUB_TEST_DATABASE_URL points the tests at it.
test: test-deps
	@dir=$$(mktemp -d /tmp/livehub-pg.XXXXXX); chmod 755 $$dir; \
	port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'); \
	url=$$(tools/pg-temp.sh start $$dir/cluster $$port) || exit 1; \
	trap "tools/pg-temp.sh stop $$dir/cluster; rm -rf $$dir" EXIT; \
	echo "PostgreSQL for the tests: $$url"; \
	LIVEHUB_TEST_DATABASE_URL=$$url LIVEHUB_REQUIRE_POSTGRES=1 $(MAKE) --no-print-directory swift-test e2e-test

## One test at a time: on 2 cores, ~525 tests run in parallel starve the timing-sensitive ones
## (connection limits, Engine.IO probes, the HLS proxy's 0.5 s playlist cache) and they flake; serially
## the run takes ~80 s instead of ~25 s.
swift-test:
	swift test --no-parallel

## Without LIVEHUB_TEST_DATABASE_URL (a PostgreSQL server), only the SQLite pass runs; with it,
## the suite runs again with every server on PostgreSQL (LIVEHUB_E2E_BACKEND=postgres).
e2e-test:
	swift build --product livehub
	LIVEHUB_BIN=$(CURDIR)/.build/debug/livehub LIVEHUB_E2E_BACKEND=sqlite $(PY) -m pytest -q e2e
	@if [ -n "$$LIVEHUB_TEST_DATABASE_URL" ]; then \
		echo "e2e on PostgreSQL ($$LIVEHUB_TEST_DATABASE_URL)"; \
		LIVEHUB_BIN=$(CURDIR)/.build/debug/livehub LIVEHUB_E2E_BACKEND=postgres $(PY) -m pytest -q e2e; \
	fi

fixtures:
	bash media-fixtures/generate.sh

## libFuzzer targets for every decoder and session (fuzz/README.md). FUZZ_SECONDS per target;
## fuzz-smoke is what CI runs: each target briefly over its corpus.
FUZZ_SECONDS ?= 60
fuzz: deps
	fuzz/run.sh -t $(FUZZ_SECONDS)

fuzz-smoke: deps
	fuzz/run.sh -t 20

## LiveHub vs nginx-rtmp on this machine (bench/README.md): table + bench/results/latest.json.
## Options via BENCH_ARGS, e.g. make bench BENCH_ARGS="--reps 1 --only latency" or "--with-100".
BENCH_APT_PACKAGES := nginx libnginx-mod-rtmp wrk ffmpeg gcc postgresql
## The C subscribers pause READ_PAUSE_US after a read round that did not fill their event array, so
## that a co-located subscriber is not woken once per delivery (bench/hub/README.md).
READ_PAUSE_US ?= 500
STOMPSUB_ARGS = --native-read-pause-us $(READ_PAUSE_US)

bench: deps
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; fi
	swift build -c release --product livehub --scratch-path .build-bench
	python3 bench/run.py --with-100 $(BENCH_ARGS)
	@mkdir -p bench/.cache && cc -O2 -Wall -Wextra -pthread -o bench/.cache/stompsub bench/hub/stompsub.c
	@cc -O2 -pthread -o bench/.cache/loopback_floor bench/hub/loopback_floor.c
	swift build -c release --package-path bench/hubload
	python3 bench/hub/stomp_fanout.py --bin .build-bench/release/livehub --native bench/.cache/stompsub $(STOMPSUB_ARGS) --subscribers 1000 --messages 30 --rate 2 --skip-throughput --out hub-1k.json
	python3 bench/hub/stomp_fanout.py --bin .build-bench/release/livehub --native bench/.cache/stompsub $(STOMPSUB_ARGS) --subscribers 5000 --messages 30 --rate 2 --skip-throughput --out hub-5k.json
	python3 bench/hub/fanout_reps.py --bin .build-bench/release/livehub --native bench/.cache/stompsub --floor bench/.cache/loopback_floor --reps 3 --subscribers 10000 --read-pause-us $(READ_PAUSE_US)
	python3 bench/hub/stomp_fanout.py --bin .build-bench/release/livehub --native bench/hubload/.build/release/hubload --subscribers 10000 --messages 30 --rate 2 --skip-throughput --out hub-10k-hubload.json
	python3 bench/hub/stomp_fanout.py --bin .build-bench/release/livehub --native bench/.cache/stompsub $(STOMPSUB_ARGS) --subscribers 2000 --messages 300 --rate 10
	python3 bench/hub/chat_commit.py --bin .build-bench/release/livehub --reps 3 --users 200,1000
	python3 bench/hub/stomp_fanout.py --bin .build-bench/release/livehub --native bench/.cache/stompsub $(STOMPSUB_ARGS) --subscribers 10000 --messages 250 --rate 25 --skip-throughput --out hub-10k-throughput.json
	python3 bench/hub/idle_memory.py --bin .build-bench/release/livehub --connections 5000
	python3 bench/hub/bell_load.py --bin .build-bench/release/livehub --clients 1000 --users 200
	python3 bench/deals/claims_bench.py --bin .build-bench/release/livehub --buyers 1000 --units 100 --rounds 3
	@echo "Micro-benchmarks of the hot paths (chunk decode, AMF0, HLS packager, hub fan-out): make microbench"
	# Issue 20: 3 nodes + PostgreSQL against one node (bench/cluster/cluster_bench.py).
	python3 bench/cluster/cluster_bench.py --bin .build-bench/release/livehub
	# Issue 21: recording on against off, CPU per stream and disk bytes per stream-second (bench/recording/recording_bench.py).
	python3 bench/recording/recording_bench.py --bin .build-bench/release/livehub
	python3 bench/reactions/reactions_bench.py --bin .build-bench/release/livehub && python3 bench/recovery/recovery_bench.py --bin .build-bench/release/livehub

## Micro-benchmarks of the hot paths, in-process, no servers (Benchmarks/, package-benchmark; see
## bench/README.md "Micro-benchmarks"). Release build in Benchmarks/.build; malloc counts need nothing
## installed on Swift 6.3+. Options via MICROBENCH_ARGS, e.g. MICROBENCH_ARGS="--filter 'AMF0.*'".
## BENCHMARK_DISABLE_MALLOC_INTERPOSER=1 (or BENCHMARK_DISABLE_JEMALLOC=1) builds without malloc
## counting, in a build directory of its own (the two builds cannot share one).
MICROBENCH_SCRATCH := Benchmarks/$(if $(BENCHMARK_DISABLE_MALLOC_INTERPOSER)$(BENCHMARK_DISABLE_JEMALLOC),.build-nomalloc,.build)
microbench: deps
	swift package --package-path Benchmarks --scratch-path $(MICROBENCH_SCRATCH) benchmark --no-progress $(MICROBENCH_ARGS)

clean:
	rm -rf .build Benchmarks/.build Benchmarks/.build-nomalloc bench/hubload/.build fuzz/.build-fuzz $(VENV)
