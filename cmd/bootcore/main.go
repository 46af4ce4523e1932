// Command bootcore boots Talos clusters into Flux GitOps: gen renders the CNI and CRDs into
// Talos machine-config patches; later commands hand the running cluster over to Flux.
package main

import (
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
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(2)
}
