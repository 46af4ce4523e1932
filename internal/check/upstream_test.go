package check

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/internal/testutil"
)

// withRealChart replaces the lab copy's charts/<name> with the published package
// (integration/testdata/upstream-charts, unmodified).
func withRealChart(t *testing.T, root, name, pkg string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(root, "charts", name)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../../integration/testdata/upstream-charts/" + pkg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(h.Name, name+"/")
		if h.Typeflag != tar.TypeReg || !ok || strings.Contains(rel, "..") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Write(t, filepath.Join(root, "charts", name), rel, string(data))
	}
}

// Defects 3 and 4 of issue 13: with the real External Secrets CRDs in phase 0 (their field
// descriptions quote "-----BEGIN PRIVATE KEY-----"), check passes the tree gen wrote, with
// descriptions kept and with crdDescriptions: strip (which check's gen --check reads too).
func TestCheckPassesRealExternalSecrets(t *testing.T) {
	for _, mode := range []string{spec.CRDDescriptionsKeep, spec.CRDDescriptionsStrip} {
		t.Run(mode, func(t *testing.T) {
			root := labCopy(t)
			withRealChart(t, root, "external-secrets", "external-secrets-2.9.0.tgz")
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
