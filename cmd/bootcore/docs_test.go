package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra/doc"
)

var update = flag.Bool("update", false, "regenerate docs/cli")

// docs/cli is generated from the commands; this fails when a flag or help text changed
// without `make docs`.
func TestCLIDocsUpToDate(t *testing.T) {
	const dir = "../../docs/cli"
	root := newRootCmd()
	root.DisableAutoGenTag = true
	root.InitDefaultCompletionCmd() // cobra adds it lazily at Execute
	out := t.TempDir()
	if err := doc.GenMarkdownTree(root, out); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(dir, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, _ := filepath.Glob(filepath.Join(out, "*.md"))
	have, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	if len(want) != len(have) {
		t.Errorf("docs/cli has %d pages, the CLI %d: run make docs", len(have), len(want))
	}
	for _, p := range want {
		got, _ := os.ReadFile(filepath.Join(dir, filepath.Base(p)))
		exp, _ := os.ReadFile(p)
		if string(got) != string(exp) {
			t.Errorf("docs/cli/%s is stale: run make docs", filepath.Base(p))
		}
	}
}
