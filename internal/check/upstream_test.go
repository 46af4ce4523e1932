package check

import (
	"context"
	"testing"

	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// Defects 3 and 4 of issue 13: with the real External Secrets CRDs in phase 0 (their field
// descriptions quote "-----BEGIN PRIVATE KEY-----"), check passes the tree gen wrote, with
// descriptions kept and with crdDescriptions: strip (which check's gen --check reads too).
func TestCheckPassesRealExternalSecrets(t *testing.T) {
	for _, mode := range []string{spec.CRDDescriptionsKeep, spec.CRDDescriptionsStrip} {
		t.Run(mode, func(t *testing.T) {
			root := labCopy(t)
			if mode != spec.CRDDescriptionsKeep { // keep is the default: the spec says nothing
				edit(t, root, spec.DefaultPath, "\nmirrors:", "\ncrdDescriptions: "+mode+"\nmirrors:")
			}
			out, err := gen.Run(context.Background(), gen.Options{Repo: root, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := out.Write(root); err != nil {
				t.Fatal(err)
			}
			r, err := Run(context.Background(), root, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range r.Findings {
				if f.Severity == Error {
					t.Errorf("%s:%d [%s] %s", f.File, f.Line, f.Check, f.Message)
				}
			}
		})
	}
}
