package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const lab = "../../integration/testdata/lab"

// execute runs the CLI in-process and returns stdout, stderr and the exit code main would use.
func execute(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	code := 0
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case err != nil:
		code = 2
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestGenWritesAndChecks(t *testing.T) {
	dir := t.TempDir()
	out, _, code := execute(t, "gen", "--repo", lab, "--out", dir, "--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("gen exit %d", code)
	}
	for _, c := range []string{"infra", "apps"} {
		for _, f := range []string{"controlplane.yaml", "worker.yaml", "post-handover.yaml"} {
			if _, err := os.Stat(filepath.Join(dir, c, f)); err != nil {
				t.Errorf("missing %s/%s: %v", c, f, err)
			}
			if !strings.Contains(out, filepath.Join(dir, c, f)) {
				t.Errorf("output does not list %s/%s", c, f)
			}
		}
	}
	if _, _, code := execute(t, "gen", "--repo", lab, "--out", dir, "--check", "--cache-dir", t.TempDir()); code != 0 {
		t.Errorf("--check right after gen exits %d", code)
	}
	if err := os.WriteFile(filepath.Join(dir, "infra", "worker.yaml"), []byte("# edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	diff, _, code := execute(t, "gen", "--repo", lab, "--out", dir, "--check", "--cache-dir", t.TempDir())
	if code != 1 || !strings.Contains(diff, "-# edited by hand") {
		t.Errorf("--check on stale output: exit %d, diff:\n%s", code, diff)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "infra", "worker.yaml")); string(data) != "# edited by hand\n" {
		t.Error("--check wrote a file")
	}
}

// Bad input: exit 2, one message, and no file written.
func TestGenBadInputWritesNothing(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := execute(t, "gen", "--repo", lab, "--cluster", "prod", "--out", dir)
	if code != 2 || !strings.Contains(stderr, `unknown cluster "prod"`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stderr, "Usage:") {
		t.Error("errors must not print usage")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("files written on error: %v", entries)
	}
	_, stderr, code = execute(t, "gen", "--repo", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "bootstrap/bootcore.yaml") {
		t.Errorf("missing spec: exit %d, stderr %q", code, stderr)
	}
}

func TestVersionNamesLibraries(t *testing.T) {
	out, _, code := execute(t, "version")
	if code != 0 || !strings.HasPrefix(out, "bootcore ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	for _, mod := range []string{"helm.sh/helm/v3 v3.", "github.com/siderolabs/talos/pkg/machinery v1.", "github.com/fluxcd/pkg/kustomize v1."} {
		if !strings.Contains(out, mod) {
			t.Errorf("version does not name %s:\n%s", mod, out)
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, code := execute(t, "completion", shell)
		if code != 0 || !strings.Contains(out, "bootcore") {
			t.Errorf("completion %s: exit %d", shell, code)
		}
	}
}
