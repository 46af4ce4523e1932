package agent

import (
	"bytes"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	kustomizev1 "github.com/fluxcd/pkg/apis/kustomize"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The release the agent installs in helm mode is the one helm-controller would: the
// HelmRelease's kustomize post-renderers run (here the lab's removal of the FluxInstance's
// distribution artifact), then helm-controller's origin labels.
func TestHelmInstallRunsTheHelmReleasePostRenderers(t *testing.T) {
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "flux-instance", Namespace: "flux-system"}}
	hr.Spec.PostRenderers = []helmv2.PostRenderer{{Kustomize: &helmv2.Kustomize{Patches: []kustomizev1.Patch{{
		Target: &kustomizev1.Selector{Kind: "FluxInstance"},
		Patch:  "- op: remove\n  path: /spec/distribution/artifact\n",
	}}}}}
	in := bytes.NewBufferString(`---
apiVersion: fluxcd.controlplane.io/v1
kind: FluxInstance
metadata:
  name: flux
  namespace: flux-system
spec:
  distribution:
    artifact: oci://ghcr.io/controlplaneio-fluxcd/flux-operator-manifests:latest
    version: 2.x
`)
	out, err := (&originLabels{hr: hr}).Run(in)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Contains(got, "artifact") || !strings.Contains(got, "version: 2.x") {
		t.Errorf("post-renderer not applied:\n%s", got)
	}
	for _, l := range []string{fluxNameLabel + ": flux-instance", fluxNamespaceLabel + ": flux-system"} {
		if !strings.Contains(got, l) {
			t.Errorf("origin label %q missing:\n%s", l, got)
		}
	}
}
