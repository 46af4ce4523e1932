// Package labenv turns the lab repository (integration/testdata/lab) into a working copy
// pointed at test-bed clusters and a loopback Git server, boots the clusters from gen's
// patches through the Talos EMULATION, and runs the agent: what `make lab` does, and what the
// end-to-end tests do before their assertions.
package labenv

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"

	"github.com/bootcore-dev/bootcore/integration/chartmirror"
	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// GitPlaceholder is the Git URL the committed lab tree carries; Prepare replaces it.
const GitPlaceholder = "http://127.0.0.1:0/lab.git"

// TokenEnv carries the 1Password Connect token the agent puts into its bootstrap Secret.
const TokenEnv = "BOOTCORE_LAB_OP_TOKEN"

// mirror is this process's chart mirror (one serves every lab: the charts are the same).
var (
	mirrorOnce sync.Once
	mirror     *chartmirror.Mirror
	mirrorErr  error
)

// Mirror starts (once per process) the lab's air-gapped chart mirror on a free loopback port,
// serving the upstream charts of the checkout at root.
func Mirror(root string) (*chartmirror.Mirror, error) {
	mirrorOnce.Do(func() {
		state, err := os.MkdirTemp("", "bootcore-chartmirror-")
		if err != nil {
			mirrorErr = err
			return
		}
		mirror, mirrorErr = chartmirror.Start("127.0.0.1:0", filepath.Join(root, "integration", "testdata", "upstream-charts"), state, chartmirror.Upstreams)
	})
	return mirror, mirrorErr
}

// Lab is a prepared copy of the lab repository.
type Lab struct {
	Repo string // the working copy (also pushed to the Git server as repository "lab")
	Git  *testbed.GitServer
	// GitURL is the repository's URL as the clusters' Flux reaches it (by name, through the
	// cluster's network gate).
	GitURL string
	// Env is what `bootcore agent` needs in its environment (token, SOPS age key).
	Env []string
}

// Prepare copies the lab tree from src into dir, points every spec cluster at its test-bed
// cluster and every Flux source at git, adds the agent section (a bootstrap Secret from an
// environment variable and a SOPS file), runs bootcore gen, and pushes the result.
func Prepare(ctx context.Context, root, dir string, git *testbed.GitServer, clusters map[string]*testbed.Cluster, token string) (*Lab, error) {
	src := filepath.Join(root, "integration", "testdata", "lab")
	if err := copyDir(src, dir); err != nil {
		return nil, err
	}
	// Flux reaches the Git server by name, through each cluster's network gate (below).
	url := testbed.SiteURL(git.RepoURL("lab"), "git")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte(GitPlaceholder)) {
			return err
		}
		return os.WriteFile(p, bytes.ReplaceAll(data, []byte(GitPlaceholder), []byte(url)), 0o644)
	})
	if err != nil {
		return nil, err
	}
	m, err := Mirror(root)
	if err != nil {
		return nil, err
	}
	// The controllers that are pods on Talos reach Git and the chart mirror only through the
	// cluster's gate: once a CNI runs and cluster DNS answers.
	for _, c := range clusters {
		gate, err := c.StartNetGate(m.Addr)
		if err != nil {
			return nil, err
		}
		c.SetNetwork(gate.Env(m.CAFile))
	}

	specPath := filepath.Join(dir, spec.DefaultPath)
	data, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	// The committed spec names the mirror at its default address (make gen-check runs one there).
	text := strings.ReplaceAll(string(data), chartmirror.DefaultAddr, m.Addr)
	var names []string
	for name, c := range clusters {
		re := regexp.MustCompile(`(?s)(- name: ` + name + `\n.*?endpoint: )\S+`)
		if !re.MatchString(text) {
			return nil, fmt.Errorf("lab spec: no endpoint for cluster %s", name)
		}
		text = re.ReplaceAllString(text, "${1}"+c.Server)
		names = append(names, name)
	}
	sort.Strings(names)
	sopsDir := filepath.Join(root, "internal", "sopsage", "testdata")
	if err := copyFile(filepath.Join(sopsDir, "secret.sops.yaml"), filepath.Join(dir, "bootstrap", "secrets", "onepassword-connect.sops.yaml")); err != nil {
		return nil, err
	}
	text += `
agent:
  secrets:
    - name: external-secrets/onepassword-connect
      data:
        token: {env: ` + TokenEnv + `}
        1password-credentials.json: {file: bootstrap/secrets/onepassword-connect.sops.yaml, key: stringData.1password-credentials.json}
  flux:
    manifests: flux-manifests
`
	if err := os.WriteFile(specPath, []byte(text), 0o644); err != nil {
		return nil, err
	}
	if err := writeFluxManifests(filepath.Join(dir, "flux-manifests")); err != nil {
		return nil, err
	}
	out, err := gen.Run(ctx, gen.Options{Repo: dir, Clusters: names, CacheDir: filepath.Join(dir, ".cache")})
	if err != nil {
		return nil, fmt.Errorf("bootcore gen: %w", err)
	}
	if _, err := out.Write(dir); err != nil {
		return nil, err
	}
	if _, err := git.CreateRepo("lab", dir); err != nil {
		return nil, err
	}
	return &Lab{Repo: dir, Git: git, GitURL: url, Env: []string{
		TokenEnv + "=" + token,
		"SOPS_AGE_KEY_FILE=" + filepath.Join(sopsDir, "test.agekey"),
		"SOPS_AGE_KEY=",
	}}, nil
}

// BootTalos boots every control-plane node of c from the lab's generated patch (static
// patches first, as gen validates), concurrently as Talos nodes do. EMULATION: see talosemu.
func (l *Lab) BootTalos(ctx context.Context, c *testbed.Cluster, name string, timeout time.Duration) error {
	s, err := spec.Load(filepath.Join(l.Repo, spec.DefaultPath))
	if err != nil {
		return err
	}
	sc, ok := s.Cluster(name)
	if !ok {
		return fmt.Errorf("lab spec has no cluster %s", name)
	}
	cfg, err := l.talosConfig(c, s, sc)
	if err != nil {
		return err
	}
	nodes, err := c.Nodes(ctx, testbed.LabelControlPlane)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() {
			_, errs[i] = (&talosemu.Node{Name: n.Name, Config: c.Config}).Boot(ctx, cfg, timeout)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TalosConfig is the control-plane machine config cluster name boots from: Talos's default
// for the spec's versions with the static patches and gen's controlplane.yaml, as
// `talosctl gen config --config-patch-control-plane` makes it, then the extra patches (paths
// relative to the lab repository, e.g. gen's post-handover.yaml as `talosctl patch` applies it).
func (l *Lab) TalosConfig(c *testbed.Cluster, name string, extra ...string) (config.Provider, error) {
	s, err := spec.Load(filepath.Join(l.Repo, spec.DefaultPath))
	if err != nil {
		return nil, err
	}
	sc, ok := s.Cluster(name)
	if !ok {
		return nil, fmt.Errorf("lab spec has no cluster %s", name)
	}
	return l.talosConfig(c, s, sc, extra...)
}

func (l *Lab) talosConfig(c *testbed.Cluster, s *spec.Spec, sc spec.Cluster, extra ...string) (config.Provider, error) {
	var patches []string
	for _, p := range append(append([]string{}, sc.Patches...), sc.ControlPlanePatches...) {
		patches = append(patches, filepath.Join(l.Repo, p))
	}
	patches = append(patches, filepath.Join(l.Repo, s.Output, sc.Name, "controlplane.yaml"))
	for _, p := range extra {
		patches = append(patches, filepath.Join(l.Repo, p))
	}
	return talosemu.MachineConfigFromFiles(talosemu.ConfigOptions{
		ClusterName: sc.Name, Endpoint: c.Server, KubernetesVersion: sc.KubernetesVersion, TalosVersion: sc.TalosVersion,
	}, patches...)
}

// writeFluxManifests lays out Flux's install manifests (those the flux-operator carries for
// its newest Flux) as a kustomization: what `flux install --export` gives an air-gapped site.
func writeFluxManifests(dir string) error {
	testbin, err := testbed.TestbinDir()
	if err != nil {
		return err
	}
	base := filepath.Join(testbin, "flux-operator-data", "flux")
	versions, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("Flux manifests: %w (run make testbin)", err)
	}
	sort.Slice(versions, func(i, j int) bool { return semverLess(versions[i].Name(), versions[j].Name()) })
	src := filepath.Join(base, versions[len(versions)-1].Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []string{"source-controller.yaml", "kustomize-controller.yaml", "helm-controller.yaml", "notification-controller.yaml", "rbac.yaml", "policies.yaml"}
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: flux-system\nresources:\n  - namespace.yaml\n"
	for _, f := range files {
		if err := copyFile(filepath.Join(src, f), filepath.Join(dir, f)); err != nil {
			return err
		}
		kust += "  - " + f + "\n"
	}
	ns := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n  labels:\n    app.kubernetes.io/instance: flux-system\n"
	if err := os.WriteFile(filepath.Join(dir, "namespace.yaml"), []byte(ns), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644)
}

func semverLess(a, b string) bool {
	var x, y [3]int
	fmt.Sscanf(strings.TrimPrefix(a, "v"), "%d.%d.%d", &x[0], &x[1], &x[2])
	fmt.Sscanf(strings.TrimPrefix(b, "v"), "%d.%d.%d", &y[0], &y[1], &y[2])
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
