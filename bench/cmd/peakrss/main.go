// Command peakrss runs a command and writes its peak resident set size in bytes (getrusage
// ru_maxrss) to a file:
//
//	peakrss <file> <command> [args...]
//
// The benchmarks measure child processes through it because a child started by the (large)
// benchmark process itself inherits the parent's high-water mark at exec time on Linux, so its
// ru_maxrss would read at least the parent's RSS. This program is small, so what it reports is
// the child's. It also writes the command's CPU time (user + system, nanoseconds, including
// its own waited-for children) to <file>.cpu, and the peaks of the anonymous and of the
// file-backed part of its RSS (sampled every 10 ms from /proc) to <file>.anon and <file>.file:
// the file-backed part is the binary's own pages, mapped as its code runs. Standard streams
// pass through; the exit code is the command's.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss <file> <command> [args...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	done := make(chan struct{})
	peaks := make(chan [2]int64, 1)
	go func() { peaks <- samplePeaks(cmd.Process.Pid, done) }()
	err := cmd.Wait()
	close(done)
	peak := <-peaks
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
		for i, ext := range []string{".anon", ".file"} {
			if werr := os.WriteFile(os.Args[1]+ext, []byte(strconv.FormatInt(peak[i], 10)), 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "peakrss:", werr)
				os.Exit(2)
			}
		}
		cpu := ru.Utime.Nano() + ru.Stime.Nano()
		if werr := os.WriteFile(os.Args[1]+".cpu", []byte(strconv.FormatInt(cpu, 10)), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "peakrss:", werr)
			os.Exit(2)
		}
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// samplePeaks reads pid's RssAnon and RssFile every 10 ms until done, and returns their peaks
// in bytes.
func samplePeaks(pid int, done <-chan struct{}) [2]int64 {
	var peak [2]int64
	path := fmt.Sprintf("/proc/%d/status", pid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				for i, key := range []string{"RssAnon:", "RssFile:"} {
					if rest, ok := strings.CutPrefix(line, key); ok {
						kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
						peak[i] = max(peak[i], kb*1024)
					}
				}
			}
		}
		select {
		case <-done:
			return peak
		case <-tick.C:
		}
	}
}
