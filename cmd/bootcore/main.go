// Command bootcore boots Talos clusters into Flux GitOps: gen renders the CNI and CRDs into
// Talos machine-config patches; later commands hand the running cluster over to Flux.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// exitError carries a specific exit code (e.g. 1 for "gen --check found drift").
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	err := newRootCmd().Execute()
	global.stop()
	code, msg := exitStatus(err)
	if msg != "" {
		fmt.Fprintln(os.Stderr, msg)
	}
	os.Exit(code)
}

// exitStatus maps a command's error to the exit code and the one message printed for it.
func exitStatus(err error) (int, string) {
	var ee *exitError
	switch {
	case err == nil:
		return 0, ""
	case errors.As(err, &ee):
		return ee.code, ee.msg
	case errors.Is(err, context.DeadlineExceeded) && global.timeout > 0:
		return 2, fmt.Sprintf("Error: gave up after --timeout %s: %v", global.timeout, err)
	default:
		return 2, "Error: " + err.Error()
	}
}
