package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// How the agent reaches the cluster is settled before anything runs: misused Talos API flags
// exit 2 with one message naming the flag or file, and a missing talosconfig is not created.
func TestAgentClusterAccessFlags(t *testing.T) {
	t.Setenv("TALOSCONFIG", "")
	t.Setenv("KUBECONFIG", "")
	dir := t.TempDir()
	talosconfig := filepath.Join(dir, "talosconfig")
	cfg := "context: infra\ncontexts:\n  infra:\n    endpoints: [127.0.0.1:1]\n    nodes: [127.0.0.1:1]\n"
	if err := os.WriteFile(talosconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing-talosconfig")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--write-kubeconfig", filepath.Join(dir, "kc")}, "--write-kubeconfig: only with the Talos API"},
		{[]string{"--talosconfig", missing}, missing},
		{[]string{"--talosconfig", talosconfig, "--talos-context", "apps"}, `no context "apps" (contexts: infra)`},
		{[]string{"--talosconfig", talosconfig, "--context", "admin@infra"}, "--context: selects a kubeconfig context"},
		{[]string{"--talosconfig", talosconfig, "--kubeconfig", filepath.Join(dir, "kc"), "--write-kubeconfig", filepath.Join(dir, "out")}, "--write-kubeconfig: the kubeconfig comes from --kubeconfig"},
	} {
		_, stderr, code := execute(t, append([]string{"agent", "--cluster", "infra", "--repo", dir}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
		// Only the talosconfig: nothing created, the missing talosconfig included.
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%v: files written: %v", tc.args, entries)
		}
	}

}
