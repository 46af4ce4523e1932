// Command lab runs test-bed clusters for hands-on work (the `make lab`
// environment): real control planes with kwok nodes that stay NotReady until
// Cilium runs, optionally the Talos inline-manifest boot EMULATION, a Git
// server with a directory committed to it, and the Flux controllers.
// Ctrl-C stops exactly the processes it started.
//
//	go run ./integration/cmd/lab -clusters infra,apps -git-dir integration/testdata/lab -flux
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
)

func main() {
	clusters := flag.String("clusters", "lab", "comma-separated cluster names")
	flux := flag.Bool("flux", false, "run source-, kustomize- and helm-controller on every cluster")
	gitDir := flag.String("git-dir", "", "serve this directory as Git repository \"lab\" (branch main)")
	patches := flag.String("talos-patch", "", "comma-separated control-plane patch files: emulate a Talos boot with them on every cluster ({cluster} is replaced by the cluster name)")
	runDir := flag.String("run-dir", "", "parent directory for cluster files (default integration/.run)")
	flag.Parse()
	if err := run(strings.Split(*clusters, ","), *flux, *gitDir, *patches, *runDir); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func run(names []string, flux bool, gitDir, patches, runDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }

	var mu sync.Mutex
	var started []*testbed.Cluster
	defer func() {
		fmt.Println("lab: stopping")
		for _, c := range started {
			if err := c.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Go(func() {
			opts := testbed.Options{Name: name, Logf: logf}
			if runDir != "" {
				// A fixed directory: clear what an earlier lab left there
				// (old etcd data would not match the new certificates).
				opts.RunDir = filepath.Join(runDir, name)
				if err := os.RemoveAll(opts.RunDir); err != nil {
					errs[i] = err
					return
				}
			}
			c, err := testbed.Start(ctx, opts)
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			started = append(started, c)
			mu.Unlock()
			errs[i] = setUp(ctx, c, flux, patches, logf)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	if gitDir != "" {
		g, err := testbed.StartGitServer(filepath.Join(started[0].RunDir, "git"))
		if err != nil {
			return err
		}
		defer g.Close()
		commit, err := g.CreateRepo("lab", gitDir)
		if err != nil {
			return err
		}
		fmt.Printf("lab: git repository %s (commit %s); commit more from %s\n", g.RepoURL("lab"), commit, g.Worktree("lab"))
	}
	for _, c := range started {
		fmt.Printf("lab: cluster %s ready: export KUBECONFIG=%s\n", c.Name, c.KubeconfigPath)
	}
	fmt.Println("lab: running; Ctrl-C stops everything")
	<-ctx.Done()
	return nil
}

func setUp(ctx context.Context, c *testbed.Cluster, flux bool, patches string, logf func(string, ...any)) error {
	if patches != "" {
		var files []string
		for _, p := range strings.Split(patches, ",") {
			files = append(files, strings.ReplaceAll(p, "{cluster}", c.Name))
		}
		cfg, err := talosemu.MachineConfigFromFiles(talosemu.ConfigOptions{ClusterName: c.Name}, files...)
		if err != nil {
			return err
		}
		node := &talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: logf}
		if _, err := node.Boot(ctx, cfg, 5*time.Minute); err != nil {
			return err
		}
	}
	if flux {
		if _, err := c.StartFlux(ctx); err != nil {
			return err
		}
	}
	return nil
}
