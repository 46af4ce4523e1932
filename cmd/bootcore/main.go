// Command bootcore boots Talos clusters into Flux GitOps: gen renders the CNI and CRDs into
// Talos machine-config patches; later commands hand the running cluster over to Flux.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, the same on every command (README: Exit codes).
const (
	exitOK          = 0 // done; every check passed
	exitFindings    = 1 // findings, stale output, not Ready, a phase failed
	exitInvalid     = 2 // bad input (flags, spec, files) or the command could not run
	exitUnreachable = 3 // the cluster did not answer (agent: the cluster is not the named one)
	exitLocked      = 4 // another agent holds the lock
)

// exitError carries a specific exit code (e.g. 1 for "gen --check found drift") and the one
// message printed for it (none when the command already reported, e.g. the agent's result).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	cmd, err := newRootCmd().ExecuteC()
	global.stop()
	code, msg := exitStatus(cmd, err)
	if msg != "" {
		fmt.Fprintln(os.Stderr, msg)
	}
	os.Exit(code)
}

// exitStatus maps a command's error to the exit code and the one message printed for it,
// prefixed with the command ("bootcore gen: …").
func exitStatus(cmd *cobra.Command, err error) (int, string) {
	prefix := "bootcore: "
	if cmd != nil {
		prefix = cmd.CommandPath() + ": "
	}
	var ee *exitError
	switch {
	case err == nil:
		return exitOK, ""
	case errors.As(err, &ee):
		if ee.msg == "" {
			return ee.code, ""
		}
		return ee.code, prefix + ee.msg
	case errors.Is(err, context.DeadlineExceeded) && global.timeout > 0:
		return exitInvalid, fmt.Sprintf("%sgave up after --timeout %s: %v", prefix, global.timeout, err)
	default:
		return exitInvalid, prefix + err.Error()
	}
}

// noArgs refuses positional arguments with a message naming them (cobra.NoArgs says
// "unknown command" for a command that has no subcommands).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q: %s takes flags only (see %s --help)", args[0], cmd.Name(), cmd.CommandPath())
	}
	return nil
}
