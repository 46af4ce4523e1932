package render

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"helm.sh/helm/v3/pkg/releaseutil"
)

// FuzzSplitManifests checks splitManifests against the Helm function whose splitting it
// reproduces (releaseutil.SplitManifests in BySplitManifestsOrder): the same documents, byte for
// byte, except that each keeps its end through the newline before the next separator (what
// Helm's kube client decodes from the release manifest, see splitManifests).
func FuzzSplitManifests(f *testing.F) {
	for _, s := range []string{
		"", "---", "---\n", "a", "a\n---\nb", "---a\n---b", "a\n---\n---\nb", "a \t\n \n---  \n\nb\n---",
		"a\r\n---\r\nb", "\v---\na", "a\n--- b\n----\nc", "x\n\f\n---\f---\n---\ny", " \n---\n",
		"---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# Source: c/templates/b.yaml\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		docs := releaseutil.SplitManifests(s)
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		want := make([]string, 0, len(keys))
		for _, k := range keys {
			want = append(want, docs[k])
		}
		got := splitManifests(s)
		trimmed := make([]string, len(got))
		for i, d := range got {
			trimmed[i] = strings.TrimRightFunc(d, unicode.IsSpace)
			if i < len(got)-1 && d != "" && !strings.HasSuffix(d, "\n") {
				t.Fatalf("splitManifests(%q): document %d %q lost the newline before its separator", s, i, d)
			}
		}
		if !slices.Equal(trimmed, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("splitManifests(%q)\n got %q\nwant %q", s, got, want)
		}
	})
}
