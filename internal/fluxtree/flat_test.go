package fluxtree

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func yamlOf(t *testing.T, res []*resource.Resource) string {
	t.Helper()
	var b strings.Builder
	for _, r := range res {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

func fluxKS(name string) string {
	return fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: %[1]s
  namespace: flux-system
spec:
  path: ./apps/%[1]s/app
  dependsOn: [{name: base}]
  postBuild:
    substituteFrom: [{kind: ConfigMap, name: cluster-settings}]
  sourceRef: {kind: GitRepository, name: flux-system}
`, name)
}

// With chunks of 2, every kustomization below of more than 2 entries is a candidate: the chunked
// build must be the one build where it is taken, and must leave the one build (kustomize's own
// result or error) to every case where chunks could differ from it.
func TestBuildFlatIsTheOneBuild(t *testing.T) {
	defer func(n int) { flatChunk = n }(flatChunk)
	flatChunk = 2
	const dir = "/repo/apps"
	kfile := filepath.Join(dir, "kustomization.yaml")
	files := map[string]string{
		"a/ks.yaml":   fluxKS("a"),
		"b/ks.yaml":   fluxKS("b") + "---\n" + strings.ReplaceAll(fluxKS("b2"), "\n", "\n# comment\n"),
		"c/ks.yaml":   fluxKS("c"),
		"ns.yaml":     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n  labels: {x: \"${X}\"}\n",
		"list.yaml":   "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l1, namespace: apps}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l2, namespace: apps}\n",
		"empty.yaml":  "# nothing\n",
		"anchor.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: anchored, namespace: apps}\ndata: &d {a: \"1\"}\nbinaryData: {}\nextra: *d\n",
		"dup/ks.yaml": fluxKS("a"),
		// Name references across files (kustomize fixes them up after renames).
		"rb.yaml":                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects:\n- {kind: ServiceAccount, name: sa}\n",
		"sa.yaml":                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: apps}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: b}\n",
		"deploy.yaml":            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: apps}\nspec:\n  template:\n    spec:\n      serviceAccountName: sa\n      containers: [{name: c, envFrom: [{configMapRef: {name: h}}, {configMapRef: {name: l1}}]}]\n",
		"local.yaml":             "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: a\n  namespace: flux-system\n  annotations: {config.kubernetes.io/local-config: \"true\"}\n",
		"hash.yaml":              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: h\n  namespace: apps\n  annotations: {internal.config.kubernetes.io/needsHashSuffix: enabled}\ndata: {a: b}\n",
		"hash2.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: h\n  namespace: apps\n  annotations: {internal.config.kubernetes.io/needsHashSuffix: enabled}\ndata: {a: c}\n",
		"broken.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n",
		"sub/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sub, namespace: apps}\n",
		"sub/kustomization.yaml": "resources: [cm.yaml]\n",
	}
	kust := func(extra string, entries ...string) string {
		return "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" + extra + "resources:\n- " + strings.Join(entries, "\n- ") + "\n"
	}
	plain := []string{"a/ks.yaml", "./b/ks.yaml", "c/ks.yaml", "ns.yaml", "list.yaml", "empty.yaml", "anchor.yaml", "/repo/apps/sa.yaml", "rb.yaml", "deploy.yaml"}
	for _, tc := range []struct {
		name     string
		manifest string
		chunked  bool // the chunked build is taken
		chunk    int  // flatChunk when not 2
	}{
		{"plain files", kust("", plain...), true, 0},
		{"two entries are one chunk", kust("", "a/ks.yaml", "c/ks.yaml"), false, 0},
		// Flow style on one line: the entries are counted by their commas.
		{"flow style", `{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "ns.yaml", "list.yaml"]}`, true, 4},
		{"a field besides resources", kust("namespace: other\n", plain...), false, 0},
		{"the same id in two chunks", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "dup/ks.yaml"), false, 0},
		{"the same entry twice", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "a/ks.yaml"), false, 0},
		{"a local-config duplicate", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "local.yaml"), false, 0},
		{"a hash suffix", kust("", "deploy.yaml", "b/ks.yaml", "c/ks.yaml", "hash.yaml"), false, 0},
		{"hash suffixes", kust("", "a/ks.yaml", "b/ks.yaml", "hash.yaml", "hash2.yaml"), false, 0},
		{"a directory", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "sub"), false, 0},
		{"a missing file", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "nowhere.yaml"), false, 0},
		{"broken YAML", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "broken.yaml"), false, 0},
		{"the kustomization itself", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "kustomization.yaml"), false, 0},
		{"a URL", kust("", "a/ks.yaml", "b/ks.yaml", "c/ks.yaml", "https://example.com/x.yaml"), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.chunk != 0 {
				flatChunk = tc.chunk
				defer func() { flatChunk = 2 }()
			}
			fsys := filesys.MakeFsInMemory()
			for p, c := range files {
				if err := fsys.WriteFile(filepath.Join(dir, p), []byte(c)); err != nil {
					t.Fatal(err)
				}
			}
			if err := fsys.WriteFile(kfile, []byte(tc.manifest)); err != nil {
				t.Fatal(err)
			}
			one, _, oneErr := build(fsys, dir)
			res, read, ok := buildFlat(fsys, dir, kfile, []byte(tc.manifest))
			if after, _ := fsys.ReadFile(kfile); string(after) != tc.manifest {
				t.Fatalf("the kustomization file is not the manifest after the chunked build:\n%s", after)
			}
			if ok != tc.chunked {
				t.Fatalf("chunked build taken = %v, want %v (one build error: %v)", ok, tc.chunked, oneErr)
			}
			if !ok {
				return
			}
			if oneErr != nil {
				t.Fatalf("chunked build succeeded where the one build fails: %v", oneErr)
			}
			if got, want := yamlOf(t, res), yamlOf(t, one.Resources()); got != want {
				t.Fatalf("chunked build:\n%s\nthe one build:\n%s", got, want)
			}
			for _, r := range read {
				if r != kfile {
					t.Errorf("read %s, want only %s", r, kfile)
				}
			}
		})
	}

	// The cases left to the one build do differ chunk by chunk: built file by file, the
	// Deployment keeps the name of the ConfigMap the one build gives a hash suffix, and the
	// hash-suffixed or local-config duplicates are no error.
	fsys := filesys.MakeFsInMemory()
	for p, c := range files {
		if err := fsys.WriteFile(filepath.Join(dir, p), []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	each := func(entries ...string) (string, error) {
		var all []*resource.Resource
		for _, e := range entries {
			if err := fsys.WriteFile(kfile, []byte(kust("", e))); err != nil {
				t.Fatal(err)
			}
			m, _, err := build(fsys, dir)
			if err != nil {
				return "", err
			}
			all = append(all, m.Resources()...)
		}
		return yamlOf(t, all), nil
	}
	if err := fsys.WriteFile(kfile, []byte(kust("", "deploy.yaml", "hash.yaml"))); err != nil {
		t.Fatal(err)
	}
	one, _, err := build(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`configMapRef:\s+name: (\S+)`)
	separate, err := each("deploy.yaml", "hash.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := ref.FindStringSubmatch(yamlOf(t, one.Resources())); got == nil || !strings.HasPrefix(got[1], "h-") {
		t.Errorf("the one build's reference = %v, want the hash-suffixed name", got)
	}
	if got := ref.FindStringSubmatch(separate); got == nil || got[1] != "h" {
		t.Errorf("file by file, the reference = %v, want h", got)
	}
	for _, pair := range [][]string{{"hash.yaml", "hash2.yaml"}, {"a/ks.yaml", "local.yaml"}} {
		if err := fsys.WriteFile(kfile, []byte(kust("", pair...))); err != nil {
			t.Fatal(err)
		}
		if _, _, err := build(fsys, dir); err == nil || !strings.Contains(err.Error(), "already registered id") {
			t.Errorf("%v: one build = %v, want kustomize's duplicate id error", pair, err)
		}
		if _, err := each(pair...); err != nil {
			t.Errorf("%v built file by file: %v", pair, err)
		}
	}
}
