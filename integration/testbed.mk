# Test bed: binaries for integration tests (see integration/tools/testbin.sh).
# Included from the top-level Makefile.
#
#   make testbin                 build every test-bed binary that is missing or whose pin changed
#   make testbin TESTBIN_GROUPS="etcd kube kwok"   only some groups
#   make test-integration        go test ./integration/... (needs make testbin first)

TESTBIN_DIR    ?= $(CURDIR)/integration/.testbin
TESTBIN_GROUPS ?=
# -p 1: one package at a time. The test bed runs real control planes on a 2-core runner; with the
# e2e package beside it, load-induced races in kube-controller-manager showed up as flakes.
INTEGRATION_TEST_FLAGS ?= -count=1 -p 1 -timeout 50m

.PHONY: testbin test-integration

testbin:
	@BOOTCORE_TESTBIN=$(TESTBIN_DIR) bash integration/tools/testbin.sh $(TESTBIN_GROUPS)
	@BOOTCORE_TESTBIN=$(TESTBIN_DIR) bash integration/tools/flux-operator/build.sh

test-integration: testbin
	BOOTCORE_TESTBIN=$(TESTBIN_DIR) go test $(INTEGRATION_TEST_FLAGS) ./integration/...
