package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/status"
)

// printStatus prints `bootcore status --cluster NAME` for a lab cluster (the same package the
// command runs), preceded by the command line that repeats it.
func printStatus(ctx context.Context, out io.Writer, c *testbed.Cluster) {
	// up() lays the lab out as <state>/clusters/<name> (c.RunDir) and <state>/repo (the lab
	// repository the clusters were booted from and Flux syncs).
	repo := filepath.Join(filepath.Dir(filepath.Dir(c.RunDir)), "repo")
	fmt.Fprintf(out, "$ bootcore status --cluster %s --repo %s --kubeconfig %s\n", c.Name, repo, c.KubeconfigPath)
	checker, err := status.NewChecker(repo, c.Name, c.Config)
	if err != nil {
		fmt.Fprintf(out, "bootcore status: %v\n", err)
		return
	}
	r, err := checker.Run(ctx)
	if err != nil {
		fmt.Fprintf(out, "bootcore status: %v\n", err)
		return
	}
	r.PrintTable(out)
}
