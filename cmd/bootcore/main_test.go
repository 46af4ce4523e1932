package main

import (
	"bytes"
	"encoding/json"
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
	c, err := cmd.ExecuteC()
	global.stop()
	code, msg := exitStatus(c, err)
	if msg != "" {
		errOut.WriteString(msg + "\n")
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

// -o json: one document on stdout with each cluster's report and the files written, and with
// --check whether the committed files are stale; nothing else on stdout.
func TestGenJSON(t *testing.T) {
	dir := t.TempDir()
	cache := t.TempDir()
	decode := func(out string) genResult {
		t.Helper()
		var r genResult
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil || dec.More() {
			t.Fatalf("not one JSON document (%v):\n%s", err, out)
		}
		return r
	}
	out, _, code := execute(t, "gen", "--repo", lab, "--out", dir, "--cache-dir", cache, "-o", "json")
	if code != 0 {
		t.Fatalf("gen -o json exit %d", code)
	}
	r := decode(out)
	if len(r.Clusters) != 2 || r.Clusters[0].Name != "infra" || len(r.Written) != 8 || r.Stale {
		t.Fatalf("gen -o json: %d clusters, written %v, stale %v", len(r.Clusters), r.Written, r.Stale)
	}
	if c := r.Clusters[0]; c.Configs.ControlPlaneBytes == 0 || len(c.Manifests) != 3 || len(c.BootOnlyValues) == 0 {
		t.Errorf("infra report: %+v", c)
	}
	if !strings.Contains(out, `"controlPlaneBytes":`) || !strings.Contains(out, `"bootOnlyValues":`) {
		t.Errorf("JSON keys are not lower camel case:\n%s", out)
	}
	out, _, code = execute(t, "gen", "--repo", lab, "--out", dir, "--cache-dir", cache, "--check", "-o", "json")
	if r := decode(out); code != 0 || r.Stale || len(r.Written) != 0 {
		t.Errorf("--check -o json on current output: exit %d, %+v", code, r)
	}
	if err := os.WriteFile(filepath.Join(dir, "infra", "worker.yaml"), []byte("# edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = execute(t, "gen", "--repo", lab, "--out", dir, "--cache-dir", cache, "--check", "-o", "json")
	if r := decode(out); code != 1 || !r.Stale {
		t.Errorf("--check -o json on stale output: exit %d, stale %v", code, r.Stale)
	}
	if _, _, code := execute(t, "gen", "--repo", lab, "-o", "yaml"); code != 2 {
		t.Errorf("gen -o yaml: exit %d, want 2", code)
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

// The global flags mean the same on every command: -v adds detail on stderr, --timeout bounds
// the whole command and says so when it gives up.
func TestGlobalFlags(t *testing.T) {
	cache := t.TempDir()
	out, errOut, code := execute(t, "gen", "--repo", lab, "--check", "--cache-dir", cache, "-v")
	if code != 0 {
		t.Fatalf("gen --check -v: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"cluster infra: rendered in", "cluster apps: rendered in", "HelmRelease kube-system/cilium", "sha256:"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("gen -v stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(out, "rendered in") {
		t.Error("gen -v printed detail on stdout; it belongs on stderr")
	}
	_, quiet, _ := execute(t, "gen", "--repo", lab, "--check", "--cache-dir", cache)
	if strings.Contains(quiet, "rendered in") {
		t.Errorf("gen without -v printed detail:\n%s", quiet)
	}

	_, errOut, code = execute(t, "check", "--repo", lab, "--cache-dir", cache, "-v")
	if code != 0 || !strings.Contains(errOut, "check dependsOn") || !strings.Contains(errOut, "check gen") {
		t.Errorf("check -v: exit %d, stderr:\n%s", code, errOut)
	}

	dir := t.TempDir()
	_, errOut, code = execute(t, "gen", "--repo", lab, "--out", dir, "--cache-dir", t.TempDir(), "--timeout", "1ms")
	if code != 2 || !strings.Contains(errOut, "gave up after --timeout 1ms") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("gen --timeout 1ms: exit %d, stderr %q; want exit 2 and one line naming --timeout", code, errOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("gen that timed out wrote %d entries", len(entries))
	}
	if _, errOut, code = execute(t, "gen", "--repo", lab, "--timeout", "-1s"); code != 2 || !strings.Contains(errOut, "--timeout") {
		t.Errorf("negative --timeout: exit %d, %q", code, errOut)
	}
}
