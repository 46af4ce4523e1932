package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Every file is written with its mode; when one cannot be written, none replaces what was
// there and no temporary file is left behind.
func TestWriteAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(a, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteAll(File{Path: a, Data: []byte("new a"), Mode: 0o644}, File{Path: b, Data: []byte("new b"), Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{a: "new a", b: "new b"} {
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v", path, got, err)
		}
	}
	if fi, _ := os.Stat(b); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of b = %v", fi.Mode().Perm())
	}

	missing := filepath.Join(dir, "no-such-dir", "c.yaml")
	if err := WriteAll(File{Path: a, Data: []byte("newer a"), Mode: 0o644}, File{Path: missing, Data: []byte("c"), Mode: 0o644}); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
	if got, _ := os.ReadFile(a); string(got) != "new a" {
		t.Errorf("a was replaced although the set failed: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files left in %s: %v", dir, entries)
	}
}

// A kubeconfig written over a readable file gets the new file's mode (0600), not the old one's.
func TestWriteReplacesModeToo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "new" || st.Mode().Perm() != 0o600 {
		t.Errorf("%q mode %v", data, st.Mode().Perm())
	}
}
