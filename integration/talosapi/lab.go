package talosapi

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bootcore-dev/bootcore/internal/spec"
)

// ForCluster builds the Options of cluster name of the repository at repo (a bootcore
// repository whose gen output is written): its spec's endpoint and versions, its static
// patches (every-node, then control-plane), then gen's controlplane.yaml, in the order a
// node's config is built from them; kubeconfig is what Kubeconfig hands out.
func ForCluster(repo, name string, kubeconfig []byte) (Options, error) {
	s, err := spec.Load(filepath.Join(repo, spec.DefaultPath))
	if err != nil {
		return Options{}, err
	}
	c, ok := s.Cluster(name)
	if !ok {
		return Options{}, fmt.Errorf("%s has no cluster %s", spec.DefaultPath, name)
	}
	files := append(append([]string{}, c.Patches...), c.ControlPlanePatches...)
	files = append(files, filepath.Join(s.Output, name, "controlplane.yaml"))
	o := Options{ClusterName: name, Endpoint: c.Endpoint, KubernetesVersion: c.KubernetesVersion,
		TalosVersion: c.TalosVersion, Kubeconfig: kubeconfig}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(repo, f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return Options{}, err
		}
		o.Patches = append(o.Patches, data)
	}
	return o, nil
}
