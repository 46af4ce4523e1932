package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// writeKubeconfig writes a kubeconfig with two contexts whose API server is server.
func writeKubeconfig(t *testing.T, dir, server string) string {
	t.Helper()
	p := filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: infra
  cluster: {server: "https://%s", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: not-a-secret}
contexts:
- name: admin@infra
  context: {cluster: infra, user: admin}
- name: admin@apps
  context: {cluster: infra, user: admin}
current-context: admin@infra
`, server)
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeTalosconfig(t *testing.T, dir, endpoint string) string {
	t.Helper()
	p := filepath.Join(dir, "talosconfig")
	cfg := fmt.Sprintf("context: infra\ncontexts:\n  infra:\n    endpoints: [%s]\n    nodes: [%s]\n  apps:\n    endpoints: [%s]\n", endpoint, endpoint, endpoint)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oneError asserts the one message of a failed run: one line on stderr, prefixed with the
// command, naming want.
func oneError(t *testing.T, what, stderr, command, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, command+": ") || !strings.Contains(stderr, want) {
		t.Errorf("%s: stderr %q; want one line %q… naming %q", what, stderr, command+": ", want)
	}
}

// README "Exit codes", rows gen 2, check 2, agent 2, status 2, version 2: bad input exits 2
// with one message, prefixed with the command, and nothing on stdout.
func TestExitCodeBadInput(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("TALOSCONFIG", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.kube/config, no ~/.talos/config
	empty := t.TempDir()
	missingKC := filepath.Join(empty, "missing-kubeconfig")
	for _, tc := range []struct {
		args    []string
		command string
		want    string
	}{
		{[]string{"gen", "extra"}, "bootcore gen", `unexpected argument "extra"`},
		{[]string{"gen", "--repo", empty}, "bootcore gen", "bootstrap/bootcore.yaml"},
		{[]string{"gen", "--bogus"}, "bootcore gen", "unknown flag: --bogus"},
		{[]string{"check", "--repo", empty}, "bootcore check", "no bootstrap/bootcore.yaml"},
		{[]string{"check", "--repo", filepath.Join(empty, "nonexistent")}, "bootcore check", "no bootstrap/bootcore.yaml"},
		{[]string{"check", "--repo", lab, "-o", "yaml"}, "bootcore check", "want text, json or github"},
		{[]string{"check", "extra"}, "bootcore check", `unexpected argument "extra"`},
		{[]string{"agent", "--repo", lab}, "bootcore agent", "--cluster is required"},
		{[]string{"agent", "--cluster", "infra", "--repo", lab, "-o", "table"}, "bootcore agent", "want text or json"},
		{[]string{"agent", "--cluster", "infra", "--repo", lab, "--kubeconfig", missingKC}, "bootcore agent", missingKC},
		{[]string{"agent", "--cluster", "infra", "--repo", lab}, "bootcore agent", "no kubeconfig"},
		{[]string{"status", "--repo", lab}, "bootcore status", "--cluster is required"},
		{[]string{"status", "--cluster", "infra", "--repo", lab, "-o", "yaml"}, "bootcore status", "want text or json"},
		{[]string{"status", "--cluster", "infra", "--repo", lab, "--kubeconfig", missingKC}, "bootcore status", missingKC},
		{[]string{"status", "--cluster", "infra", "--repo", lab}, "bootcore status", "no kubeconfig"},
		{[]string{"version", "extra"}, "bootcore version", `unexpected argument "extra"`},
		{[]string{"version", "-o", "yaml"}, "bootcore version", "want text or json"},
	} {
		stdout, stderr, code := execute(t, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		oneError(t, fmt.Sprint(tc.args), stderr, tc.command, tc.want)
		if strings.Contains(stderr, "KUBERNETES_MASTER") || strings.Contains(stderr, "Usage:") {
			t.Errorf("%v: %q", tc.args, stderr)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q", tc.args, stdout)
		}
	}
}

// README "Exit codes", rows status 3: a cluster that does not answer exits 3, through a
// kubeconfig or through the Talos API, and -o json still prints one document saying so.
func TestExitCodeStatusUnreachable(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("TALOSCONFIG", "")
	dir := t.TempDir()
	apiServer := closedAddr(t)
	kc := writeKubeconfig(t, dir, apiServer)
	tc := writeTalosconfig(t, dir, closedAddr(t))
	for _, access := range [][]string{{"--kubeconfig", kc}, {"--talosconfig", tc}} {
		args := append([]string{"status", "--cluster", "infra", "--repo", lab, "-o", "json", "--timeout", "1m"}, access...)
		stdout, stderr, code := execute(t, args...)
		if code != 3 {
			t.Errorf("%v: exit %d, want 3; stderr %q", access, code, stderr)
		}
		oneError(t, fmt.Sprint(access), stderr, "bootcore status", "")
		var doc struct {
			Cluster   string `json:"cluster"`
			Ready     *bool  `json:"ready"`
			Reachable *bool  `json:"reachable"`
			Error     string `json:"error"`
		}
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil || doc.Cluster != "infra" || doc.Ready == nil || *doc.Ready || doc.Reachable == nil || *doc.Reachable || doc.Error == "" {
			t.Errorf("%v: -o json printed %q (%v); want one document with ready and reachable false and the error", access, stdout, err)
		}
		if strings.Count(stdout, "\n") != 1 {
			t.Errorf("%v: want exactly one JSON document, got %q", access, stdout)
		}
	}
	// The text output: nothing on stdout, the reason once on stderr.
	stdout, stderr, code := execute(t, "status", "--cluster", "infra", "--repo", lab, "--kubeconfig", kc)
	if code != 3 || stdout != "" || !strings.Contains(stderr, apiServer) {
		t.Errorf("text: exit %d, stdout %q, stderr %q; want 3 naming %s", code, stdout, stderr, apiServer)
	}
	oneError(t, "text", stderr, "bootcore status", "unreachable")
}

// An exported TALOSCONFIG (left over from another cluster) does not switch status or the
// agent to the Talos API: the kubeconfig path is taken, and the Talos API only with a flag.
func TestTalosconfigEnvAloneDoesNotSwitch(t *testing.T) {
	dir := t.TempDir()
	apiServer, talosAPI := closedAddr(t), closedAddr(t)
	kc := writeKubeconfig(t, dir, apiServer)
	t.Setenv("TALOSCONFIG", writeTalosconfig(t, dir, talosAPI))
	t.Setenv("KUBECONFIG", kc)
	_, stderr, code := execute(t, "status", "--cluster", "infra", "--repo", lab)
	if code != 3 || !strings.Contains(stderr, apiServer) || strings.Contains(stderr, "Talos") {
		t.Errorf("status with $TALOSCONFIG set: exit %d, %q; want the kubeconfig's API server %s", code, stderr, apiServer)
	}
	out, _, _ := execute(t, "agent", "--cluster", "infra", "--repo", lab, "--connect-timeout", "2s", "--bundle-dir", dir)
	if first, _, _ := strings.Cut(out, "\n"); !strings.Contains(first, "through kubeconfig "+kc) {
		t.Errorf("agent with $TALOSCONFIG set: first line %q; want the kubeconfig path", first)
	}
	// With a Talos API flag, $TALOSCONFIG is the talosconfig it reads.
	t.Setenv("KUBECONFIG", "")
	_, stderr, code = execute(t, "status", "--cluster", "infra", "--repo", lab, "--talos-context", "infra", "--timeout", "1m")
	if code != 3 || !strings.Contains(stderr, talosAPI) {
		t.Errorf("status --talos-context: exit %d, %q; want the Talos API at %s", code, stderr, talosAPI)
	}
}

func TestCompletionOfClustersAndContexts(t *testing.T) {
	dir := t.TempDir()
	kc := writeKubeconfig(t, dir, "127.0.0.1:1")
	tc := writeTalosconfig(t, dir, "127.0.0.1:1")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "status", "--repo", lab, "--cluster", ""}, []string{"infra", "apps"}},
		{[]string{"__complete", "agent", "--repo", lab, "--cluster", ""}, []string{"infra", "apps"}},
		{[]string{"__complete", "gen", "--repo", lab, "--cluster", ""}, []string{"infra", "apps"}},
		{[]string{"__complete", "agent", "--kubeconfig", kc, "--context", ""}, []string{"admin@infra", "admin@apps"}},
		{[]string{"__complete", "status", "--talosconfig", tc, "--talos-context", ""}, []string{"infra", "apps"}},
		{[]string{"__complete", "check", "-o", ""}, []string{"text", "json", "github"}},
		{[]string{"__complete", "status", "-o", ""}, []string{"text", "json"}},
	} {
		out, _, code := execute(t, c.args...)
		lines := strings.Split(out, "\n")
		for _, w := range c.want {
			found := false
			for _, l := range lines {
				found = found || l == w
			}
			if !found {
				t.Errorf("%v: exit %d, completions %q lack %q", c.args[1:], code, out, w)
			}
		}
	}
}

func TestCheckGitHubAnnotations(t *testing.T) {
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "bootstrap"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "bootstrap/bootcore.yaml"), []byte("apiVersion: bootcore.dev/v1alpha1\nkind: Bootstrap\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := execute(t, "check", "--repo", repo, "-o", "github")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want := "::error file=" + filepath.ToSlash(filepath.Join(repo, "bootstrap/bootcore.yaml")) + ",title=bootcore check [spec]::"
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "\n9 checks, 1 errors, 0 warnings, 0 skipped\n") {
		t.Errorf("-o github:\n%s\nwant a line starting %q and the summary", out, want)
	}
}
