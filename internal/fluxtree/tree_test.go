package fluxtree

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.TrimLeft(content, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// baseTree is a minimal cluster: the flux-system entry reconciles clusters/c1, which holds
// cluster-settings and an "apps" Kustomization substituting from it.
func baseTree(extra map[string]string) map[string]string {
	files := map[string]string{
		"clusters/c1/flux-system/kustomization.yaml": `
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [gotk-sync.yaml]
`,
		"clusters/c1/flux-system/gotk-sync.yaml": `
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 1m, url: "https://example.invalid/repo.git", ref: {branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 10m
  path: ./clusters/c1
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
`,
		"clusters/c1/cluster-settings.yaml": `
apiVersion: v1
kind: ConfigMap
metadata: {name: cluster-settings, namespace: flux-system}
data: {CLUSTER_NAME: c1, REPLICAS: "3"}
`,
		"clusters/c1/apps.yaml": `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
  postBuild:
    substitute: {INLINE: from-inline}
    substituteFrom: [{kind: ConfigMap, name: cluster-settings}]
`,
		"apps/kustomization.yaml": `
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [repo.yaml, release.yaml]
configMapGenerator:
  - name: app-values
    namespace: apps
    files: [values.yaml=values.yaml]
    options: {disableNameSuffixHash: true}
  - name: app-extra
    namespace: apps
    literals: [tag=v9]
    options: {disableNameSuffixHash: true}
`,
		"apps/values.yaml": `
replicas: 1
fromFile: yes
nested: {a: file, b: file}
`,
		"apps/repo.yaml": `
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: charts, namespace: apps}
spec: {interval: 1h, url: "https://charts.example.invalid"}
`,
		"apps/release.yaml": `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: app, namespace: apps}
spec:
  interval: 1h
  chart:
    spec:
      chart: app
      version: 1.2.3
      sourceRef: {kind: HelmRepository, name: charts}
  valuesFrom:
    - {kind: ConfigMap, name: app-values}
    - {kind: ConfigMap, name: app-extra, valuesKey: tag, targetPath: image.tag}
  values:
    cluster: ${CLUSTER_NAME}
    replicas: ${REPLICAS}
    inline: ${INLINE}
    defaulted: ${MISSING:=fallback}
    nested: {b: values}
`,
	}
	for k, v := range extra {
		if v == "" {
			delete(files, k)
			continue
		}
		files[k] = v
	}
	return files
}

func TestLoadFollowsKustomizationsAndSubstitutes(t *testing.T) {
	root := writeTree(t, baseTree(nil))
	tree, err := Load(context.Background(), root, "clusters/c1/flux-system")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"flux-system/flux-system", "flux-system/apps"} {
		if _, ok := tree.Kustomizations[id]; !ok {
			t.Errorf("Kustomization %s not reached; have %v", id, SortedKeys(tree.Kustomizations))
		}
	}
	rel, err := tree.Release("apps/app")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Chart != (ChartRef{Kind: "HelmRepository", URL: "https://charts.example.invalid", Chart: "app", Version: "1.2.3"}) {
		t.Errorf("chart ref = %+v", rel.Chart)
	}
	if rel.File != "apps/release.yaml" {
		t.Errorf("file = %q", rel.File)
	}
	v := rel.Values
	// spec.values wins over valuesFrom; valuesFrom merge deeply; targetPath sets one value;
	// substitution uses substituteFrom, inline substitute and defaults, as Flux does.
	want := map[string]any{
		"cluster": "c1", "replicas": float64(3), "inline": "from-inline", "defaulted": "fallback",
		"fromFile": true,
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("values[%s] = %#v, want %#v", k, v[k], w)
		}
	}
	nested := v["nested"].(map[string]any)
	if nested["a"] != "file" || nested["b"] != "values" {
		t.Errorf("nested = %v, want a from valuesFrom and b from spec.values", nested)
	}
	if img := v["image"].(map[string]any); img["tag"] != "v9" {
		t.Errorf("image.tag = %v, want v9 from targetPath", img["tag"])
	}
	vars, err := tree.Vars(context.Background(), rel.Object)
	if err != nil || vars["CLUSTER_NAME"] != "c1" || vars["INLINE"] != "from-inline" {
		t.Errorf("Vars = %v, %v", vars, err)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		extra map[string]string
		want  []string
	}{
		{"undefined variable", map[string]string{"apps/release.yaml": strings.Replace(baseTree(nil)["apps/release.yaml"], "${INLINE}", "${NOPE}", 1)},
			[]string{"Kustomization flux-system/apps", "HelmRelease app", "apps/release.yaml", `"NOPE"`}},
		{"missing path", map[string]string{"clusters/c1/apps.yaml": strings.Replace(baseTree(nil)["clusters/c1/apps.yaml"], "./apps", "./nowhere", 1)},
			[]string{"Kustomization flux-system/apps", "clusters/c1/apps.yaml", `"nowhere" does not exist`}},
		{"substituteFrom never produced", map[string]string{"clusters/c1/cluster-settings.yaml": ""},
			[]string{"Kustomization flux-system/apps", "ConfigMap flux-system/cluster-settings", "not produced"}},
		{"kustomize error", map[string]string{"apps/kustomization.yaml": "resources: [missing.yaml]\n"},
			[]string{"Kustomization flux-system/apps", "kustomize build apps", "missing.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, baseTree(tc.extra))
			_, err := Load(context.Background(), root, "clusters/c1/flux-system")
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestReleaseErrors(t *testing.T) {
	cases := []struct {
		name  string
		id    string
		extra map[string]string
		want  []string
	}{
		{"missing release", "apps/nope", nil, []string{"HelmRelease apps/nope", "not applied", "apps/app"}},
		{"dangling sourceRef", "apps/app", map[string]string{"apps/release.yaml": strings.Replace(baseTree(nil)["apps/release.yaml"], "name: charts", "name: gone", 1)},
			[]string{"HelmRelease apps/app (apps/release.yaml)", "HelmRepository apps/gone"}},
		{"dangling valuesFrom", "apps/app", map[string]string{"apps/release.yaml": strings.Replace(baseTree(nil)["apps/release.yaml"], "name: app-values", "name: other", 1)},
			[]string{"spec.valuesFrom[0]", "ConfigMap apps/other"}},
		{"secret valuesFrom", "apps/app", map[string]string{"apps/release.yaml": strings.Replace(baseTree(nil)["apps/release.yaml"], "{kind: ConfigMap, name: app-values}", "{kind: Secret, name: app-values}", 1)},
			[]string{"spec.valuesFrom[0]", "Secret", "machine config"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, baseTree(tc.extra))
			tree, err := Load(context.Background(), root, "clusters/c1/flux-system")
			if err != nil {
				t.Fatal(err)
			}
			_, err = tree.Release(tc.id)
			if err == nil {
				t.Fatal("Release succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestSubstituteIsStrict(t *testing.T) {
	out, err := Substitute([]byte("a: ${A}\nb: ${B:=two}\n"), map[string]string{"A": "one"})
	if err != nil || string(out) != "a: one\nb: two\n" {
		t.Fatalf("Substitute = %q, %v", out, err)
	}
	if _, err := Substitute([]byte("a: ${UNSET}"), nil); err == nil || !strings.Contains(err.Error(), "UNSET") {
		t.Fatalf("want an error naming UNSET, got %v", err)
	}
}

// valuesFrom is merged by helm-controller's own code (fluxcd/pkg/chartutil): a literal
// targetPath value (ValuesReference.Literal) stays a string. The hand copy it replaced
// ignored Literal and parsed "true" as a bool.
func TestReleaseValuesAsHelmController(t *testing.T) {
	release := strings.Replace(baseTree(nil)["apps/release.yaml"],
		"    - {kind: ConfigMap, name: app-extra, valuesKey: tag, targetPath: image.tag}\n",
		"    - {kind: ConfigMap, name: app-extra, valuesKey: tag, targetPath: image.tag}\n"+
			"    - {kind: ConfigMap, name: app-extra, valuesKey: flag, targetPath: feature.flag, literal: true}\n", 1)
	kust := strings.Replace(baseTree(nil)["apps/kustomization.yaml"], "literals: [tag=v9]", "literals: [tag=v9, flag=true]", 1)
	root := writeTree(t, baseTree(map[string]string{"apps/release.yaml": release, "apps/kustomization.yaml": kust}))
	tree, err := Load(context.Background(), root, "clusters/c1/flux-system")
	if err != nil {
		t.Fatal(err)
	}
	r, err := tree.Release("apps/app")
	if err != nil {
		t.Fatal(err)
	}
	feature, _ := r.Values["feature"].(map[string]any)
	if v, ok := feature["flag"].(string); !ok || v != "true" {
		t.Errorf("feature.flag = %#v, want the literal string \"true\"", feature["flag"])
	}
}

// The spec says which GitRepository is this repository, by name or by URL (any spelling);
// without it, a GitRepository of another branch is not walked, and says so.
func TestThisRepositoryOptions(t *testing.T) {
	extra := map[string]string{"clusters/c1/next.yaml": `
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: next, namespace: flux-system}
spec: {interval: 1m, url: "ssh://git@example.invalid/repo", ref: {branch: next}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: next, namespace: flux-system}
spec:
  interval: 10m
  path: ./next
  prune: true
  sourceRef: {kind: GitRepository, name: next}
`, "next/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: next, namespace: default}\n"}
	root := writeTree(t, baseTree(extra))
	for _, tc := range []struct {
		opts   Options
		walked bool
	}{
		{Options{}, false},
		{Options{GitRepository: "flux-system/next"}, true},
		{Options{URL: "git@example.invalid:repo.git"}, true},
	} {
		tree, err := Load(context.Background(), root, "clusters/c1/flux-system", tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		_, walked := tree.Get("", "ConfigMap", "default", "next")
		if walked != tc.walked {
			t.Errorf("%+v: Kustomization next walked = %v, want %v (skipped: %v)", tc.opts, walked, tc.walked, tree.Skipped)
		}
		if !walked && (len(tree.Skipped) != 1 || !strings.Contains(tree.Skipped[0].Reason, "GitRepository flux-system/next (ssh://git@example.invalid/repo branch next) is another repository or ref") || tree.Skipped[0].File != "clusters/c1/next.yaml") {
			t.Errorf("%+v: skipped %+v", tc.opts, tree.Skipped)
		}
	}
}
