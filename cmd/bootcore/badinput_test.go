package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/testutil"
)

type badInput struct {
	Name  string            `json:"name"`
	Args  []string          `json:"args"`
	Write map[string]string `json:"write"`
	Edit  *struct {
		Path string `json:"path"`
		Old  string `json:"old"`
		New  string `json:"new"`
	} `json:"edit"`
	Want []string `json:"want"`
	Code int      `json:"code"`
	// VendorCNI puts the published Cilium chart into the repository (a GitRepository chart)
	// before the edits, for cases that change the chart itself.
	VendorCNI bool `json:"vendorCNI"`
}

// snapshot hashes every file under dir, so a test can prove nothing was written or changed.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = fmt.Sprintf("%x", sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBadInput runs the corpus in testdata/badinput: each case exits non-zero with one
// message naming what is wrong, and writes or changes no file.
func TestBadInput(t *testing.T) {
	data, err := os.ReadFile("testdata/badinput/cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []badInput
	if err := yaml.UnmarshalStrict(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 30 {
		t.Fatalf("corpus has %d cases, want at least 30", len(cases))
	}
	cache := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			repo := testutil.CopyDir(t, lab)
			if tc.VendorCNI {
				testutil.VendorCNI(t, lab, repo)
			}
			for p, content := range tc.Write {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(repo, p), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if e := tc.Edit; e != nil {
				p := filepath.Join(repo, e.Path)
				old, err := os.ReadFile(p)
				if err != nil || !strings.Contains(string(old), e.Old) {
					t.Fatalf("edit: %s does not contain %q (%v)", e.Path, e.Old, err)
				}
				if err := os.WriteFile(p, []byte(strings.Replace(string(old), e.Old, e.New, 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := tc.Args
			if args == nil {
				args = []string{"gen", "--repo", "{repo}"}
			}
			args = append(append([]string{}, args...), "--cache-dir", cache)
			for i, a := range args {
				a = strings.ReplaceAll(a, "{file}", filepath.Join(repo, "bootstrap/bootcore.yaml"))
				args[i] = strings.ReplaceAll(a, "{repo}", repo)
			}
			before := snapshot(t, repo)
			stdout, stderr, code := execute(t, args...)
			want := tc.Code
			if want == 0 {
				want = 2
			}
			if code != want {
				t.Errorf("exit %d, want %d; stdout %q", code, want, stdout)
			}
			for _, w := range tc.Want {
				if !strings.Contains(stderr, w) {
					t.Errorf("message does not mention %q:\n%s", w, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("a failed run printed to stdout: %q", stdout)
			}
			if after := snapshot(t, repo); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("files were written or changed")
			}
		})
	}
}
