package fluxtree

import (
	"strings"
	"testing"
)

// FuzzSubstitute: Flux's substitution on any input either succeeds or errors; a defined
// variable is always replaced, and the input without ${ comes back unchanged.
func FuzzSubstitute(f *testing.F) {
	for _, s := range []string{"a: ${A}", "b: ${B:=x}", "c: $${C}", "${A/%x/y}", "${#A}", "${", "${A:-${B}}", "plain"} {
		f.Add(s, "value")
	}
	f.Fuzz(func(t *testing.T, in, value string) {
		vars := map[string]string{"A": value, "B": value}
		out, err := Substitute([]byte(in), vars)
		if err != nil {
			return
		}
		if !strings.Contains(in, "$") && string(out) != in {
			t.Fatalf("input without $ changed: %q -> %q", in, out)
		}
		if in == "${A}" && string(out) != value {
			t.Fatalf("${A} -> %q, want %q", out, value)
		}
	})
}
