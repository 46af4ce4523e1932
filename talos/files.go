package talos

import (
	"fmt"
	"os"
	"slices"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/internal/render"
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
	cfg, err := loadPatch(path)
	if err != nil {
		return nil, err
	}
	return InlineManifests(cfg), nil
}

func loadPatch(path string) (config.Config, error) {
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
	return cfg, nil
}

// Boot is what Talos applied at boot from bootcore's inline manifests in a control-plane
// patch: phase 0 (CRDs) and phase 1 (the CNI, and cluster DNS when the spec boots it).
type Boot struct {
	Path string // the patch they were read from
	// CRDs are the CustomResourceDefinitions' identities only (apiVersion, kind, name): their
	// bodies are megabytes, and nothing after boot needs them.
	CRDs []*unstructured.Unstructured
	CNI  []*unstructured.Unstructured
	DNS  []*unstructured.Unstructured
}

// All are the boot objects in the order Talos's manifests carry them.
func (b *Boot) All() []*unstructured.Unstructured {
	return slices.Concat(b.CRDs, b.CNI, b.DNS)
}

// ReadBoot reads the boot objects from the control-plane patch gen wrote: exactly what Talos
// applied.
func ReadBoot(path string) (*Boot, error) {
	cfg, err := loadPatch(path)
	if err != nil {
		return nil, fmt.Errorf("reading the patch bootcore gen wrote (run bootcore gen first): %w", err)
	}
	// The manifests' contents as machinery holds them: the CRD bundle is megabytes, and a
	// copy of it is most of what the agent's memory peaks at.
	byName := map[string]string{}
	for _, m := range cfg.K8sInlineManifestConfigs() {
		byName[m.Name()] = m.Contents()
	}
	if _, ok := byName[CNIManifest]; !ok {
		return nil, fmt.Errorf("%s has no inline manifest %q: is it a patch bootcore gen wrote?", path, CNIManifest)
	}
	b := &Boot{Path: path}
	if b.CRDs, err = render.SplitMeta(byName[CRDManifest]); err != nil {
		return nil, fmt.Errorf("%s: inline manifest %s: %w", path, CRDManifest, err)
	}
	for _, part := range []struct {
		name string
		objs *[]*unstructured.Unstructured
	}{{CNIManifest, &b.CNI}, {DNSManifest, &b.DNS}} {
		objs, err := render.Split(byName[part.name])
		if err != nil {
			return nil, fmt.Errorf("%s: inline manifest %s: %w", path, part.name, err)
		}
		for _, o := range objs {
			*part.objs = append(*part.objs, o.Unstructured)
		}
	}
	return b, nil
}
