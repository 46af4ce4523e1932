package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/talosapi"
)

// Flags shared by several commands keep one name and one meaning everywhere, as in talosctl,
// flux and kubectl: --repo, --cluster, --kubeconfig, --context, --talosconfig, --nodes, -o,
// and the root's persistent --timeout and -v.

// globalFlags are the root's persistent flags.
type globalFlags struct {
	timeout time.Duration
	verbose bool
	cancel  context.CancelFunc
}

var global globalFlags

func (g *globalFlags) register(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.DurationVar(&g.timeout, "timeout", 0, "give up after this long (0: no overall limit; the agent's phases also have their own timeouts)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "print more detail on stderr (what is fetched, rendered, checked)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.timeout < 0 {
			return &exitError{code: 2, msg: fmt.Sprintf("--timeout %s: must not be negative", g.timeout)}
		}
		if g.timeout > 0 {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			g.cancel = cancel
			cmd.SetContext(ctx)
		}
		return nil
	}
}

// stop releases the --timeout context once the command has returned.
func (g *globalFlags) stop() {
	if g.cancel != nil {
		g.cancel()
	}
}

// verbosef prints a detail line on stderr when -v is set.
func verbosef(cmd *cobra.Command, format string, args ...any) {
	if global.verbose {
		fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...)
	}
}

// clusterAccess is how a command reaches a running cluster: a kubeconfig, or the Talos API
// (talosconfig + nodes), which hands out the admin kubeconfig as talosctl kubeconfig does.
type clusterAccess struct {
	kubeconfig   string
	kubeContext  string
	talosconfig  string
	talosContext string
	nodes        []string
	endpoints    []string
}

func (a *clusterAccess) register(f *pflag.FlagSet) {
	f.StringVar(&a.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&a.kubeContext, "context", "", "kubeconfig context (default the current context)")
	f.StringVar(&a.talosconfig, "talosconfig", "", "talosconfig file: reach the cluster through the Talos API instead of a kubeconfig (default $TALOSCONFIG when set)")
	f.StringVar(&a.talosContext, "talos-context", "", "talosconfig context (default the current context)")
	f.StringSliceVarP(&a.nodes, "nodes", "n", nil, "control-plane node addresses for the Talos API (default the talosconfig context's nodes)")
	f.StringSliceVarP(&a.endpoints, "endpoints", "e", nil, "Talos API endpoints (default the talosconfig context's endpoints)")
}

// connector picks the way in. The Talos API is used when --talosconfig, --talos-context,
// --nodes or --endpoints is given, or $TALOSCONFIG is set; then the kubeconfig comes from the
// Talos API (as talosctl kubeconfig, kept in memory) unless --kubeconfig or $KUBECONFIG names
// one.
func (a *clusterAccess) connector() (agent.Connector, error) {
	conn, _, err := a.open("")
	return conn, err
}

// open is connector that also returns the Talos API client (nil without the Talos API) and
// writes the fetched kubeconfig to writeKubeconfig (--write-kubeconfig) when set.
func (a *clusterAccess) open(writeKubeconfig string) (conn agent.Connector, talos *talosapi.Client, err error) {
	kube := agent.Kubeconfig{Path: a.kubeconfig, Context: a.kubeContext}
	envTalos := os.Getenv("TALOSCONFIG") != ""
	if a.talosconfig == "" && a.talosContext == "" && len(a.nodes) == 0 && len(a.endpoints) == 0 && !envTalos {
		if writeKubeconfig != "" {
			return nil, nil, fmt.Errorf("--write-kubeconfig: only with the Talos API (--talosconfig), which hands out the kubeconfig")
		}
		return kube, nil, nil
	}
	talos, err = talosapi.New(talosapi.Options{Talosconfig: a.talosconfig, Context: a.talosContext, Nodes: a.nodes, Endpoints: a.endpoints})
	if err != nil {
		return nil, nil, err
	}
	envKube := os.Getenv("KUBECONFIG") != ""
	if a.kubeconfig != "" || envKube {
		if writeKubeconfig != "" {
			return nil, nil, fmt.Errorf("--write-kubeconfig: the kubeconfig comes from --kubeconfig or $KUBECONFIG, not from the Talos API")
		}
		return kube, talos, nil
	}
	if a.kubeContext != "" {
		return nil, nil, fmt.Errorf("--context: selects a kubeconfig context, but the kubeconfig comes from the Talos API (use --talos-context for the talosconfig's)")
	}
	return &talosapi.Connector{Client: talos, WriteKubeconfig: writeKubeconfig}, talos, nil
}
