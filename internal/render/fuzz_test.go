package render

import "testing"

// FuzzSplit: the multi-document splitter never panics, and every object it returns has
// apiVersion, kind and name.
func FuzzSplit(f *testing.F) {
	f.Add("---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# Source: c/templates/b.yaml\n")
	f.Add("apiVersion: v1\nkind: List\nitems: []\nmetadata: {name: l}\n---\n---\n")
	f.Add("---\n: : :\n")
	f.Add("kind: [1, 2]\n")
	f.Fuzz(func(t *testing.T, manifest string) {
		objs, err := Split(manifest)
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
				t.Fatalf("object without identity: %v", o.Object)
			}
		}
	})
}
