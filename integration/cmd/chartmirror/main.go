// Command chartmirror serves the published upstream charts (integration/testdata/upstream-charts)
// on loopback as the lab's air-gapped mirror (see package chartmirror), and with a command after
// "--" runs it while serving and exits with its status:
//
//	chartmirror -addr 127.0.0.1:5790 -- go run ./cmd/bootcore gen --repo integration/testdata/lab --check
//
// The lab spec's `mirrors:` name 127.0.0.1:5790 (DefaultAddr); the tests start their own mirror
// on a free port and rewrite that address.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/bootcore-dev/bootcore/integration/chartmirror"
)

func main() {
	addr := flag.String("addr", chartmirror.DefaultAddr, "listen address (loopback)")
	charts := flag.String("charts", "integration/testdata/upstream-charts", "directory of the chart packages")
	flag.Parse()
	state, err := os.MkdirTemp("", "chartmirror-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(state)
	m, err := chartmirror.Start(*addr, *charts, state, chartmirror.Upstreams)
	if err != nil {
		fail(err)
	}
	defer m.Close()
	if flag.NArg() == 0 {
		fmt.Printf("chartmirror: serving on %s (proxy CA %s); Ctrl-C stops\n", m.Addr, m.CAFile)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		m.Close()
		os.RemoveAll(state)
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "chartmirror:", err)
	os.Exit(2)
}
