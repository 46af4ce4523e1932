package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/talos"
)

// readmeSection returns the shell code blocks of the README section under heading.
func readmeSection(t *testing.T, heading string) []string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "```sh\n")
		if !ok {
			return blocks
		}
		block, after, _ := strings.Cut(rest, "```")
		blocks = append(blocks, block)
		section = after
	}
}

// shellCommands splits shell text into commands (continuation lines joined, comments dropped)
// of whitespace-separated words; the README's commands use no quoting.
func shellCommands(text string) [][]string {
	var cmds [][]string
	var cur []string
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ') {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		cont := strings.HasSuffix(line, "\\")
		cur = append(cur, strings.Fields(strings.TrimSuffix(line, "\\"))...)
		if !cont && len(cur) > 0 {
			cmds = append(cmds, cur)
			cur = nil
		}
	}
	return cmds
}

// talosctlPatches returns, per role, the patch files a talosctl command applies in order:
// gen config applies --config-patch, then the role's own flag; apply-config its
// --config-patch list to the node's role (the --file's).
func talosctlPatches(t *testing.T, args []string) (cluster, endpoint string, roles map[string][]string) {
	t.Helper()
	common := []string{}
	roles = map[string][]string{}
	var positional []string
	for i := 2; i < len(args); i++ {
		flag := args[i]
		if !strings.HasPrefix(flag, "--") {
			positional = append(positional, flag)
			continue
		}
		if i+1 >= len(args) {
			t.Fatalf("%v: %s without a value", args, flag)
		}
		val := args[i+1]
		i++
		file := strings.TrimPrefix(val, "@")
		switch flag {
		case "--config-patch":
			common = append(common, file)
		case "--config-patch-control-plane":
			roles[talos.RoleControlPlane] = append(roles[talos.RoleControlPlane], file)
		case "--config-patch-worker":
			roles[talos.RoleWorker] = append(roles[talos.RoleWorker], file)
		case "--file":
			roles["file"] = []string{val}
		}
	}
	switch args[1] {
	case "gen":
		if len(positional) != 3 || positional[0] != "config" {
			t.Fatalf("%v: want talosctl gen config NAME ENDPOINT", args)
		}
		cluster, endpoint = positional[1], positional[2]
		for _, r := range []string{talos.RoleControlPlane, talos.RoleWorker} {
			roles[r] = append(slices.Clone(common), roles[r]...)
		}
	case "apply-config":
		role := strings.TrimSuffix(filepath.Base(roles["file"][0]), ".yaml")
		roles = map[string][]string{role: common}
	default:
		t.Fatalf("unexpected talosctl command %v", args)
	}
	delete(roles, "file")
	return cluster, endpoint, roles
}

// The quick start boots what gen validated: the README's talosctl commands pass the spec's
// static patches and then bootcore's, in the order gen applies them before it validates
// (talos.Validate), and the config they give, rebuilt with Talos machinery from the lab tree's
// committed files, validates and equals the one gen validated.
func TestQuickStartPatchesAreWhatGenValidated(t *testing.T) {
	realSpec, err := spec.Load("../../" + spec.DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	labSpec, err := spec.Load(filepath.Join(lab, spec.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeSection(t, "## Quick start")
	var talosctl [][]string
	for _, b := range blocks {
		for _, c := range shellCommands(b) {
			if c[0] == "talosctl" && (c[1] == "gen" || c[1] == "apply-config") {
				talosctl = append(talosctl, c)
			}
		}
	}
	if len(talosctl) != 2 {
		t.Fatalf("the quick start has %d talosctl gen config/apply-config commands, want 2", len(talosctl))
	}
	cluster := ""
	checked := 0
	for _, cmd := range talosctl {
		name, endpoint, roles := talosctlPatches(t, cmd)
		if name != "" {
			cluster = name
		}
		if cluster == "" {
			t.Fatalf("%v: no cluster named before it", cmd)
		}
		rc, ok := findCluster(realSpec, cluster)
		if !ok {
			t.Fatalf("the quick start's cluster %q is not in bootstrap/bootcore.yaml", cluster)
		}
		if endpoint != "" && endpoint != rc.Endpoint {
			t.Errorf("talosctl gen config endpoint %s, the spec's is %s", endpoint, rc.Endpoint)
		}
		lc, ok := findCluster(labSpec, cluster)
		if !ok {
			t.Fatalf("no cluster %q in the lab tree", cluster)
		}
		for role, files := range roles {
			want := genOrder(rc, role, realSpec.Output)
			if !slices.Equal(files, want) {
				t.Errorf("%s %s: the README passes %v; gen validates %v (in this order)", strings.Join(cmd[:2], " "), role, files, want)
				continue
			}
			if !slices.Equal(genOrder(lc, role, labSpec.Output), want) {
				t.Fatalf("the lab tree's %s patches differ from the real tree's; the test needs them alike", cluster)
			}
			validateLikeGen(t, lc, role, files)
			checked++
		}
	}
	if checked != 3 {
		t.Errorf("checked %d role configs, want 3 (gen config: control plane and worker; apply-config)", checked)
	}
}

func findCluster(s *spec.Spec, name string) (spec.Cluster, bool) {
	for _, c := range s.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return spec.Cluster{}, false
}

// genOrder is the order internal/gen hands the patches to talos.Validate: patches, the role's
// own static patches, then bootcore's generated patch for the role.
func genOrder(c spec.Cluster, role, output string) []string {
	order := slices.Clone(c.Patches)
	if role == talos.RoleControlPlane {
		order = append(order, c.ControlPlanePatches...)
	} else {
		order = append(order, c.WorkerPatches...)
	}
	return append(order, filepath.ToSlash(filepath.Join(output, c.Name, role+".yaml")))
}

// validateLikeGen builds the config the talosctl command gives (every file a plain patch, in
// its order) and the one gen validated (static patches, then bootcore's), both with Talos
// machinery, and requires both valid and equal.
func validateLikeGen(t *testing.T, c spec.Cluster, role string, files []string) {
	t.Helper()
	opts := talos.Options{ClusterName: c.Name, Endpoint: c.Endpoint, TalosVersion: c.TalosVersion, KubernetesVersion: c.KubernetesVersion}
	var patches [][]byte
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(lab, f))
		if err != nil {
			t.Fatal(err)
		}
		patches = append(patches, data)
	}
	asPassed, err := talos.MachineConfig(opts, role, patches...)
	if err != nil {
		t.Fatalf("%s %s with the README's patches: %v", c.Name, role, err)
	}
	genOpts := opts
	for _, f := range files[:len(files)-1] {
		genOpts.StaticPatches = append(genOpts.StaticPatches, talos.StaticPatch{Name: f, Data: patches[slices.Index(files, f)], Role: role})
	}
	asValidated, err := talos.MachineConfig(genOpts, role, patches[len(patches)-1])
	if err != nil {
		t.Fatalf("%s %s as gen validates it: %v", c.Name, role, err)
	}
	a, err := asPassed.EncodeBytes()
	if err != nil {
		t.Fatal(err)
	}
	b, err := asValidated.EncodeBytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s %s: the config from the README's commands differs from the one gen validated (%d vs %d bytes)", c.Name, role, len(a), len(b))
	}
	if role == talos.RoleControlPlane && !bytes.Contains(a, []byte("bootcore-cni")) {
		t.Errorf("%s control plane: no bootcore-cni inline manifest in %s", c.Name, fmt.Sprint(files))
	}
}
