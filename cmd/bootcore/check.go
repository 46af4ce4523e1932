package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bootcore-dev/bootcore/internal/check"
)

func newCheckCmd() *cobra.Command {
	var repo, output, cacheDir string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a GitOps repository the way CI should: tree, dependencies, substitution, sources, generated patches",
		Long: `check verifies, offline where possible: every Flux Kustomization's path builds with kustomize;
dependsOn names existing objects and has no cycle; every ${VAR} is defined; every HelmRelease's
chart source and valuesFrom resolve; the bootstrap spec's references resolve; gen --check (reported
as skipped, never passed, when a chart registry is unreachable); and the committed Talos patches
validate with Talos machinery, keep phase 0 CRD-only, hold no Secret or private key, and fit the budget.

Exit codes: 0 no errors; 1 errors found; 2 check could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" && output != "github" {
				return fmt.Errorf("-o: want text, json or github, got %q", output)
			}
			r, err := check.Run(cmd.Context(), repo, cacheDir)
			if err != nil {
				return err
			}
			if global.verbose {
				printCheckSummary(cmd, r)
			}
			switch output {
			case "json":
				if err := r.PrintJSON(cmd.OutOrStdout()); err != nil {
					return err
				}
			case "github":
				r.PrintGitHub(cmd.OutOrStdout())
			default:
				r.PrintText(cmd.OutOrStdout())
			}
			if r.Errors() > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", ".", "directory holding bootstrap/bootcore.yaml and kubernetes/")
	f.StringVarP(&output, "output", "o", "text", "output format: text, json, or github (GitHub Actions annotations)")
	f.StringVar(&cacheDir, "cache-dir", "", "chart cache directory (default $BOOTCORE_CACHE_DIR or the user cache dir)")
	return cmd
}

// printCheckSummary lists every check that ran with its outcome (-v), so a green run shows what
// it covered and not only what failed.
func printCheckSummary(cmd *cobra.Command, r *check.Report) {
	for _, name := range r.Checks {
		errs, warnings, skipped := 0, 0, 0
		for _, f := range r.Findings {
			if f.Check != name {
				continue
			}
			switch f.Severity {
			case check.Error:
				errs++
			case check.Warning:
				warnings++
			default:
				skipped++
			}
		}
		outcome := "ok"
		switch {
		case errs > 0:
			outcome = fmt.Sprintf("%d errors", errs)
		case warnings > 0:
			outcome = fmt.Sprintf("%d warnings", warnings)
		case skipped > 0:
			outcome = fmt.Sprintf("ok, %d skipped", skipped)
		}
		verbosef(cmd, "check %-12s %s", name, outcome)
	}
}
