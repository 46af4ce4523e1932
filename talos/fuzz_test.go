package talos

import (
	"bytes"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
)

// FuzzGenerate: the patch builder turns any manifest name and contents into patches that
// Talos's own patch loader accepts, or into one error; never a panic.
func FuzzGenerate(f *testing.F) {
	f.Add("bootcore-cni", []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"), "v1.13.9")
	f.Add("bootcore-crds", []byte("a: |\n  trailing space \n\tb: tab\n"), "v1.14.1")
	f.Add("Bad_Name", []byte("x: y"), "v1.14.1")
	f.Add("n", []byte("---\n---\n"), "v9")
	f.Fuzz(func(t *testing.T, name string, contents []byte, version string) {
		o := Options{ClusterName: "c", Endpoint: "https://127.0.0.1:6443", TalosVersion: version, KubernetesVersion: "1.35.4",
			Manifests: []Manifest{{Name: name, Contents: contents}}, DisableKubeProxy: true}
		p, err := Generate(o)
		if err != nil {
			return
		}
		for role, data := range map[string][]byte{"controlplane": p.ControlPlane, "worker": p.Worker, "post-handover": p.PostHandover} {
			if _, err := configpatcher.LoadPatch(data); err != nil {
				t.Fatalf("%s patch does not load: %v\n%s", role, err, data)
			}
		}
		if !bytes.HasPrefix(p.ControlPlane, []byte(Header)) {
			t.Fatal("patch not marked as generated")
		}
	})
}
