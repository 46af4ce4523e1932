package spec

import (
	"os"
	"testing"
)

// FuzzParse: any bytes give a spec that validates or one error; never a panic.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../bootstrap/bootcore.yaml", "../../integration/testdata/lab/bootstrap/bootcore.yaml"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("apiVersion: bootcore.dev/v1alpha1\nkind: Bootstrap\nclusters: [{name: a}]\n"))
	f.Add([]byte("clusters: [[[]]]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if s != nil {
				t.Fatal("a spec returned together with an error")
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse accepted a spec that does not validate: %v", err)
		}
	})
}
