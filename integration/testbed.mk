# Test bed: binaries for integration tests (see integration/tools/testbin.sh).
# Included from the top-level Makefile.
#
#   make testbin                 build every test-bed binary that is missing or whose pin changed
#   make testbin TESTBIN_GROUPS="etcd kube kwok"   only some groups
#   make test-integration        go test ./integration/... (needs make testbin first)

TESTBIN_DIR    ?= $(CURDIR)/integration/.testbin
TESTBIN_GROUPS ?=
INTEGRATION_TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: testbin test-integration

testbin:
	@BOOTCORE_TESTBIN=$(TESTBIN_DIR) bash integration/tools/testbin.sh $(TESTBIN_GROUPS)

test-integration: testbin
	BOOTCORE_TESTBIN=$(TESTBIN_DIR) go test $(INTEGRATION_TEST_FLAGS) ./integration/...

# Lab clusters until Ctrl-C (see integration/cmd/lab). Example:
#   make testbed-lab LAB_FLAGS="-clusters infra,apps -flux -git-dir integration/testdata/lab"
LAB_FLAGS ?= -clusters lab
.PHONY: testbed-lab
testbed-lab: testbin
	BOOTCORE_TESTBIN=$(TESTBIN_DIR) go run ./integration/cmd/lab $(LAB_FLAGS)
