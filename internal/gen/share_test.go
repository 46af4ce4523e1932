package gen

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/internal/render"
	"github.com/bootcore-dev/bootcore/talos"
)

// fleetLab is the lab plus clusters that differ from apps in one input each, so that every
// cache of a run sees two inputs that differ in one place:
//
//	twin       apps's flux-system entry, no settings: the same inputs as apps but the name
//	operator1  apps's entry and one more boot-only Cilium value (the CNI render)
//	dns3       its own entry, COREDNS_REPLICAS 3 (the DNS render; CLUSTER_NAME too)
//	keepless   its own entry whose cert-manager HelmRelease has crds.keep false (phase 0)
//	k134       apps's entry on Kubernetes 1.34 (every render's capabilities)
func fleetLab(t *testing.T) string {
	t.Helper()
	root := labCopy(t)
	entry := func(name string) {
		src := filepath.Join(root, "kubernetes/clusters/apps")
		dst := filepath.Join(root, "kubernetes/clusters", name)
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		rel := "kubernetes/clusters/" + name
		edit(t, root, rel+"/flux-system/gotk-sync.yaml", "path: ./kubernetes/clusters/apps", "path: ./kubernetes/clusters/"+name)
		edit(t, root, rel+"/cluster-settings.yaml", `CLUSTER_NAME: "apps"`, `CLUSTER_NAME: "`+name+`"`)
	}
	entry("dns3")
	edit(t, root, "kubernetes/clusters/dns3/cluster-settings.yaml", `COREDNS_REPLICAS: "2"`, `COREDNS_REPLICAS: "3"`)
	entry("keepless")
	if err := os.CopyFS(filepath.Join(root, "kubernetes/infrastructure-keepless"), os.DirFS(filepath.Join(root, "kubernetes/infrastructure"))); err != nil {
		t.Fatal(err)
	}
	edit(t, root, "kubernetes/clusters/keepless/infrastructure.yaml", "path: ./kubernetes/infrastructure\n", "path: ./kubernetes/infrastructure-keepless\n")
	edit(t, root, "kubernetes/infrastructure-keepless/security/cert-manager/ks.yaml", "path: ./kubernetes/infrastructure/security", "path: ./kubernetes/infrastructure-keepless/security")
	edit(t, root, "kubernetes/infrastructure-keepless/security/cert-manager/helmrelease.yaml", "keep: true", "keep: false")

	values, err := os.ReadFile(filepath.Join(root, "bootstrap/clusters/apps/cilium-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, "bootstrap/clusters/operator1/cilium-values.yaml", string(values)+"operator:\n  replicas: 1\n")

	cluster := func(name, entry string, settings bool, values, kube string) string {
		s := "  - name: " + name + "\n    talosVersion: v1.14.1\n    kubernetesVersion: " + kube + "\n    endpoint: https://127.0.0.1:6443\n" +
			"    fluxSystem: kubernetes/clusters/" + entry + "/flux-system\n"
		if settings {
			s += "    settings: kubernetes/clusters/" + entry + "/cluster-settings.yaml\n"
		}
		return s + "    cniValues: bootstrap/clusters/" + values + "/cilium-values.yaml\n    controlPlanePatches:\n      - patches/controlplane-common-v1.14.yaml\n"
	}
	edit(t, root, "bootstrap/bootcore.yaml", "\ncni:\n", cluster("twin", "apps", false, "apps", "1.35.4")+
		cluster("operator1", "apps", false, "operator1", "1.35.4")+
		cluster("dns3", "dns3", true, "apps", "1.35.4")+
		cluster("keepless", "keepless", true, "apps", "1.35.4")+
		cluster("k134", "apps", false, "apps", "1.34.3")+"\ncni:\n")
	return root
}

// A fleet's run shares work between clusters only where the inputs are equal: every cluster's
// output and report are those of a run of that cluster alone, and clusters that differ in one
// input get different output exactly there.
func TestFleetOutputIsPerClusterOutput(t *testing.T) {
	root := fleetLab(t)
	cache := t.TempDir()
	fleet, err := Run(context.Background(), Options{Repo: root, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	reports := map[string]ClusterReport{}
	for _, r := range fleet.Clusters {
		reports[r.Name] = r
	}
	for _, name := range []string{"infra", "apps", "twin", "operator1", "dns3", "keepless", "k134"} {
		alone, err := Run(context.Background(), Options{Repo: root, CacheDir: cache, Clusters: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		for p, data := range alone.Files {
			if p == "bootstrap/bootcore.lock" {
				continue
			}
			if !bytes.Equal(fleet.Files[p], data) {
				t.Errorf("%s: the fleet run wrote other bytes than a run of cluster %s alone", p, name)
			}
		}
		if got := reports[name]; !reflect.DeepEqual(got, alone.Clusters[0]) {
			t.Errorf("cluster %s: the fleet run reports\n%+v\na run of it alone\n%+v", name, got, alone.Clusters[0])
		}
	}

	file := func(cluster, name string) []byte { return fleet.Files["generated/"+cluster+"/"+name] }
	manifest := func(cluster, name string) string {
		objs := manifests(t, fleet, cluster, "v1.14.1")[name]
		var b strings.Builder
		for _, o := range objs {
			data, err := render.Encode([]*unstructured.Unstructured{o.Unstructured})
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
		return b.String()
	}
	// Equal inputs but the name: the patches are shared (talos.Generate does not read the name).
	if !bytes.Equal(file("twin", talos.ControlPlaneFile), file("apps", talos.ControlPlaneFile)) {
		t.Error("twin's control-plane patch differs from apps's, yet their inputs differ only in the cluster's name")
	}
	for _, d := range []struct{ cluster, manifest, what string }{
		{"operator1", talos.CNIManifest, "replicas: 1"},
		{"dns3", talos.DNSManifest, "replicas: 3"},
		{"keepless", talos.CRDManifest, ""},
	} {
		got, apps := manifest(d.cluster, d.manifest), manifest("apps", d.manifest)
		if got == apps {
			t.Errorf("%s's %s equals apps's: a cache merged two inputs that differ", d.cluster, d.manifest)
		}
		if d.what != "" && !strings.Contains(got, d.what) {
			t.Errorf("%s's %s lacks %q", d.cluster, d.manifest, d.what)
		}
	}
	// The one difference of each: everything else is apps's.
	for _, d := range []struct{ cluster, same string }{{"operator1", talos.DNSManifest}, {"operator1", talos.CRDManifest}, {"dns3", talos.CRDManifest}, {"keepless", talos.DNSManifest}} {
		if manifest(d.cluster, d.same) != manifest("apps", d.same) {
			t.Errorf("%s's %s differs from apps's", d.cluster, d.same)
		}
	}
	// cert-manager's 6 CRDs carry the keep policy with crds.keep only (the other charts' always).
	if a, k := strings.Count(manifest("apps", talos.CRDManifest), "helm.sh/resource-policy: keep"), strings.Count(manifest("keepless", talos.CRDManifest), "helm.sh/resource-policy: keep"); a != k+6 {
		t.Errorf("CRDs with the keep policy: apps %d, keepless %d; want 6 more in apps (cert-manager's)", a, k)
	}
}

// The keys of the caches tell apart what Helm's templates tell apart.
func TestValuesKey(t *testing.T) {
	distinct := []any{
		map[string]any{"a": int64(1)},
		map[string]any{"a": float64(1)},
		map[string]any{"a": "1"},
		map[string]any{"a": true},
		map[string]any{"a": nil},
		map[string]any{"a": map[string]any{}},
		map[string]any{"a": []any{}},
		map[string]any{"a": []any{nil}},
		map[string]any{"b": int64(1)},
		map[string]any{"a": int64(1), "b": nil},
		map[string]any{"a,b": nil},
		map[string]any{"a": map[string]any{"b": nil}},
	}
	seen := map[string]int{}
	for i, v := range distinct {
		k := valuesKey(v)
		if j, dup := seen[k]; dup {
			t.Errorf("values %#v and %#v have the same key %s", distinct[j], v, k)
		}
		seen[k] = i
	}
	a := map[string]any{"x": int64(1), "y": map[string]any{"b": "2", "a": []any{1.5, "z"}}}
	b := map[string]any{"y": map[string]any{"a": []any{1.5, "z"}, "b": "2"}, "x": int64(1)}
	if valuesKey(a) != valuesKey(b) {
		t.Error("equal values, different keys")
	}
	if key("a", "bc") == key("ab", "c") {
		t.Error("key does not separate its parts")
	}
}

// A clone takes Helm's dependency processing for itself: rendering a clone with a subchart
// disabled leaves the original, and the next clone, with it.
func TestCloneChartIsolatesDependencyProcessing(t *testing.T) {
	sub := &chart.Chart{
		Metadata:  &chart.Metadata{APIVersion: "v2", Name: "sub", Version: "1.0.0"},
		Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sub\n")}},
	}
	ch := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: "v2", Name: "parent", Version: "1.0.0",
			Dependencies: []*chart.Dependency{{Name: "sub", Version: "1.0.0", Condition: "sub.enabled"}}},
		Values: map[string]any{"sub": map[string]any{"enabled": true}},
	}
	ch.SetDependencies(sub)
	before := len(ch.Dependencies())
	c := cloneChart(ch)
	if _, err := render.Render(render.Input{Chart: c, ReleaseName: "r", Namespace: "n", KubeVersion: "1.35.4", Values: map[string]any{"sub": map[string]any{"enabled": false}}}); err != nil {
		t.Fatal(err)
	}
	if len(c.Dependencies()) != 0 {
		t.Fatalf("the render kept the disabled subchart: %d", len(c.Dependencies()))
	}
	if len(ch.Dependencies()) != before || len(ch.Metadata.Dependencies) != before {
		t.Fatalf("rendering a clone changed the original: %d subcharts, %d in its metadata, want %d", len(ch.Dependencies()), len(ch.Metadata.Dependencies), before)
	}
	objs, err := render.Render(render.Input{Chart: cloneChart(ch), ReleaseName: "r", Namespace: "n", KubeVersion: "1.35.4"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("the next clone lost the subchart's objects")
	}
}

// Resolving every phase-0 source before rendering any (to key the shared result) keeps the
// errors of one-after-the-other rendering: an earlier source's render error comes first.
func TestPhase0ErrorsInSourceOrder(t *testing.T) {
	root := labCopy(t)
	edit(t, root, "bootstrap/bootcore.yaml", "    values:\n      crds:\n        enabled: true\n", "    values:\n      crds:\n        enabled: false\n")
	edit(t, root, "bootstrap/bootcore.yaml", "  - helmRelease: external-secrets/external-secrets\n", "  - helmRelease: external-secrets/missing\n")
	_, err := Run(context.Background(), Options{Repo: root, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "crds[0]") || !strings.Contains(err.Error(), "rendered no CustomResourceDefinition") {
		t.Fatalf("err = %v, want crds[0]'s: it renders no CRD", err)
	}
}

// Phase 1 renders while phase 0 does; when both fail, the error is phase 0's, as when the phases
// ran one after the other.
func TestPhase0ErrorBeforePhase1s(t *testing.T) {
	root := labCopy(t)
	edit(t, root, "bootstrap/bootcore.yaml", "installCRDs: true", "installCRDs: false")
	write(t, root, "bootstrap/clusters/infra/cilium-values.yaml", "{}\n") // the CNI renders a Secret: a phase-1 guard fails
	_, err := Run(context.Background(), Options{Repo: root, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "rendered no CustomResourceDefinition") {
		t.Fatalf("err = %v, want phase 0's: a source renders no CRD", err)
	}
	root = labCopy(t)
	write(t, root, "bootstrap/clusters/infra/cilium-values.yaml", "{}\n")
	if _, err := Run(context.Background(), Options{Repo: root, CacheDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "Secret cilium-ca") {
		t.Fatalf("err = %v, want phase 1's guard alone", err)
	}
}
