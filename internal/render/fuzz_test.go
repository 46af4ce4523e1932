package render

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

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

// FuzzEncode: Encode writes exactly what sigs.k8s.io/yaml.Marshal writes for objects as
// render.Split and unstructured decoding produce them (numbers as float64 or int64).
func FuzzEncode(f *testing.F) {
	f.Add("a: 1\nb: 1000000\nc: 1.5\nd: 1e21\ne: 9223372036854775807\ng: 18446744073709551615\nh: -0\ni: 1e-7\nj: 123456789012\n")
	f.Add("s: \"1e6\"\nt: 'true'\nu: null\nv: []\nw: {}\nx: [1, 2.5, \"x\", {y: z}]\nz: \"\\u2028 <>&\"\n")
	f.Add("description: |\n  multi\n  line\nk: \"trailing \"\nl: \"\\t tab\"\nm: ~\nn: .inf\no: 0x1F\n")
	f.Add("\"1\": one\n\"<<\": merge\n\"\": empty\nkey with spaces: v\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil || m == nil {
			return
		}
		withInt := map[string]any{"n": int64(len(doc)), "obj": m}
		for _, obj := range []map[string]any{m, withInt} {
			want, werr := yaml.Marshal(obj)
			got, gerr := Encode([]*unstructured.Unstructured{{Object: obj}})
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("errors differ: sigs.k8s.io/yaml %v, Encode %v", werr, gerr)
			}
			if string(got) != string(want) {
				t.Fatalf("Encode differs from sigs.k8s.io/yaml.Marshal:\n%s\nwant:\n%s", got, want)
			}
		}
	})
}

// FuzzDecode: decode returns what sigs.k8s.io/yaml.Unmarshal returns into a map, and fails
// where it fails.
func FuzzDecode(f *testing.F) {
	f.Add("a: 1\nb: 1000000\nc: 1.5\nd: 1e21\ne: 9223372036854775807\ng: 18446744073709551615\nh: -0\ni: 1e-7\nj: 123456789012\nk: 0x1F\nl: 0o17\nm: 1_000\n")
	f.Add("s: \"1e6\"\nt: 'true'\nu: null\nv: []\nw: {}\nx: [1, 2.5, \"x\", {y: z}]\nz: \"\\u2028 <>&\"\nyes: no\non: off\n")
	f.Add("description: |\n  multi\n  line\nn: .inf\no: .nan\np: 2001-12-14t21:59:43.10-05:00\nq: 2002-12-14\nr: !!binary aGVsbG8=\n")
	f.Add("1: one\ntrue: t\n1.5: f\n\"<<\": merge\n\"\": empty\nbase: &b {x: 1}\nmerged: {<<: *b, y: 2}\n")
	f.Add("- a\n- b\n")
	f.Add("just a string\n")
	f.Add("a: \"\\xff\"\nb: !!str 12\nc: !!int \"7\"\nd: !!float 3\ne: ~\n")
	f.Add("a: [\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var want map[string]any
		werr := yaml.Unmarshal([]byte(doc), &want)
		got, gerr := decode([]byte(doc))
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("errors differ: sigs.k8s.io/yaml %v, decode %v", werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decode differs from sigs.k8s.io/yaml.Unmarshal:\n%#v\nwant:\n%#v", got, want)
		}
	})
}
