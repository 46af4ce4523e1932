package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/talos"
)

// talosAdmissionVersion is the contract whose default machine config the bed's API server is
// configured from; both supported contracts default to the same admission plugins.
const talosAdmissionVersion = "v1.14.1"

// writeAdmissionConfig writes the AdmissionConfiguration that kube-apiserver gets on Talos: one
// plugin entry per admission plugin config of the control-plane machine config (machinery:
// config.Config.K8sAdmissionControlPluginConfigs, which are the v1alpha1
// cluster.apiServer.admissionControl entries or KubeAdmissionControlConfig documents). Talos's
// generated default is PodSecurity with enforce baseline and only kube-system exempt
// (machinery config/types/k8s/admission_control.go: DefaultPodSecurityAdmissionControlConfig),
// so a privileged pod outside kube-system is refused here as it is on Talos.
func writeAdmissionConfig(dir string) (string, error) {
	admissionOnce.Do(func() { admissionYAML, admissionErr = talosAdmissionConfig() })
	if admissionErr != nil {
		return "", admissionErr
	}
	path := filepath.Join(dir, "admission-config.yaml")
	return path, os.WriteFile(path, admissionYAML, 0o644)
}

// The configuration depends only on the contract's defaults, and generating a machine config
// makes a secrets bundle (an RSA key): once per process, not once per cluster start.
var (
	admissionOnce sync.Once
	admissionYAML []byte
	admissionErr  error
)

func talosAdmissionConfig() ([]byte, error) {
	cfg, err := talos.MachineConfig(talos.Options{
		ClusterName: "testbed", Endpoint: "https://127.0.0.1:6443",
		TalosVersion: talosAdmissionVersion, KubernetesVersion: "1.35.4",
	}, talos.RoleControlPlane)
	if err != nil {
		return nil, fmt.Errorf("admission configuration from Talos's default config: %w", err)
	}
	var plugins []map[string]any
	for _, p := range cfg.K8sAdmissionControlPluginConfigs() {
		plugins = append(plugins, map[string]any{"name": p.Name(), "configuration": p.Configuration()})
	}
	return yaml.Marshal(map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1",
		"kind":       "AdmissionConfiguration",
		"plugins":    plugins,
	})
}
