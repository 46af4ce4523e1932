package spec

import (
	"strings"
	"testing"
)

const minimal = `apiVersion: bootcore.dev/v1alpha1
kind: Bootstrap
clusters:
  - name: main
    talosVersion: v1.13.9
    kubernetesVersion: 1.35.4
    endpoint: https://10.0.0.10:6443
    fluxSystem: kubernetes/flux/cluster
`

// A tree without cluster-settings or a CNI release still has a valid spec (check runs on
// it); the walk-scope settings are validated by field.
func TestWalkScopeFields(t *testing.T) {
	s, err := Parse([]byte(minimal + "gitRepository: {url: https://github.com/example/home-ops}\nbootstrapSecrets: [network/tunnel-id]\ncni: {helmRelease: kube-system/cilium, requireDriftDetection: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.GitRepository.URL == "" || s.BootstrapSecrets[0] != "network/tunnel-id" || !s.CNI.RequireDriftDetection || s.CNI.Name() != "cilium" {
		t.Errorf("parsed %+v", s)
	}
	if _, err := Parse([]byte(minimal)); err != nil {
		t.Errorf("spec without settings and cni: %v", err)
	}
	for extra, want := range map[string]string{
		"gitRepository: {name: flux-system/a, url: https://x}\n": "gitRepository: set either name or url",
		"gitRepository: {name: flux-system}\n":                   "gitRepository.name",
		"bootstrapSecrets: [tunnel-id]\n":                        "bootstrapSecrets[0]",
		"cni: {helmRelease: cilium}\n":                           "cni.helmRelease",
	} {
		if _, err := Parse([]byte(minimal + extra)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", extra, err, want)
		}
	}
}
