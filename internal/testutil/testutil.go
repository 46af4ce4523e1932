// Package testutil holds the few helpers the packages' tests share: copying the lab
// repository so a test can break it, and editing files in that copy.
package testutil

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// CopyDir copies the tree at src into a fresh temporary directory and returns it.
func CopyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// Edit replaces the first old with new in root/rel; old must be there.
func Edit(t testing.TB, root, rel, old, new string) {
	t.Helper()
	p := filepath.Join(root, rel)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := os.WriteFile(p, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Write creates root/rel (and its directories) with content.
func Write(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// IsolateHelm points Helm's and Docker's config at a temporary directory, so tests that use
// Helm's registry client never read the user's credentials. Call it from TestMain.
func IsolateHelm() (cleanup func()) {
	dir, err := os.MkdirTemp("", "bootcore-helm-")
	if err != nil {
		panic(err)
	}
	os.Setenv("HELM_CONFIG_HOME", dir)
	os.Setenv("DOCKER_CONFIG", dir)
	return func() { os.RemoveAll(dir) }
}

// CNIRepoSpec is how the lab's Cilium HelmRelease names its chart (the published chart at its
// HelmRepository, served by the lab's mirror).
const CNIRepoSpec = "chart: cilium\n      version: \"1.19.6\"\n      sourceRef:\n        kind: HelmRepository\n        name: cilium\n        namespace: flux-system"

// VendorChart expands the published chart package (integration/testdata/upstream-charts/<pkg>,
// found from the lab copy's original at lab) into root/charts/<name>, as a user who keeps a
// chart in Git to patch it would, and points the HelmRelease file hr at it instead of repoSpec:
// a test can then add templates to a real chart.
func VendorChart(t testing.TB, lab, root, pkg, hr, repoSpec string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(lab, "..", "upstream-charts", pkg))
	if err != nil {
		t.Fatal(err)
	}
	if err := chartutil.Expand(filepath.Join(root, "charts"), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	name := pkg[:strings.LastIndex(pkg, "-")]
	Edit(t, root, hr, repoSpec, "chart: ./charts/"+name+"\n      sourceRef:\n        kind: GitRepository\n        name: flux-system\n        namespace: flux-system")
}

// VendorCNI is VendorChart for the lab's Cilium HelmRelease.
func VendorCNI(t testing.TB, lab, root string) {
	t.Helper()
	VendorChart(t, lab, root, "cilium-1.19.6.tgz", "kubernetes/infrastructure/networking/cilium/core/helmrelease.yaml", CNIRepoSpec)
}
