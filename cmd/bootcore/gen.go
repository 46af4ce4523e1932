package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bootcore-dev/bootcore/internal/gen"
)

func newGenCmd() *cobra.Command {
	var o gen.Options
	var check bool
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Render phase-0 CRDs and the phase-1 CNI into Talos machine-config patches",
		Long: `gen reads bootstrap/bootcore.yaml and the Flux tree under kubernetes/, renders the CRD
sources (phase 0) and the CNI HelmRelease (phase 1) with the Helm SDK, and writes per cluster
controlplane.yaml, worker.yaml and post-handover.yaml patches for
talosctl gen config|apply-config --config-patch @<file>.

Exit codes: 0 ok; 1 --check found stale output (a diff is printed); 2 error (nothing written).`,
		Example: `  bootcore gen
  bootcore gen --cluster infra --out /tmp/patches
  bootcore gen --check`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log = func(format string, args ...any) { verbosef(cmd, format, args...) }
			out, err := gen.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			repo := o.Repo
			if check {
				diff, err := out.Diff(repo)
				if err != nil {
					return err
				}
				if diff != "" {
					fmt.Fprint(cmd.OutOrStdout(), diff)
					return &exitError{code: exitFindings, msg: "--check: generated files are stale; run bootcore gen and commit the result"}
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "generated files are up to date")
				return nil
			}
			out.Print(cmd.ErrOrStderr())
			changed, err := out.Write(repo)
			if err != nil {
				return err
			}
			for _, p := range changed {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", p)
			}
			if len(changed) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no changes")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Repo, "repo", ".", "directory holding bootstrap/bootcore.yaml and kubernetes/")
	f.StringSliceVar(&o.Clusters, "cluster", nil, "cluster to render (repeatable; default all clusters of the spec)")
	f.StringVar(&o.Out, "out", "", "output directory (default: the spec's output, relative to --repo)")
	f.BoolVar(&check, "check", false, "write nothing; exit 1 with a diff when the generated files are stale")
	f.StringVar(&o.CacheDir, "cache-dir", "", "chart cache directory (default $BOOTCORE_CACHE_DIR or the user cache dir)")
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(&o.Repo))
	return cmd
}
