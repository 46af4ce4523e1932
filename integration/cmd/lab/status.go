package main

import (
	"context"
	"fmt"
	"io"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/status"
)

// printStatus prints `bootcore status --cluster NAME` for a lab cluster (the same package the
// command runs), preceded by the command line that repeats it.
// repo is the lab repository the clusters were booted from and Flux syncs.
func printStatus(ctx context.Context, out io.Writer, c *testbed.Cluster, repo string) {
	fmt.Fprintf(out, "$ bootcore status --cluster %s --repo %s --kubeconfig %s\n", c.Name, repo, c.KubeconfigPath)
	checker, err := status.NewChecker(ctx, repo, c.Name, c.Config)
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
