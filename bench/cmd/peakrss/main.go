// Command peakrss runs a command and writes its peak resident set size in bytes (getrusage
// ru_maxrss) to a file:
//
//	peakrss <file> <command> [args...]
//
// The benchmarks measure child processes through it because a child started by the (large)
// benchmark process itself inherits the parent's high-water mark at exec time on Linux, so its
// ru_maxrss would read at least the parent's RSS. This program is small, so what it reports is
// the child's. It also writes the command's CPU time (user + system, nanoseconds, including
// its own waited-for children) to <file>.cpu. Standard streams pass through; the exit code is
// the command's.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss <file> <command> [args...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		if werr := os.WriteFile(os.Args[1], []byte(strconv.FormatInt(ru.Maxrss*1024, 10)), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "peakrss:", werr)
			os.Exit(2)
		}
		cpu := ru.Utime.Nano() + ru.Stime.Nano()
		if werr := os.WriteFile(os.Args[1]+".cpu", []byte(strconv.FormatInt(cpu, 10)), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "peakrss:", werr)
			os.Exit(2)
		}
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
