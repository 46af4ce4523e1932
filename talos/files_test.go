package talos

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootcore-dev/bootcore/internal/render"
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

// The boot objects are the objects of each of bootcore's manifests, split and decoded.
func TestReadBoot(t *testing.T) {
	b, err := ReadBoot(filepath.Join("..", "integration", "testdata", "lab", "generated", "apps", ControlPlaneFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.CRDs) == 0 || len(b.CNI) == 0 || len(b.DNS) == 0 {
		t.Fatalf("CRDs %d, CNI %d, DNS %d objects: want some of each", len(b.CRDs), len(b.CNI), len(b.DNS))
	}
	for _, o := range b.CRDs {
		if o.GetKind() != "CustomResourceDefinition" {
			t.Errorf("phase 0 holds a %s", o.GetKind())
		}
	}
	kinds := map[string]bool{}
	for _, o := range b.CNI {
		kinds[o.GetKind()+" "+o.GetName()] = true
	}
	if !kinds["DaemonSet cilium"] || !kinds["Deployment cilium-operator"] {
		t.Errorf("CNI objects lack the Cilium agent and operator: %v", kinds)
	}
	if len(b.All()) != len(b.CRDs)+len(b.CNI)+len(b.DNS) {
		t.Errorf("All has %d objects", len(b.All()))
	}
}

// The CRDs' identities are read without decoding their megabytes of bodies: the same
// apiVersion, kind and name as a full decode of the committed lab patch gives, in order.
func TestReadBootCRDIdentitiesAreTheFullDecodes(t *testing.T) {
	path := filepath.Join("..", "integration", "testdata", "lab", "generated", "infra", ControlPlaneFile)
	b, err := ReadBoot(path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := PatchManifests(path)
	if err != nil {
		t.Fatal(err)
	}
	var full []*render.Object
	for _, m := range ms {
		if m.Name == CRDManifest {
			objs, err := render.Split(string(m.Contents))
			if err != nil {
				t.Fatal(err)
			}
			for i := range objs {
				full = append(full, &objs[i])
			}
		}
	}
	if len(full) == 0 || len(full) != len(b.CRDs) {
		t.Fatalf("%d CRD identities, %d CRDs decoded in full", len(b.CRDs), len(full))
	}
	for i, o := range full {
		got := b.CRDs[i]
		if got.GetAPIVersion() != o.GetAPIVersion() || got.GetKind() != o.GetKind() || got.GetName() != o.GetName() || got.GetNamespace() != o.GetNamespace() {
			t.Errorf("CRD %d: %s %s %s, full decode %s %s %s", i, got.GetAPIVersion(), got.GetKind(), got.GetName(), o.GetAPIVersion(), o.GetKind(), o.GetName())
		}
		if len(got.Object) != 3 || len(got.Object["metadata"].(map[string]any)) != 1 {
			t.Errorf("CRD %s carries more than its identity: %v", got.GetName(), got.Object)
		}
	}
}
