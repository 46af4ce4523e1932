//go:build tools

// Package tools pins the test-bed binary built from this module (see ../testbin.sh).
package tools

import (
	_ "github.com/external-secrets/external-secrets"
)
