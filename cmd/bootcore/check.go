package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bootcore-dev/bootcore/internal/check"
	"github.com/bootcore-dev/bootcore/internal/spec"
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

-o github prints each finding as a GitHub Actions workflow command (an error or warning
annotation on the file and line of the pull request), then the summary line.

Exit codes: 0 no errors; 1 errors found; 2 check could not run (no bootstrap/bootcore.yaml
under --repo, bad flags).`,
		Example: `  bootcore check
  bootcore check --repo ./clusters -o json
  bootcore check -o github   # in GitHub Actions`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "text", "json", "github":
			default:
				return &exitError{code: exitInvalid, msg: fmt.Sprintf("-o %q: want text, json or github", output)}
			}
			// Nothing to check is not a repository with one error: the command could not run.
			if _, err := os.Stat(filepath.Join(repo, spec.DefaultPath)); errors.Is(err, fs.ErrNotExist) {
				return &exitError{code: exitInvalid, msg: fmt.Sprintf("--repo %s: no %s (not a bootcore repository, or the wrong directory)", repo, spec.DefaultPath)}
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
				r.PrintGitHub(cmd.OutOrStdout(), repo)
			default:
				r.PrintText(cmd.OutOrStdout())
			}
			if r.Errors() > 0 {
				return &exitError{code: exitFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", ".", "directory holding bootstrap/bootcore.yaml and kubernetes/")
	f.StringVarP(&output, "output", "o", "text", "output format: text, json, or github (GitHub Actions annotations)")
	f.StringVar(&cacheDir, "cache-dir", "", "chart cache directory (default $BOOTCORE_CACHE_DIR or the user cache dir)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json", "github"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// printGitHub writes the findings as GitHub Actions workflow commands: errors as error
// annotations, skipped checks as warnings, on the file (relative to the workspace, which is
// where --repo is given from) and line.

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
