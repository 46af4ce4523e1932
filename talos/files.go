package talos

import (
	"fmt"
	"os"

	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
)

// The Talos patches gen writes for each cluster, in <output>/<cluster>/.
const (
	ControlPlaneFile = "controlplane.yaml"  // --config-patch-control-plane: the boot manifests
	WorkerFile       = "worker.yaml"        // --config-patch-worker
	PostHandoverFile = "post-handover.yaml" // applied once Flux owns the boot objects
)

// bootcore's inline manifests. The names are stable: the post-handover patch removes exactly
// these, and the agent reads the boot objects from them.
const (
	CRDManifest = "bootcore-crds" // phase 0: CustomResourceDefinitions only
	CNIManifest = "bootcore-cni"  // phase 1: the CNI release
	DNSManifest = "bootcore-dns"  // phase 1: the cluster DNS release (when the spec boots one)
)

// Manifests are all of bootcore's inline manifest names (a cluster without a dns: release has
// no bootcore-dns).
var Manifests = []string{CRDManifest, CNIManifest, DNSManifest}

// PatchManifests reads the inline manifests a machine-config patch carries, through Talos
// machinery's own patch loader: v1alpha1 cluster.inlineManifests (Talos < 1.14 contracts) and
// KubeInlineManifestConfig documents (>= 1.14) alike.
func PatchManifests(path string) ([]Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := configpatcher.LoadPatch(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	smp, ok := p.(configpatcher.StrategicMergePatch)
	if !ok {
		return nil, fmt.Errorf("%s: a JSON patch, not a machine-config patch with inline manifests", path)
	}
	cfg, err := container.New(smp.Documents()...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return InlineManifests(cfg), nil
}
