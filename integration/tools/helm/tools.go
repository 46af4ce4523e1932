//go:build tools

// Package tools pins the helm CLI (helm.sh/helm/v3 v3.22.0, the Helm SDK version bootcore
// links) that the benchmarks run as the `helm template` pipeline (see ../testbin.sh, group
// helm, and bench/). bootcore itself never execs helm.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
