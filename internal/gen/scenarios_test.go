package gen

// The story's P0 scenarios that need no cluster (BOOT.CORE-UNIT-001, UNIT-002, E2E-008), named
// after their IDs; they log the evidence the story asks for. The end-to-end ones (and
// UNIT-002's "Established after boot") are in integration/e2e/scenarios_test.go.

import (
	"bytes"
	"context"
	"github.com/bootcore-dev/bootcore/talos"
	"helm.sh/helm/v3/pkg/chartutil"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// A CRD template the scenarios add to the lab's Cilium chart, emitted only when a value asks
// for it: the CRD arrives through the values a cluster renders with, not the chart default.
const gatedCRD = `{{- if .Values.extraCRD }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: extras.cilium.io}
spec: {group: cilium.io, scope: Namespaced, names: {kind: Extra, plural: extras}, versions: []}
{{- end }}
`

// UNIT-001 phase guard: the CNI render of both clusters holds 0 CRDs; a CRD that a boot-only
// value makes the chart emit fails gen, naming the CRD and its template.
func TestBOOT_CORE_UNIT_001_PhaseGuard(t *testing.T) {
	out := run(t, lab)
	for cluster, version := range map[string]string{"infra": "v1.13.9", "apps": "v1.14.1"} {
		cni := manifests(t, out, cluster, version)[talos.CNIManifest]
		kinds := map[string]int{}
		for _, o := range cni {
			kinds[o.GetKind()]++
		}
		if kinds["CustomResourceDefinition"] != 0 {
			t.Errorf("%s: CNI render holds %d CRDs", cluster, kinds["CustomResourceDefinition"])
		}
		t.Logf("cluster %s: CNI render %d objects, %d CustomResourceDefinitions (kinds %v)", cluster, len(cni), kinds["CustomResourceDefinition"], kinds)
	}

	root := labCopy(t)
	gitCNI(t, root)
	write(t, root, "charts/cilium/templates/extra-crd.yaml", gatedCRD)
	// Without the value the chart still renders no CRD: gen passes.
	if _, err := Run(context.Background(), Options{Repo: root, Clusters: []string{"infra"}, CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("gen with the CRD template switched off: %v", err)
	}
	edit(t, root, "bootstrap/clusters/infra/cilium-values.yaml", "existingSecret: hubble-server-certs\n", "existingSecret: hubble-server-certs\nextraCRD: true\n")
	_, err := Run(context.Background(), Options{Repo: root, Clusters: []string{"infra"}, CacheDir: t.TempDir()})
	if err == nil {
		t.Fatal("gen accepted a CNI render with a CRD")
	}
	for _, want := range []string{"CustomResourceDefinition extras.cilium.io", "cilium/templates/extra-crd.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	t.Logf("gen with a CRD in the CNI render: %v", err)
}

// UNIT-002 phase-0 purity: the CRD bundle holds only CRDs, and exactly the CRDs the spec's
// sources define. The expected names come from the source charts' files (spec.group and
// names.plural of every CustomResourceDefinition document), not from gen.
func TestBOOT_CORE_UNIT_002_Phase0Purity(t *testing.T) {
	sp, err := spec.Load(filepath.Join(lab, spec.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, lab)
	for _, c := range sp.Clusters {
		tree, err := fluxtree.Load(context.Background(), lab, c.FluxSystem)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, src := range sp.CRDs {
			ns, name := spec.SplitName(src.HelmRelease)
			hr, ok := tree.Get(fluxtree.HelmGroup, "HelmRelease", ns, name)
			if !ok {
				t.Fatalf("crds source HelmRelease %s not in the tree", src.HelmRelease)
			}
			chart, _, _ := unstructured.NestedString(hr.Object, "spec", "chart", "spec", "chart")
			version, _, _ := unstructured.NestedString(hr.Object, "spec", "chart", "spec", "version")
			for _, n := range chartCRDNames(t, publishedChart(t, chart, version)) {
				want[n] = true
			}
		}
		got := map[string]bool{}
		for _, o := range manifests(t, out, c.Name, c.TalosVersion)[talos.CRDManifest] {
			if !isCRD(o.Unstructured) {
				t.Errorf("%s: phase 0 holds %s %s", c.Name, o.GetKind(), o.GetName())
				continue
			}
			got[o.GetName()] = true
		}
		if g, w := sortedKeys(got), sortedKeys(want); g != w {
			t.Errorf("%s: phase-0 CRDs\n got %s\nwant %s", c.Name, g, w)
		}
		t.Logf("cluster %s: phase 0 holds %d objects, all CustomResourceDefinitions, every one of the %d sources' charts: %s", c.Name, len(got), len(sp.CRDs), sortedKeys(got))
	}
}

// E2E-008 negative: a CRD added to the core render through Git (the HelmRelease's values) is
// caught by a dry run (gen computes and compares, as `bootcore gen --check` in CI): an error
// naming the CRD, no output, nothing written. gen has no cluster access at all.
func TestBOOT_CORE_E2E_008_CRDGuardDryRun(t *testing.T) {
	root := labCopy(t)
	gitCNI(t, root)
	write(t, root, "charts/cilium/templates/extra-crd.yaml", gatedCRD)
	edit(t, root, "kubernetes/infrastructure/networking/cilium/core/helmrelease.yaml", "  values:\n", "  values:\n    extraCRD: true\n")
	before := snapshot(t, filepath.Join(root, "generated"))
	out, err := Run(context.Background(), Options{Repo: root, CacheDir: t.TempDir()})
	if err == nil || out != nil {
		t.Fatalf("gen: output %v, error %v; want no output and an error", out != nil, err)
	}
	if !strings.Contains(err.Error(), "CustomResourceDefinition extras.cilium.io") || !strings.Contains(err.Error(), "must not contain CRDs") {
		t.Errorf("error: %v", err)
	}
	if after := snapshot(t, filepath.Join(root, "generated")); after != before {
		t.Error("the failed run changed generated/")
	}
	t.Logf("dry run on a tree whose CNI HelmRelease adds a CRD: %v", err)
}

var (
	crdGroup  = regexp.MustCompile(`(?m)^\s*group:\s*(\S+)`)
	crdPlural = regexp.MustCompile(`(?m)^\s*plural:\s*(\S+)`)
)

// chartCRDNames reads <plural>.<group> of every CustomResourceDefinition document in a chart's
// templates/ and crds/ files.
// publishedChart expands the published package of chart at version (the lab's HelmReleases
// name them) into a temporary directory and returns the chart's directory.
func publishedChart(t *testing.T, chart, version string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(lab, "..", "upstream-charts", chart+"-"+version+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := chartutil.Expand(dir, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, chart)
}

func chartCRDNames(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !strings.HasPrefix(rel, "templates") && !strings.HasPrefix(rel, "crds") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, doc := range bytes.Split(data, []byte("\n---")) {
			if !bytes.Contains(doc, []byte("kind: CustomResourceDefinition")) {
				continue
			}
			g, pl := crdGroup.FindSubmatch(doc), crdPlural.FindSubmatch(doc)
			if g == nil || pl == nil {
				t.Fatalf("%s: a CRD document without spec.group or names.plural", p)
			}
			out = append(out, string(pl[1])+"."+string(g[1]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// snapshot is every file under dir with its content, as one comparable string.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		b.WriteString(p + "\n" + string(data) + "\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
