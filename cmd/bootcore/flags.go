package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/spec"
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

func (a *clusterAccess) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&a.kubeContext, "context", "", "kubeconfig context (default the current context)")
	f.StringVar(&a.talosconfig, "talosconfig", "", "talosconfig file: reach the cluster through the Talos API instead of a kubeconfig (default $TALOSCONFIG, then ~/.talos/config, when --talos-context, --nodes or --endpoints asks for the Talos API)")
	f.StringVar(&a.talosContext, "talos-context", "", "talosconfig context (default the current context)")
	f.StringSliceVarP(&a.nodes, "nodes", "n", nil, "control-plane node addresses for the Talos API (default the talosconfig context's nodes)")
	f.StringSliceVarP(&a.endpoints, "endpoints", "e", nil, "Talos API endpoints (default the talosconfig context's endpoints)")
	_ = cmd.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return a.kubeContexts(), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("talos-context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return a.talosContexts(), cobra.ShellCompDirectiveNoFileComp
	})
}

// kubeContexts are the context names of the kubeconfig the command would load.
func (a *clusterAccess) kubeContexts() []string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if a.kubeconfig != "" {
		rules.ExplicitPath = a.kubeconfig
	}
	cfg, err := rules.Load()
	if err != nil {
		return nil
	}
	return slices.Sorted(maps.Keys(cfg.Contexts))
}

// talosContexts are the context names of the talosconfig the command would read (read only:
// machinery's clientconfig.Open would create a missing file).
func (a *clusterAccess) talosContexts() []string {
	path := a.talosconfig
	if path == "" {
		var err error
		if path, err = talosapi.DefaultPath(); err != nil {
			return nil
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	cfg, err := clientconfig.FromBytes(data)
	if err != nil {
		return nil
	}
	return slices.Sorted(maps.Keys(cfg.Contexts))
}

// completeClusters completes --cluster with the cluster names of the spec under --repo.
func completeClusters(repo *string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		s, err := spec.Load(filepath.Join(*repo, spec.DefaultPath))
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, c := range s.Clusters {
			names = append(names, c.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// connector picks the way in. The Talos API is used when --talosconfig, --talos-context,
// --nodes or --endpoints is given (never because $TALOSCONFIG is set: an exported variable
// left over from another cluster must not change the path silently); then the kubeconfig
// comes from the Talos API (as talosctl kubeconfig, kept in memory) unless --kubeconfig or
// $KUBECONFIG names one.
func (a *clusterAccess) connector() (agent.Connector, error) {
	conn, _, err := a.open("")
	return conn, err
}

// open is connector that also returns the Talos API client (nil without the Talos API) and
// writes the fetched kubeconfig to writeKubeconfig (--write-kubeconfig) when set.
func (a *clusterAccess) open(writeKubeconfig string) (conn agent.Connector, talos *talosapi.Client, err error) {
	kube := agent.Kubeconfig{Path: a.kubeconfig, Context: a.kubeContext}
	if a.talosconfig == "" && a.talosContext == "" && len(a.nodes) == 0 && len(a.endpoints) == 0 {
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
