package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/bootcore-dev/bootcore/internal/gen"
)

// genResult is gen's -o json document.
type genResult struct {
	Clusters []gen.ClusterReport `json:"clusters"`
	// Written lists the files this run changed (empty with --check or when nothing changed).
	Written []string `json:"written"`
	// Stale is true when --check found the committed files out of date.
	Stale bool `json:"stale"`
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newGenCmd() *cobra.Command {
	var o gen.Options
	var check bool
	var output string
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
			if output != "text" && output != "json" {
				return &exitError{code: exitInvalid, msg: fmt.Sprintf("-o %q: want text or json", output)}
			}
			o.Log = func(format string, args ...any) { verbosef(cmd, format, args...) }
			batchGC()
			out, err := gen.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			repo := o.Repo
			result := genResult{Clusters: out.Clusters, Written: []string{}}
			if check {
				diff, err := out.Diff(repo)
				if err != nil {
					return err
				}
				result.Stale = diff != ""
				if output == "json" {
					if err := printJSON(cmd, result); err != nil {
						return err
					}
				} else if result.Stale {
					fmt.Fprint(cmd.OutOrStdout(), diff)
				}
				if result.Stale {
					return &exitError{code: exitFindings, msg: "--check: generated files are stale; run bootcore gen and commit the result"}
				}
				if output == "text" {
					fmt.Fprintln(cmd.ErrOrStderr(), "generated files are up to date")
				}
				return nil
			}
			if output == "text" {
				out.Print(cmd.ErrOrStderr())
			}
			changed, err := out.Write(repo)
			if err != nil {
				return err
			}
			if output == "json" {
				result.Written = append(result.Written, changed...)
				return printJSON(cmd, result)
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
	f.StringVarP(&output, "output", "o", "text", "output format: text (report on stderr), or json (one document on stdout: the per-cluster report, files written, stale)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	f.StringVar(&o.CacheDir, "cache-dir", "", "chart cache directory (default $BOOTCORE_CACHE_DIR or the user cache dir)")
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(&o.Repo))
	return cmd
}

// batchGCPercent is the GC target of gen's run unless the user sets GOGC. gen is one short
// batch of renders and encodings that allocates ~10 times its live heap (~400 MB for the lab's
// two clusters): at the default of 100 the collector ran ~10 % of its CPU time; at 400 the run
// takes ~0.2 s less CPU and peaks ~100 MB higher (240 → 336 MB on the lab), memory a
// workstation or CI runner has for the seconds gen runs.
const batchGCPercent = 400

func batchGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(batchGCPercent)
	}
}
