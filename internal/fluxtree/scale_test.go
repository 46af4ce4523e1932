package fluxtree_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootcore-dev/bootcore/bench"
	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// Substitutions run concurrently with the builds (substitute.go); the walk must still produce
// the same objects in the same order every time, with every object's variables substituted
// from the cluster-settings ConfigMap (run with -race to check the concurrency).
func TestLoadIsDeterministicWithConcurrentSubstitution(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	if err := bench.WriteScaleTree(dir, 60); err != nil {
		t.Fatal(err)
	}
	var first []string
	for run := 0; run < 3; run++ {
		tree, err := fluxtree.Load(context.Background(), dir, "kubernetes/clusters/scale/flux-system")
		if err != nil {
			t.Fatal(err)
		}
		if len(tree.Kustomizations) < 60 {
			t.Fatalf("walked %d Kustomizations", len(tree.Kustomizations))
		}
		var got []string
		for _, o := range tree.Objects {
			got = append(got, fmt.Sprintf("%s %s/%s by %s %v", o.GetKind(), o.GetNamespace(), o.GetName(), o.AppliedBy, o.GetLabels()))
			if o.GetKind() == "Namespace" && o.GetLabels()["cluster"] != "scale" {
				t.Errorf("Namespace %s: label cluster=%q, want scale (substituted)", o.GetName(), o.GetLabels()["cluster"])
			}
		}
		if run == 0 {
			first = got
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("run %d walked a different tree than run 0", run)
		}
	}
}

// Flat kustomizations are built in chunks (flat.go): the walk must find the same tree, problems
// and skips with chunks as with the one build, on the scale tree, the lab tree and every
// real-shaped tree of check's corpus. Chunks of 1 take the chunked build for every
// kustomization of more than one plain file; the count of chunked builds makes sure it was
// taken.
func TestChunkedBuildsWalkTheSameTree(t *testing.T) {
	scale := filepath.Join(t.TempDir(), "scale")
	// 71 entries in kubernetes/apps: two chunks of the default size.
	if err := bench.WriteScaleTree(scale, 70); err != nil {
		t.Fatal(err)
	}
	roots := []string{scale, "../../integration/testdata/lab"}
	corpus, err := filepath.Glob("../check/testdata/corpus/*")
	if err != nil || len(corpus) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	roots = append(roots, corpus...)
	before := fluxtree.FlatBuilds()
	for _, root := range roots {
		s, err := spec.Load(filepath.Join(root, spec.DefaultPath))
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range s.Clusters {
			walk := func(chunk int) string {
				defer fluxtree.SetFlatChunk(chunk)()
				tree, problems, err := fluxtree.LoadAll(context.Background(), root, cl.FluxSystem, gen.TreeOptions(s))
				if err != nil {
					return "error: " + err.Error()
				}
				var b strings.Builder
				for _, o := range tree.Objects {
					fmt.Fprintf(&b, "%s by %s encrypted=%v runtime=%q %v\n", keyString(o), o.AppliedBy, o.Encrypted, o.Runtime, o.Object)
				}
				fmt.Fprintln(&b, fluxtree.SortedKeys(tree.Kustomizations))
				for _, sk := range tree.Skipped {
					fmt.Fprintf(&b, "skip %+v\n", sk)
				}
				for _, p := range problems {
					fmt.Fprintf(&b, "problem %s %s:%d %v\n", p.Kustomization, p.File, p.Line, p.Err)
				}
				return b.String()
			}
			one, chunked := walk(1<<30), walk(1)
			if chunked != one {
				t.Errorf("%s cluster %s: the walk with chunked builds differs:\n%s\nwith the one build:\n%s", root, cl.Name, chunked, one)
			}
			// Only the scale tree has a list longer than the default chunk.
			if root == scale && walk(64) != one {
				t.Errorf("%s cluster %s: the walk with the default chunks differs", root, cl.Name)
			}
		}
	}
	if fluxtree.FlatBuilds() == before {
		t.Fatal("no chunked build was taken")
	}
}

func keyString(o *fluxtree.Object) string {
	return fmt.Sprintf("%s %s/%s", o.GroupVersionKind(), o.GetNamespace(), o.GetName())
}
