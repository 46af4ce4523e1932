package testbed

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// StartT starts a cluster for a test. The test FAILS, never skips, when the
// test-bed binaries are missing (the message says to run `make testbin`).
// The cluster is stopped when the test ends; its run directory (logs,
// kubeconfig) is removed if the test passed and kept, with its path logged,
// if it failed.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	return StartManyT(t, opts)[0]
}

// StartManyT starts several clusters concurrently (as StartT each), for
// tests with more than one cluster.
func StartManyT(t testing.TB, opts ...Options) []*Cluster {
	t.Helper()
	if _, err := CheckBinaries(coreBinaries...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clusters := make([]*Cluster, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		if o.Logf == nil {
			o.Logf = t.Logf
		}
		wg.Go(func() { clusters[i], errs[i] = Start(ctx, o) })
	}
	wg.Wait()
	for _, c := range clusters {
		if c != nil {
			stopOnCleanup(t, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return clusters
}

func stopOnCleanup(t testing.TB, c *Cluster) {
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping cluster %s: %v", c.Name, err)
		}
		if t.Failed() || os.Getenv("BOOTCORE_KEEP_RUNDIR") != "" {
			t.Logf("cluster %s: logs and kubeconfig kept in %s", c.Name, c.RunDir)
			return
		}
		_ = os.RemoveAll(c.RunDir)
	})
}

// StartFluxT starts the Flux controllers on c, failing the test on error
// (including missing binaries: run `make testbin`).
func StartFluxT(t testing.TB, c *Cluster) *Flux {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := c.StartFlux(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// GitServerT starts a Git server for a test and stops it at the end.
func GitServerT(t testing.TB) *GitServer {
	t.Helper()
	g, err := StartGitServer(filepath.Join(t.TempDir(), "git"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}
