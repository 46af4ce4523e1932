# bootcore developer targets. `make test` is the one CI runs (see .ci/run).
GO      ?= go
BIN     ?= bin/bootcore
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The lab tree is the repository-shaped fixture whose generated output is committed.
LAB     ?= integration/testdata/lab
UNIT_PKGS = ./cmd/... ./internal/... ./talos/...
# bootcore never loads Go plugins (kustomize builds run with plugins off); without this tag
# kustomize's import of Go's plugin package makes the binary export every symbol, ~30 MB more RSS.
# The e2e harness and the benchmarks build with the same tag.
BUILD_TAGS ?= kustomize_disable_go_plugin_support

.PHONY: build test test-unit gen gen-check check check-corpus docs vet fuzz fuzz-smoke lab lab-down chartmirror release image test-image

# The lab's HelmReleases name the published charts at their upstream repositories; its spec's
# mirrors point at this loopback mirror of integration/testdata/upstream-charts (an air-gapped
# site's setup). gen and check on the lab run under it: `chartmirror -- CMD` serves while CMD runs.
CHARTMIRROR = integration/.testbin/chartmirror
WITH_MIRROR = $(CHARTMIRROR) --
chartmirror:
	$(GO) build -o $(CHARTMIRROR) ./integration/cmd/chartmirror

build:
	$(GO) build -tags $(BUILD_TAGS) -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bootcore

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

# Some package tests (the agent's watch-driven waits) need a real API server: the test-bed binaries.
# The packages' tests render the lab tree, whose charts come through the lab's mirror: one
# mirror serves the whole run (by hand: integration/.testbin/chartmirror -- go test ./internal/gen).
test-unit: testbin chartmirror
	BOOTCORE_TESTBIN=$(TESTBIN_DIR) $(WITH_MIRROR) $(GO) test -count=1 -timeout 30m $(UNIT_PKGS)

# Everything: unit tests, the committed lab output is current, and the test-bed suites.
test: vet gen-check check test-unit test-image fuzz-smoke test-integration

# Release binaries: static (no cgo), plugin-free, reproducible paths, version stamped; one per
# platform, with SHA256SUMS and, from the Go module proxy, a CycloneDX SBOM of the module.
RELEASE_DIR       ?= bin/release
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
RELEASE_FLAGS      = -trimpath -tags $(BUILD_TAGS) -ldflags "-s -w -X main.version=$(VERSION)"
CYCLONEDX_GOMOD   ?= github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
release:
	@rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	@for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out=$(RELEASE_DIR)/bootcore-$(VERSION)-$$os-$$arch; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build $(RELEASE_FLAGS) -o $$out ./cmd/bootcore || exit 1; \
	done
	@# cyclonedx-gomod reads the module version with go-git, which cannot open a git worktree or
	@# follow alternates: it runs on a plain clone of HEAD (the SBOM describes the committed tree).
	@echo "sbom $(RELEASE_DIR)/bootcore-$(VERSION).cdx.json"
	@tmp=$$(mktemp -d) && git clone -q --no-local . $$tmp && \
		(cd $$tmp && GOFLAGS=-buildvcs=false $(GO) run $(CYCLONEDX_GOMOD) app -json -licenses -main cmd/bootcore \
			-output $(abspath $(RELEASE_DIR))/bootcore-$(VERSION).cdx.json .); \
		rc=$$?; rm -rf $$tmp; exit $$rc
	cd $(RELEASE_DIR) && sha256sum bootcore-* > SHA256SUMS && cat SHA256SUMS

# The agent image (manifests/agent/job.yaml), multi-arch, built without a Docker daemon from the
# linux release binaries into an OCI layout: push it with
#   crane push $(IMAGE_DIR) ghcr.io/bootcore-dev/bootcore:$(VERSION)
IMAGE_DIR ?= bin/image
image:
	@test -r /etc/ssl/certs/ca-certificates.crt || { echo "image: needs the CA bundle: apt-get install -y ca-certificates"; exit 1; }
	@$(MAKE) --no-print-directory release RELEASE_PLATFORMS="linux/amd64 linux/arm64" CYCLONEDX_GOMOD=$(CYCLONEDX_GOMOD)
	$(GO) run ./build/image -out $(IMAGE_DIR) -version $(VERSION) \
		-binary linux/amd64=$(RELEASE_DIR)/bootcore-$(VERSION)-linux-amd64 \
		-binary linux/arm64=$(RELEASE_DIR)/bootcore-$(VERSION)-linux-arm64

# The image test builds the image as a cluster would pull it and runs its binary; its first
# (cold) static build takes minutes, hence its own timeout.
test-image:
	@test -r /etc/ssl/certs/ca-certificates.crt || { echo "test-image: needs the CA bundle: apt-get install -y ca-certificates"; exit 1; }
	$(GO) test -count=1 -timeout 40m ./build/...

# The CI gate users run, on the lab tree and on this repository's real tree (which cannot be
# rendered without chart registries: that part is reported as skipped, the rest must pass).
check: chartmirror
	$(WITH_MIRROR) $(GO) run ./cmd/bootcore check --repo $(LAB)
	$(GO) run ./cmd/bootcore check --repo .

# check on every repository tree under DIR (one per subdirectory, each with its
# bootstrap/bootcore.yaml), e.g. a corpus of real repositories you keep: findings and time
# per tree. Default: the shapes of real trees under internal/check/testdata/corpus.
DIR ?= internal/check/testdata/corpus
check-corpus: build
	@for d in $(DIR)/*/; do \
		echo "== $$d"; start=$$(date +%s%N); \
		$(BIN) check --repo "$$d"; rc=$$?; \
		echo "== $$d: exit $$rc, $$(( ($$(date +%s%N) - start) / 1000000 )) ms"; \
	done

# Fuzz the parsers and the patch builder. FUZZTIME per target; by hand run at least
# FUZZTIME=2m (10 targets: 20 min). The seed corpora (testdata/fuzz) also run in every go test.
FUZZTIME ?= 3m
# FUZZFLAGS passes test flags, e.g. FUZZFLAGS=-parallel=1 to leave cores for other work.
FUZZFLAGS ?=
FUZZ_TARGETS = FuzzParse:./internal/spec FuzzSubstitute:./internal/fluxtree FuzzSplit:./internal/render FuzzSplitManifests:./internal/render FuzzEncode:./internal/render FuzzDecode:./internal/render FuzzGenerate:./talos FuzzGrownSize:./talos FuzzDecryptMatchesSops:./internal/sopsage FuzzDecryptNeverAcceptsWhatSopsRefuses:./internal/sopsage
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $${t##*:} || exit 1; \
	done

# What CI runs: a few seconds of each target so the harness cannot rot. A count, not a
# duration: with a duration Go 1.26's fuzz coordinator can fail a target with "context deadline
# exceeded" as the time runs out (go.dev/issue/75804, fixed in Go 1.27).
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=1000x

# Regenerate docs/cli from the commands (a test fails when it is stale).
docs:
	$(GO) test ./cmd/bootcore -run TestCLIDocsUpToDate -update

# Regenerate the lab tree's committed patches.
gen: chartmirror
	$(WITH_MIRROR) $(GO) run ./cmd/bootcore gen --repo $(LAB)

# Fail when the committed lab patches are stale (what a user's CI runs on their repo).
gen-check: chartmirror
	$(WITH_MIRROR) $(GO) run ./cmd/bootcore gen --repo $(LAB) --check

# The lab: both lab clusters on the test bed, booted from gen's patches (Talos emulation),
# handed over to Flux by bootcore agent; status printed; left running until make lab-down.
LAB_BIN ?= integration/.testbin/lab
# Logs, pid file and lock of the running lab (integration/cmd/lab's walkthrough test uses its own).
LAB_STATE ?= integration/.run/lab
lab: testbin build
	$(GO) build -o $(LAB_BIN) ./integration/cmd/lab
	BOOTCORE_TESTBIN=$(TESTBIN_DIR) $(LAB_BIN) up -detach -agent $(BIN) -state $(LAB_STATE)

lab-down:
	@if [ -x $(LAB_BIN) ]; then $(LAB_BIN) down -state $(LAB_STATE); else echo "lab: not running"; fi

include integration/testbed.mk
include bench.mk
