package fluxtree_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bootcore-dev/bootcore/bench"
	"github.com/bootcore-dev/bootcore/internal/fluxtree"
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
