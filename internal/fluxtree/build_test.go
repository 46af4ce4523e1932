package fluxtree

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"

	"github.com/bootcore-dev/bootcore/talos"
)

func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// The walk builds on an in-memory copy: the repository is never written to (Flux's
// generator creates kustomization.yaml files), and kustomize sees what Flux's artifact
// holds: nothing outside the repository, no hidden directories.
func TestLoadNeverWritesTheRepositoryAndStaysInside(t *testing.T) {
	root := writeTree(t, baseTree(nil)) // clusters/c1 has no kustomization.yaml: generated
	before := listFiles(t, root)
	tree, err := Load(context.Background(), root, "clusters/c1/flux-system")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tree.Kustomizations["flux-system/apps"]; !ok {
		t.Fatal("apps not reached")
	}
	if after := listFiles(t, root); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("repository changed by Load:\nbefore %v\nafter  %v", before, after)
	}

	outside := filepath.Join(filepath.Dir(root), filepath.Base(root)+"-outside.yaml")
	if err := os.WriteFile(outside, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: outside, namespace: apps}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(outside) })
	hidden := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden, namespace: apps}\n"
	for name, ref := range map[string]string{"outside": "../../" + filepath.Base(outside), "hidden": ".cache/hidden.yaml"} {
		t.Run(name, func(t *testing.T) {
			kust := strings.Replace(baseTree(nil)["apps/kustomization.yaml"], "release.yaml]", "release.yaml, "+ref+"]", 1)
			root := writeTree(t, baseTree(map[string]string{"apps/kustomization.yaml": kust, "apps/.cache/hidden.yaml": hidden}))
			_, err := Load(context.Background(), root, "clusters/c1/flux-system")
			if err == nil || !strings.Contains(err.Error(), "kustomize build apps") {
				t.Fatalf("Load = %v, want a kustomize build error for %s", err, ref)
			}
		})
	}
}

// A kustomization's openapi field changes kyaml's global schema; the next build must start
// from the built-in schema again, as with Flux's kustomize.Build.
func TestBuildSchemaDoesNotLeak(t *testing.T) {
	mem := filesys.MakeFsInMemory()
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
	for p, c := range map[string]string{
		"/a/kustomization.yaml": "resources: [cm.yaml]\nopenapi: {path: schema.json}\n",
		"/a/schema.json":        `{"definitions": {}}`,
		"/a/cm.yaml":            cm,
		"/b/kustomization.yaml": "resources: [cm.yaml]\n",
		"/b/cm.yaml":            cm,
	} {
		if err := mem.WriteFile(p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := build(mem, "/b"); err != nil {
		t.Fatal(err)
	}
	if schemaDirty {
		t.Fatal("a build without openapi marked the schema dirty: every build would decode it again")
	}
	if _, _, err := build(mem, "/a"); err != nil {
		t.Fatal(err)
	}
	if !schemaDirty || openapi.GetSchemaVersion() == builtinSchema {
		t.Fatalf("after a custom schema: dirty=%v version=%q", schemaDirty, openapi.GetSchemaVersion())
	}
	if _, _, err := build(mem, "/b"); err != nil {
		t.Fatal(err)
	}
	if v := openapi.GetSchemaVersion(); v != builtinSchema {
		t.Fatalf("schema of the next build = %q, want the built-in %q", v, builtinSchema)
	}
}

// Under WithCache a second walk of the same repository and cluster is the first one's tree
// (bootcore check and its gen --check walk once); a walk with problems is not reused, and
// without the cache every Load walks again.
func TestWithCacheWalksOnce(t *testing.T) {
	root := writeTree(t, baseTree(nil))
	ctx := WithCache(context.Background())
	first, problems, err := LoadAll(ctx, root, "clusters/c1/flux-system")
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	if again, err := Load(ctx, root, "./clusters/c1/flux-system/"); err != nil || again != first {
		t.Errorf("Load under the cache walked again (%v)", err)
	}
	if fresh, err := Load(context.Background(), root, "clusters/c1/flux-system"); err != nil || fresh == first {
		t.Errorf("Load without the cache reused a tree (%v)", err)
	}

	bad := writeTree(t, baseTree(map[string]string{"clusters/c1/apps.yaml": strings.Replace(baseTree(nil)["clusters/c1/apps.yaml"], "./apps", "./nowhere", 1)}))
	if _, problems, _ := LoadAll(ctx, bad, "clusters/c1/flux-system"); len(problems) == 0 {
		t.Fatal("no problem for a missing path")
	}
	if _, err := Load(ctx, bad, "clusters/c1/flux-system"); err == nil {
		t.Error("Load reused a walk that had problems")
	}
}

// The walk skips decoding gen's Talos patches (megabytes of inline manifests, no Kubernetes
// object) and still indexes every other file, gen's agent RBAC included.
func TestIndexSkipsOnlyGeneratedTalosPatches(t *testing.T) {
	if generatedHeader != talos.Header {
		t.Fatalf("generatedHeader %q is not talos.Header %q", generatedHeader, talos.Header)
	}
	lab, err := filepath.Abs("../../integration/testdata/lab")
	if err != nil {
		t.Fatal(err)
	}
	patches, _ := filepath.Glob(filepath.Join(lab, "generated", "*", "*.yaml"))
	if len(patches) != 8 {
		t.Fatalf("want the lab's 8 generated files, found %v", patches)
	}
	for _, p := range patches {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want := !strings.HasSuffix(p, "agent-rbac.yaml")
		if got := isTalosPatch(data); got != want {
			t.Errorf("%s: isTalosPatch = %v, want %v", p, got, want)
		}
	}
	_, idx, err := snapshot(lab)
	if err != nil {
		t.Fatal(err)
	}
	idx.declarations()
	for key, files := range idx.where {
		for _, f := range files {
			if strings.HasPrefix(f, "generated/") && !strings.HasSuffix(f, "agent-rbac.yaml") {
				t.Errorf("%s indexed from the Talos patch %s", key, f)
			}
		}
	}
	in := map[string]bool{}
	for _, f := range idx.where["Role/bootcore-agent-boot-objects"] {
		in[f] = true
	}
	if !in["generated/apps/agent-rbac.yaml"] || !in["generated/infra/agent-rbac.yaml"] {
		t.Errorf("the agent RBAC's Role is indexed in %v, want both clusters' agent-rbac.yaml", in)
	}
	if got := idx.where["HelmRelease/cilium"]; len(got) == 0 {
		t.Error("the lab's Cilium HelmRelease is not indexed")
	}
	for _, doc := range []string{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n", talos.Header + "apiVersion: v1\nkind: ConfigMap\n"} {
		if isTalosPatch([]byte(doc)) {
			t.Errorf("isTalosPatch(%q) = true", doc)
		}
	}
}
