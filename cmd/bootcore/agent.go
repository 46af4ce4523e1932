package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/runlock"
)

func newAgentCmd() *cobra.Command {
	var (
		o      agent.Options
		access clusterAccess
		output string
		// writeKubeconfig receives the kubeconfig fetched from the Talos API.
		writeKubeconfig string
		timeouts        = map[string]*time.Duration{}
	)
	cmd := &cobra.Command{
		Use:   "agent --cluster NAME",
		Short: "Hand a freshly booted cluster over to Flux (run once after talosctl bootstrap)",
		Long: `agent runs once after talosctl bootstrap and leaves the cluster Ready and owned by Flux, or
stops with a precise reason and a support bundle. Its phases, in order:

  connect             reach the API server; refuse it unless it is the cluster's endpoint in
                      bootstrap/bootcore.yaml and (after a hand-over) the recorded cluster
  wait-control-plane  every node labelled node-role.kubernetes.io/control-plane Ready
  wait-cni            the CNI workloads Talos installed at boot rolled out
  prerequisites       namespaces and the bootstrap Secrets (agent.secrets: from environment
                      variables or files, SOPS files decrypted with age), server-side applied
  install-flux        helm (default): the flux-operator and flux-instance charts as the Helm
                      releases their HelmReleases will adopt; manifests: Flux's install manifests
                      from a local directory plus the GitRepository/Kustomization sync
  handover            GitRepository flux-system at the branch head, every Kustomization and
                      HelmRelease of the cluster Ready, the core workloads rolled out
  release-talos       remove the handed-over objects from Talos's manifest inventory, then drop
                      bootcore's inline manifests from each control-plane node's machine config
                      through the Talos API (post-handover patch, no reboot, one node at a
                      time), or, without a talosconfig, print the talosctl command that does it
  record              write ConfigMap flux-system/bootcore-handover

Each phase first checks, without writing, whether its outcome is in place, so a run killed
anywhere is finished by the next one, and a run on a handed-over cluster writes nothing.
A Lease (kube-system/bootcore-agent) keeps two agents from running at once.
Secret values are never printed; the support bundle holds Secret names and keys only.

Reaching the cluster: --kubeconfig (or $KUBECONFIG, ~/.kube/config); or the Talos API, selected
by --talosconfig, --talos-context, --nodes or --endpoints (the talosconfig defaults to
$TALOSCONFIG, then ~/.talos/config; an exported $TALOSCONFIG alone does not select it), which
fetches the admin kubeconfig as talosctl kubeconfig does and keeps it in memory
(--write-kubeconfig also saves it, mode 0600). With both, the kubeconfig is used for Kubernetes
and the Talos API for the machine configs. The first line says which way it connects.

The API server must be the cluster's endpoint in the spec; reaching it any other way (a node
address, a tunnel) needs --force, which also re-runs every phase.

Exit codes: 0 handed over (or already); 1 a phase failed or timed out (support bundle
written); 2 invalid spec, flags or inputs, a missing or empty kubeconfig (nothing written);
3 not the named cluster (nothing written); 4 another agent held the lock for --lock-wait
(nothing written).`,
		Example: `  bootcore agent --cluster infra
  bootcore agent --cluster infra --kubeconfig ./infra.kubeconfig -o json
  bootcore agent --cluster infra --talosconfig ./talosconfig --nodes 10.0.0.2,10.0.0.3,10.0.0.4
  bootcore agent --cluster apps --flux-install=manifests --manifests ./flux-manifests
  bootcore agent --cluster infra --dry-run`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Cluster == "" {
				return &exitError{code: agent.ExitInvalid, msg: "--cluster is required"}
			}
			switch output {
			case "text":
			case "json":
				o.JSON = true
			default:
				return &exitError{code: agent.ExitInvalid, msg: fmt.Sprintf("-o %q: want text or json", output)}
			}
			o.Timeouts = map[string]time.Duration{}
			for name, d := range timeouts {
				o.Timeouts[name] = *d
			}
			conn, talos, err := access.open(writeKubeconfig)
			if err != nil {
				return &exitError{code: agent.ExitInvalid, msg: err.Error()}
			}
			// A kubeconfig that does not load is bad input, reported before anything runs.
			if k, ok := conn.(agent.Kubeconfig); ok {
				if _, err := k.Connect(cmd.Context()); err != nil {
					return &exitError{code: exitInvalid, msg: err.Error()}
				}
			}
			o.Connector = conn
			if talos != nil {
				defer talos.Close()
				o.Talos = talos
			}
			o.Version = version
			o.Out = cmd.OutOrStdout()
			silenceKlog()
			// Ctrl-C or SIGTERM: stop the current phase, release the lock, report, exit 1.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res := agent.Run(ctx, o)
			if res.ExitCode != agent.ExitOK {
				// The result event already said why.
				return &exitError{code: res.ExitCode}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Cluster, "cluster", "", "cluster of bootstrap/bootcore.yaml to hand over (required)")
	f.StringVar(&o.Repo, "repo", ".", "repository root holding bootstrap/bootcore.yaml and the Flux tree")
	access.register(cmd)
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(&o.Repo))
	f.StringVar(&writeKubeconfig, "write-kubeconfig", "", "also write the kubeconfig fetched from the Talos API to this file (mode 0600); by default it stays in memory")
	f.StringVar(&o.FluxInstall, "flux-install", agent.InstallHelm, "how to install Flux: helm (flux-operator + flux-instance charts) or manifests (air-gapped)")
	f.StringVar(&o.Manifests, "manifests", "", "directory of Flux install manifests (kustomization) for --flux-install=manifests (default agent.flux.manifests)")
	f.BoolVar(&o.Force, "force", false, "run every phase even if done, and go on (with a warning) when the wrong-cluster guard refuses")
	f.BoolVar(&o.DryRun, "dry-run", false, "server-side dry run: print what would change, write nothing, wait for nothing")
	f.StringVarP(&output, "output", "o", "text", "output format: text, or json (one event per line)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range agent.PhaseNames {
		d := new(time.Duration)
		timeouts[name] = d
		f.DurationVar(d, name+"-timeout", agent.DefaultTimeouts[name], "timeout of phase "+name)
	}
	f.DurationVar(&o.LockWait, "lock-wait", 5*time.Minute, "how long to wait while another agent holds the lock")
	f.DurationVar(&o.LockTTL, "lock-ttl", runlock.DefaultLeaseDuration, "the agent lock's lease, whole seconds (at least 3s): a re-run waits this long for the lock of a killed agent; an agent that cannot renew its lock stops writing before it runs out")
	f.DurationVar(&o.PollInterval, "poll-interval", 500*time.Millisecond, "how often the cluster DNS wait looks again (waits for objects follow their changes through watches)")
	f.StringVar(&o.BundleDir, "bundle-dir", ".", "directory for the support bundle written when a phase fails")
	f.StringVar(&o.CacheDir, "cache-dir", "", "chart cache directory (default $BOOTCORE_CACHE_DIR or the user cache dir)")
	return cmd
}

// silenceKlog keeps client-go's own log lines (retries, throttling) out of the agent's output,
// which is meant to be read line by line (and parsed, with -o json).
func silenceKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}
