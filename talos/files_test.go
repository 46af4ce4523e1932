package talos

import (
	"path/filepath"
	"strings"
	"testing"
)

// The agent and `bootcore status` read the boot objects from the control-plane patch gen
// wrote: both contracts of the committed lab output (infra on Talos v1.13, apps on v1.14) give
// bootcore's manifests by name, with the objects gen rendered into them.
func TestPatchManifestsReadsBothContracts(t *testing.T) {
	for _, cluster := range []string{"infra", "apps"} {
		path := filepath.Join("..", "integration", "testdata", "lab", "generated", cluster, ControlPlaneFile)
		ms, err := PatchManifests(path)
		if err != nil {
			t.Fatalf("%s: %v", cluster, err)
		}
		got := map[string]string{}
		for _, m := range ms {
			got[m.Name] = string(m.Contents)
		}
		for _, name := range Manifests {
			if got[name] == "" {
				t.Errorf("%s: no inline manifest %s (have %d manifests)", cluster, name, len(ms))
			}
		}
		if !strings.Contains(got[CNIManifest], "name: cilium-operator") || !strings.Contains(got[CRDManifest], "kind: CustomResourceDefinition") {
			t.Errorf("%s: the manifests lack the objects gen rendered", cluster)
		}
	}
	if _, err := PatchManifests(filepath.Join("..", "integration", "testdata", "lab", "bootstrap", "missing.yaml")); err == nil {
		t.Error("a missing patch file read without error")
	}
}
