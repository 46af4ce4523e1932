package gen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/bootcore-dev/bootcore/internal/atomicfile"
)

// Paths lists the output files in a stable order.
func (o *Output) Paths() []string {
	paths := make([]string, 0, len(o.Files))
	for p := range o.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// Write writes every file that changed, all or nothing: all contents go to temporary files
// first, and only when all of them are written are they renamed into place.
func (o *Output) Write(repo string) ([]string, error) {
	var changed []string
	var files []atomicfile.File
	for _, p := range o.Paths() {
		dst := resolve(repo, p)
		if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, o.Files[p]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, fmt.Errorf("output %s: %w", filepath.Dir(dst), err)
		}
		files = append(files, atomicfile.File{Path: dst, Data: o.Files[p], Mode: 0o644})
		changed = append(changed, p)
	}
	if err := atomicfile.WriteAll(files...); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	return changed, nil
}

// Diff returns a unified diff between the files on disk and what gen would write; empty
// when they are identical.
func (o *Output) Diff(repo string) (string, error) {
	var b strings.Builder
	for _, p := range o.Paths() {
		old, err := os.ReadFile(resolve(repo, p))
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		if bytes.Equal(old, o.Files[p]) {
			continue
		}
		from := "a/" + p
		if os.IsNotExist(err) {
			from = "/dev/null"
		}
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(o.Files[p])),
			FromFile: from, ToFile: "b/" + p, Context: 3,
		})
		b.WriteString(d)
	}
	return b.String(), nil
}

// resolve places an output path: relative ones live in the repository, --out may be absolute.
func resolve(repo, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(repo, filepath.FromSlash(p))
}
