//go:build tools

// Package tools pins the flux-operator binary the agent's end-to-end tests run (see build.sh).
// It is built and run as a separate program; bootcore never imports flux-operator code
// (AGPL-3.0).
package tools

import (
	_ "github.com/controlplaneio-fluxcd/flux-operator/cmd/operator"
)
