package agent

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/bootcore-dev/bootcore/talos"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// bootObjects are the objects Talos created at boot from bootcore's inline manifests: phase 0
// (CRDs) and phase 1 (the CNI, and cluster DNS when the spec boots it). The agent reads them
// from the control-plane patch bootcore gen wrote, because that patch is exactly what Talos
// applied.
type bootObjects struct {
	Path string
	CRDs []*unstructured.Unstructured
	CNI  []*unstructured.Unstructured
	DNS  []*unstructured.Unstructured
}

func (b *bootObjects) all() []*unstructured.Unstructured {
	return append(append(append([]*unstructured.Unstructured(nil), b.CRDs...), b.CNI...), b.DNS...)
}

// readBootObjects parses a control-plane patch of either contract: v1alpha1
// cluster.inlineManifests (Talos <= 1.13) or KubeInlineManifestConfig documents (>= 1.14).
func readBootObjects(path string) (*bootObjects, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the patch bootcore gen wrote (run bootcore gen first): %w", err)
	}
	manifests := map[string]string{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if doc["kind"] == "KubeInlineManifestConfig" {
			name, _ := doc["name"].(string)
			contents, _ := doc["manifest"].(string)
			manifests[name] = contents
			continue
		}
		cluster, _ := doc["cluster"].(map[string]any)
		items, _ := cluster["inlineManifests"].([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			name, _ := m["name"].(string)
			contents, _ := m["contents"].(string)
			manifests[name] = contents
		}
	}
	b := &bootObjects{Path: path}
	if _, ok := manifests[talos.CNIManifest]; !ok {
		return nil, fmt.Errorf("%s has no inline manifest %q: is it a patch bootcore gen wrote?", path, talos.CNIManifest)
	}
	if b.CRDs, err = decodeObjects(manifests[talos.CRDManifest]); err != nil {
		return nil, fmt.Errorf("%s: inline manifest %s: %w", path, talos.CRDManifest, err)
	}
	if b.CNI, err = decodeObjects(manifests[talos.CNIManifest]); err != nil {
		return nil, fmt.Errorf("%s: inline manifest %s: %w", path, talos.CNIManifest, err)
	}
	if b.DNS, err = decodeObjects(manifests[talos.DNSManifest]); err != nil {
		return nil, fmt.Errorf("%s: inline manifest %s: %w", path, talos.DNSManifest, err)
	}
	return b, nil
}

func decodeObjects(stream string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(stream)), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// yamlDocs encodes objects as one YAML stream (for dry-run output and the bundle).
func yamlDocs(objs []*unstructured.Unstructured) []byte {
	var b bytes.Buffer
	for _, o := range objs {
		data, _ := yaml.Marshal(o.Object)
		b.WriteString("---\n")
		b.Write(data)
	}
	return b.Bytes()
}
