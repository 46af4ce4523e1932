package agent

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/talos"
)

// The boot CNI as an inline manifest, shaped like Cilium's agent where the bed looks
// (kube-system/cilium, k8s-app=cilium, tolerates every taint), with Flannel deleted.
const cniOnlyPatch = `apiVersion: v1alpha1
kind: KubeFlannelCNIConfig
$patch: delete
---
apiVersion: v1alpha1
kind: KubeInlineManifestConfig
name: cni
manifest: |
  apiVersion: apps/v1
  kind: DaemonSet
  metadata: {name: cilium, namespace: kube-system}
  spec:
    selector: {matchLabels: {k8s-app: cilium}}
    template:
      metadata: {labels: {k8s-app: cilium}}
      spec:
        hostNetwork: true
        tolerations: [{operator: Exists}]
        containers: [{name: cilium-agent, image: quay.io/cilium/cilium:v1.19.6}]
`

// Without a DNS boot release cluster DNS is Talos's own CoreDNS, which Talos applies at boot
// and which runs only once the CNI does: the agent waits for its kube-system/kube-dns Service
// to have ready endpoints, as it does for a booted CoreDNS, before it installs Flux.
func TestClusterDNSIsTalosCoreDNSWithoutADNSRelease(t *testing.T) {
	c, k := onBed(t, "talosdns")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	noDNSRelease := &talos.Boot{Path: "generated/infra/controlplane.yaml"}
	p := &waitCNIPhase{env{inputs: &inputs{opts: Options{PollInterval: time.Second}, boot: noDNSRelease}, k: k, rep: NewReporter(os.Stderr, true)}}

	ok, msg, err := p.clusterDNSReady(ctx)
	if err != nil || ok || msg != "cluster DNS (Talos's own CoreDNS): Service kube-system/kube-dns has no ready endpoint yet" {
		t.Fatalf("before boot: ready %v, %q, %v", ok, msg, err)
	}

	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, []byte(cniOnlyPatch))
	if err != nil {
		t.Fatal(err)
	}
	if !talosemu.CoreDNSOn(cfg) {
		t.Fatal("the config turned Talos's CoreDNS off")
	}
	if _, err := (&talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: t.Logf}).Boot(ctx, cfg, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ok, msg, err = p.clusterDNSReady(ctx)
		return ok, err
	})
	if err != nil || !strings.HasPrefix(msg, "cluster DNS (Talos's own CoreDNS): Service kube-system/kube-dns has 2 ready endpoint(s)") {
		t.Errorf("after boot: %q, %v", msg, err)
	}
}
