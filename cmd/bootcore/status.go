package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootcore-dev/bootcore/internal/status"
)

// Exit codes of bootcore status.
const (
	statusNotReady    = 1
	statusInvalid     = 2
	statusUnreachable = 3
)

func newStatusCmd() *cobra.Command {
	var (
		cluster, repo, output string
		watch                 bool
		interval              time.Duration
		access                clusterAccess
	)
	cmd := &cobra.Command{
		Use:   "status --cluster NAME",
		Short: "Check that a cluster is booted and handed over to Flux: the story's validation steps in one table",
		Long: `status evaluates, read-only, every validation step of a booted and handed-over cluster:

  control-plane nodes (node-role.kubernetes.io/control-plane) Ready
  the Cilium DaemonSet and operator Deployment of the CNI HelmRelease rolled out
  agent.handover's workloads Available (CoreDNS with the replica count of cluster-settings,
  expected vs actual; cert-manager, cert-manager-webhook, external-secrets, flux-operator)
  the bootstrap Secrets of agent.secrets present with every key
  every External Secrets (Cluster)SecretStore Ready, naming a Secret it refers to that is missing
  FluxInstance flux, GitRepository flux-system (revision), every Kustomization and
  HelmRelease in every namespace Ready (revision, condition message)
  the hand-over marker ConfigMap flux-system/bootcore-handover
  Talos's manifest inventory holding no object Flux manages

Exit codes: 0 every check Ready; 1 some check not Ready; 2 invalid spec or flags;
3 the cluster's API server did not answer.`,
		Example: `  bootcore status --cluster infra
  bootcore status --cluster apps --kubeconfig ./apps.kubeconfig -o json
  bootcore status --cluster infra --watch --timeout 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cluster == "" {
				return &exitError{code: statusInvalid, msg: "bootcore status: --cluster is required"}
			}
			if output != "table" && output != "json" {
				return &exitError{code: statusInvalid, msg: fmt.Sprintf("bootcore status: -o %q: want table or json", output)}
			}
			if interval <= 0 {
				return &exitError{code: statusInvalid, msg: fmt.Sprintf("bootcore status: --interval %s: must be positive", interval)}
			}
			conn, err := access.connector()
			if err != nil {
				return &exitError{code: statusInvalid, msg: "bootcore status: " + err.Error()}
			}
			cfg, err := conn.Connect(cmd.Context())
			if err != nil {
				return &exitError{code: statusInvalid, msg: "bootcore status: " + err.Error()}
			}
			checker, err := status.NewChecker(repo, cluster, cfg)
			if err != nil {
				return &exitError{code: statusInvalid, msg: "bootcore status: " + err.Error()}
			}
			silenceKlog()
			w := cmd.OutOrStdout()
			show := func(r *status.Report) {
				if output == "json" {
					_ = r.PrintJSON(w)
				} else {
					r.PrintTable(w)
				}
			}
			var (
				r        *status.Report
				reachErr error
			)
			if watch {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				first := true
				r, err = checker.Watch(ctx, interval, func(rep *status.Report, e error) {
					reachErr = e
					if !first && output == "table" {
						fmt.Fprintf(w, "\n--- %s\n", time.Now().UTC().Format(time.RFC3339))
					}
					first = false
					if rep != nil {
						show(rep)
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "bootcore status: %v\n", e)
					}
				})
				if err != nil && ctx.Err() == nil {
					return &exitError{code: statusInvalid, msg: "bootcore status: " + err.Error()}
				}
			} else {
				r, reachErr = checker.Run(cmd.Context())
				if reachErr != nil && !status.IsUnreachable(reachErr) {
					return &exitError{code: statusInvalid, msg: "bootcore status: " + reachErr.Error()}
				}
				if r != nil {
					show(r)
				}
			}
			switch {
			case r == nil && reachErr != nil:
				return &exitError{code: statusUnreachable, msg: "bootcore status: " + reachErr.Error()}
			case r == nil || !r.Ready:
				return &exitError{code: statusNotReady}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster of bootstrap/bootcore.yaml to check (required)")
	f.StringVar(&repo, "repo", ".", "repository root holding bootstrap/bootcore.yaml and the Flux tree")
	access.register(f)
	f.StringVarP(&output, "output", "o", "table", "output format: table, or json (one document per evaluation)")
	f.BoolVarP(&watch, "watch", "w", false, "re-evaluate every --interval, print when something changed, until all Ready (or --timeout)")
	f.DurationVar(&interval, "interval", 2*time.Second, "how often --watch re-evaluates")
	return cmd
}
