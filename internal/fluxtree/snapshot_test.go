package fluxtree

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// fleetTree is baseTree with a second cluster c2 (its own entry and settings, the same apps)
// and a nested kustomization under apps (kustomize reads apps/sub/kustomization.yaml from the
// file system, not from Flux's generator).
func fleetTree() map[string]string {
	files := baseTree(map[string]string{
		"apps/kustomization.yaml": `
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [repo.yaml, release.yaml, sub]
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
		"apps/sub/kustomization.yaml": `
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [cm.yaml]
`,
		"apps/sub/cm.yaml": `
apiVersion: v1
kind: ConfigMap
metadata: {name: sub, namespace: apps}
data: {cluster: "${CLUSTER_NAME}"}
`,
	})
	for name, content := range files {
		if strings.HasPrefix(name, "clusters/c1/") {
			files["clusters/c2/"+strings.TrimPrefix(name, "clusters/c1/")] = strings.ReplaceAll(strings.ReplaceAll(content, "clusters/c1", "clusters/c2"), "CLUSTER_NAME: c1", "CLUSTER_NAME: c2")
		}
	}
	return files
}

// objectsOf is a tree's objects as text, in the walk's order.
func objectsOf(t *testing.T, tree *Tree) string {
	t.Helper()
	var b strings.Builder
	for _, o := range tree.Objects {
		data, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s by %s: %s\n", keyOf(o.Unstructured), o.AppliedBy, data)
	}
	return b.String()
}

func TestCowFSViewIsItsOwn(t *testing.T) {
	root := writeTree(t, fleetTree())
	s, err := readSnapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.view()
	b, _ := s.view()
	existing := filepath.Join(root, "apps/kustomization.yaml")
	created := filepath.Join(root, "clusters/c1/kustomization.yaml")
	orig, err := b.ReadFile(existing)
	if err != nil {
		t.Fatal(err)
	}
	restoreExisting, err := replaceFile(a, existing, []byte("written: a\n"))
	if err != nil {
		t.Fatal(err)
	}
	restoreCreated, err := replaceFile(a, created, []byte("created: a\n"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(fsys filesys.FileSystem, p string) string {
		data, err := fsys.ReadFile(p)
		if err != nil {
			return "error: " + err.Error()
		}
		return string(data)
	}
	if got := read(a, existing); got != "written: a\n" {
		t.Errorf("view a reads %q after writing it", got)
	}
	if got := read(a, created); got != "created: a\n" || !a.Exists(created) || a.IsDir(created) {
		t.Errorf("view a reads %q (exists %t) after creating it", got, a.Exists(created))
	}
	for name, fsys := range map[string]filesys.FileSystem{"view b": b, "the snapshot": s.mem} {
		if got := read(fsys, existing); got != string(orig) {
			t.Errorf("%s reads %q, written in view a", name, got)
		}
		if fsys.Exists(created) {
			t.Errorf("%s has the file view a created", name)
		}
		if names, _ := fsys.ReadDir(filepath.Dir(created)); slices.Contains(names, "kustomization.yaml") {
			t.Errorf("%s lists the file view a created: %v", name, names)
		}
	}
	if names, _ := a.ReadDir(filepath.Dir(created)); !slices.Contains(names, "kustomization.yaml") || !slices.Contains(names, "apps.yaml") {
		t.Errorf("view a lists %v, want its own file and the snapshot's", names)
	}
	if m, _ := a.Glob(filepath.Join(root, "clusters/c1/*.yaml")); !slices.Contains(m, created) {
		t.Errorf("view a's glob %v misses its own file", m)
	}
	if m, _ := b.Glob(filepath.Join(root, "clusters/c1/*.yaml")); slices.Contains(m, created) {
		t.Errorf("view b's glob %v has view a's file", m)
	}
	if d, f, err := a.CleanedAbs(created); err != nil || string(d) != filepath.Dir(created) || f != "kustomization.yaml" {
		t.Errorf("view a: CleanedAbs(%s) = %s, %s, %v", created, d, f, err)
	}
	if _, err := filesys.ConfirmDir(a, filepath.Join(root, "apps")); err != nil {
		t.Errorf("view a: ConfirmDir(apps): %v", err)
	}

	// Removing a snapshot file hides it in that view only.
	values := filepath.Join(root, "apps/values.yaml")
	if err := a.RemoveAll(values); err != nil {
		t.Fatal(err)
	}
	if a.Exists(values) || !b.Exists(values) || !s.mem.Exists(values) {
		t.Errorf("after view a removed %s: a has it %t, b %t, the snapshot %t", values, a.Exists(values), b.Exists(values), s.mem.Exists(values))
	}
	if m, _ := a.Glob(filepath.Join(root, "apps/*.yaml")); slices.Contains(m, values) {
		t.Errorf("view a's glob %v has the file it removed", m)
	}
	if err := a.WriteFile(values, []byte("back: true\n")); err != nil || read(a, values) != "back: true\n" {
		t.Errorf("view a: writing a removed file back: %v", err)
	}

	// Restoring leaves view a as the snapshot.
	if err := restoreCreated(); err != nil {
		t.Fatal(err)
	}
	if err := restoreExisting(); err != nil {
		t.Fatal(err)
	}
	if a.Exists(created) || read(a, existing) != string(orig) {
		t.Errorf("view a after restoring: created file exists %t, %s reads %q", a.Exists(created), existing, read(a, existing))
	}

	// Opening a file twice, in two views, works: the snapshot's node is never opened.
	for _, fsys := range []filesys.FileSystem{a, b, a} {
		f, err := fsys.Open(existing)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(data, orig) {
			t.Errorf("Open(%s) reads %q, %v", existing, data, err)
		}
		_ = f.Close()
	}

	// What a view cannot keep to itself is refused.
	if err := a.MkdirAll(filepath.Join(root, "new")); err == nil {
		t.Error("view a created a directory")
	}
	if _, err := a.Create(filepath.Join(root, "apps/new.yaml")); err == nil {
		t.Error("view a created a file with Create")
	}
	if err := a.WriteFile(filepath.Join(root, "nodir/x.yaml"), nil); err == nil {
		t.Error("view a wrote a file into a directory the snapshot does not have")
	}
	if err := a.RemoveAll(filepath.Join(root, "apps")); err == nil || !s.mem.IsDir(filepath.Join(root, "apps")) {
		t.Errorf("view a removed a directory of the snapshot: %v", err)
	}
	if s.mem.IsDir(filepath.Join(root, "new")) || s.mem.Exists(filepath.Join(root, "apps/new.yaml")) {
		t.Error("the snapshot changed")
	}
}

// A walk under WithSnapshot builds on its own view: what another walk wrote into its view
// (here a nested kustomization file, which kustomize reads from the file system) does not
// reach it, and it walks the same tree as a walk with a snapshot of its own.
func TestSharedSnapshotWalksAreIsolated(t *testing.T) {
	root := writeTree(t, fleetTree())
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, c := range []string{"c1", "c2"} {
		tree, err := Load(context.Background(), root, "clusters/"+c+"/flux-system")
		if err != nil {
			t.Fatal(err)
		}
		want[c] = objectsOf(t, tree)
		if !strings.Contains(want[c], `"cluster":"`+c+`"`) {
			t.Fatalf("cluster %s: the nested ConfigMap is not in its tree:\n%s", c, want[c])
		}
	}

	ctx := WithSnapshot(context.Background())
	if WithSnapshot(ctx) != ctx {
		t.Error("WithSnapshot under WithSnapshot made a second sharing")
	}
	before := readSnapshots.Load()
	other, _, err := viewOf(ctx, abs)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFile(filepath.Join(abs, "apps/sub/kustomization.yaml"), []byte("resources: []\n")); err != nil {
		t.Fatal(err)
	}

	// The walks of both clusters, twice each, concurrently (as gen runs them).
	got := make([]string, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tree, problems, err := LoadAll(ctx, root, fmt.Sprintf("clusters/c%d/flux-system", i%2+1))
			if err == nil && len(problems) > 0 {
				err = problems[0].Err
			}
			if errs[i] = err; err == nil {
				got[i] = objectsOf(t, tree)
			}
		}()
	}
	wg.Wait()
	for i := range got {
		c := fmt.Sprintf("c%d", i%2+1)
		if errs[i] != nil {
			t.Fatalf("cluster %s: %v", c, errs[i])
		}
		if got[i] != want[c] {
			t.Errorf("cluster %s on the shared snapshot:\n%s\nwant (own snapshot):\n%s", c, got[i], want[c])
		}
	}
	if n := readSnapshots.Load() - before; n != 1 {
		t.Errorf("%d snapshots read for five views of one repository under WithSnapshot, want 1", n)
	}
	if data, _ := other.ReadFile(filepath.Join(abs, "apps/sub/kustomization.yaml")); string(data) != "resources: []\n" {
		t.Errorf("the walks changed another view's file: %q", data)
	}
}
