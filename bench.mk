# Benchmarks (issue #8; bench/, docs/benchmarks.md). Included from the top-level Makefile.
#
#   make bench         run the benchmarks and rewrite docs/benchmarks.md (~20 min on 2 cores:
#                      the gen pairs, the fleet pairs, the scale trees and BENCH_AGENT_RUNS
#                      test-bed hand-overs;
#                      plus the first time ~1 min to build the helm CLI and `make testbin`)
#   make bench-smoke   every benchmark once on small inputs, and the report program on the result,
#                      so the harness cannot rot (part of `make test`; well under a minute after
#                      compiling). The agent benchmark boots a test-bed cluster and hands it over
#                      (~2 min), so the smoke only compiles it; BENCH_SMOKE_AGENT=1 runs it once too.
#
# The helm CLI (helm.sh/helm/v3 v3.22.0, pinned in integration/tools/helm) is built by
# integration/tools/testbin.sh (group helm) into $(TESTBIN_DIR)/bin; bootcore, the CRD filter of
# the helm pipeline and the benchmark test binary into $(BENCH_DIR).

GO          ?= go
TESTBIN_DIR ?= $(CURDIR)/integration/.testbin
BENCH_DIR   ?= $(CURDIR)/bin/bench
# Pairs per comparison (gen vs helm pipeline, gen vs engine floor), after one warm-up pair.
BENCH_PAIRS ?= 10
# Runs of each stage benchmark and of each scale benchmark (the report takes the median).
BENCH_COUNT       ?= 5
BENCH_SCALE_COUNT ?= 3
# Pairs of the fleet comparison (50 clusters against 1), after one warm-up pair.
BENCH_FLEET_PAIRS ?= 5
# Hand-overs of fresh test-bed clusters by the agent benchmark (~20 samples each).
BENCH_AGENT_RUNS ?= 3
BENCH_OUT   ?= docs/benchmarks.md

BENCH_ENV = BENCH_HELM=$(TESTBIN_DIR)/bin/helm BENCH_BOOTCORE=$(BENCH_DIR)/bootcore BENCH_CRDFILTER=$(BENCH_DIR)/crdfilter BENCH_PEAKRSS=$(BENCH_DIR)/peakrss
BENCH_TEST = $(BENCH_DIR)/bench.test -test.run '^$$' -test.timeout 3h

.PHONY: bench bench-smoke bench-tools

bench-tools:
	@BOOTCORE_TESTBIN=$(TESTBIN_DIR) bash integration/tools/testbin.sh helm
	$(GO) build -tags $(BUILD_TAGS) -o $(BENCH_DIR)/bootcore ./cmd/bootcore
	$(GO) build -o $(BENCH_DIR)/crdfilter ./bench/cmd/crdfilter
	$(GO) build -o $(BENCH_DIR)/peakrss ./bench/cmd/peakrss
	$(GO) test -c -o $(BENCH_DIR)/bench.test ./bench

# tee hides the benchmarks' exit status: the report fails on a FAIL line or a missing result.
# testbin (integration/testbed.mk): the test bed the agent benchmark boots (a no-op when warm).
bench: bench-tools testbin
	@rm -f $(BENCH_DIR)/bench.txt && date +%s >$(BENCH_DIR)/bench.start
	cd bench && $(BENCH_ENV) $(BENCH_TEST) -test.bench 'GenVsHelm|GenVsFloor' -test.benchtime $(BENCH_PAIRS)x | tee -a $(BENCH_DIR)/bench.txt
	cd bench && $(BENCH_ENV) $(BENCH_TEST) -test.bench '^BenchmarkGen$$|GenStages' -test.benchtime 1x -test.count $(BENCH_COUNT) | tee -a $(BENCH_DIR)/bench.txt
	cd bench && $(BENCH_ENV) $(BENCH_TEST) -test.bench 'GenFleet' -test.benchtime $(BENCH_FLEET_PAIRS)x | tee -a $(BENCH_DIR)/bench.txt
	cd bench && $(BENCH_ENV) $(BENCH_TEST) -test.bench 'TreeLoad|Check' -test.benchtime 1x -test.count $(BENCH_SCALE_COUNT) | tee -a $(BENCH_DIR)/bench.txt
	cd bench && BENCH_AGENT_RUNS=$(BENCH_AGENT_RUNS) $(BENCH_ENV) $(BENCH_TEST) -test.bench 'Agent' -test.benchtime 1x | tee -a $(BENCH_DIR)/bench.txt
	$(GO) run ./bench/cmd/report -in $(BENCH_DIR)/bench.txt -out $(BENCH_OUT) -start-file $(BENCH_DIR)/bench.start

bench-smoke: bench-tools
	@cd bench && BENCH_SMOKE=1 $(BENCH_ENV) $(BENCH_TEST) -test.bench '$(if $(BENCH_SMOKE_AGENT),.,Gen|TreeLoad|Check)' -test.benchtime 1x >$(BENCH_DIR)/smoke.txt 2>&1 || { cat $(BENCH_DIR)/smoke.txt; exit 1; }
	@$(GO) run ./bench/cmd/report -in $(BENCH_DIR)/smoke.txt -out $(BENCH_DIR)/smoke.md -smoke

# `make test` runs the smoke too (include this file after the Makefile's own targets).
test: bench-smoke
