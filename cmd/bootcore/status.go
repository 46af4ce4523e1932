package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/bootcore-dev/bootcore/internal/status"
	"github.com/bootcore-dev/bootcore/internal/talosapi"
)

// talosUnreachable: the Talos API did not answer (no node reachable, or it timed out), as
// opposed to refusing the request (a certificate without os:admin, a bad talosconfig).
func talosUnreachable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch grpcstatus.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

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

Exit codes: 0 every check Ready; 1 some check not Ready; 2 invalid spec, flags or
kubeconfig/talosconfig; 3 the cluster did not answer (its API server, or the Talos API that
hands out the kubeconfig). With -o json an unreachable cluster still prints one document
("reachable": false, "error").`,
		Example: `  bootcore status --cluster infra
  bootcore status --cluster apps --kubeconfig ./apps.kubeconfig -o json
  bootcore status --cluster infra --watch --timeout 10m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cluster == "" {
				return &exitError{code: exitInvalid, msg: "--cluster is required"}
			}
			switch output {
			case "text", "json":
			case "table": // the name before -o was text everywhere
				output = "text"
			default:
				return &exitError{code: exitInvalid, msg: fmt.Sprintf("-o %q: want text or json", output)}
			}
			if interval <= 0 {
				return &exitError{code: exitInvalid, msg: fmt.Sprintf("--interval %s: must be positive", interval)}
			}
			conn, err := access.connector()
			if err != nil {
				return &exitError{code: exitInvalid, msg: err.Error()}
			}
			w := cmd.OutOrStdout()
			// unreachable reports a cluster that did not answer: exit 3, and with -o json still
			// one document on stdout, so a pipeline reading it sees why.
			printUnreachable := func(server string, err error) {
				if output == "json" {
					_ = json.NewEncoder(w).Encode(map[string]any{"cluster": cluster, "server": server, "ready": false, "reachable": false, "error": err.Error(), "checks": []any{}})
				}
			}
			unreachable := func(server string, err error) error {
				printUnreachable(server, err)
				return &exitError{code: exitUnreachable, msg: err.Error()}
			}
			cfg, err := conn.Connect(cmd.Context())
			if err != nil {
				if _, viaTalos := conn.(*talosapi.Connector); viaTalos && talosUnreachable(cmd.Context(), err) {
					return unreachable("", err)
				}
				return &exitError{code: exitInvalid, msg: err.Error()}
			}
			checker, err := status.NewChecker(cmd.Context(), repo, cluster, cfg)
			if err != nil {
				return &exitError{code: exitInvalid, msg: err.Error()}
			}
			silenceKlog()
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
					if !first && output == "text" {
						fmt.Fprintf(w, "\n--- %s\n", time.Now().UTC().Format(time.RFC3339))
					}
					first = false
					switch {
					case rep != nil:
						show(rep)
					case output == "json":
						printUnreachable(cfg.Host, e)
					default:
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.CommandPath(), e)
					}
				})
				if err != nil && ctx.Err() == nil {
					return &exitError{code: exitInvalid, msg: err.Error()}
				}
				if r == nil && reachErr != nil {
					// Each change was reported as it happened.
					return &exitError{code: exitUnreachable}
				}
			} else {
				r, reachErr = checker.Run(cmd.Context())
				if reachErr != nil && !status.IsUnreachable(reachErr) {
					return &exitError{code: exitInvalid, msg: reachErr.Error()}
				}
				if r != nil {
					show(r)
				}
			}
			switch {
			case r == nil && reachErr != nil:
				var u *status.UnreachableError
				server := cfg.Host
				if errors.As(reachErr, &u) {
					server = u.Server
				}
				return unreachable(server, reachErr)
			case r == nil || !r.Ready:
				return &exitError{code: exitFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster of bootstrap/bootcore.yaml to check (required)")
	f.StringVar(&repo, "repo", ".", "repository root holding bootstrap/bootcore.yaml and the Flux tree")
	access.register(cmd)
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(&repo))
	f.StringVarP(&output, "output", "o", "text", "output format: text (a table), or json (one document per evaluation); table is an old name of text")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	f.BoolVarP(&watch, "watch", "w", false, "re-evaluate every --interval, print when something changed, until all Ready (or --timeout)")
	f.DurationVar(&interval, "interval", 2*time.Second, "how often --watch re-evaluates")
	return cmd
}
