package talosemu_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/talos"
)

const labRoot = "../testdata/lab"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// labConfig builds a cluster's control-plane machine config the way `talosctl gen config
// --config-patch-control-plane` would from the lab's static patches and gen's committed patch.
func labConfig(t *testing.T, cl spec.Cluster) []talos.Manifest {
	t.Helper()
	opts := talos.Options{ClusterName: cl.Name, Endpoint: cl.Endpoint, TalosVersion: cl.TalosVersion, KubernetesVersion: cl.KubernetesVersion}
	for _, p := range append(append([]string{}, cl.Patches...), cl.ControlPlanePatches...) {
		data, err := os.ReadFile(filepath.Join(labRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		opts.StaticPatches = append(opts.StaticPatches, talos.StaticPatch{Name: p, Data: data})
	}
	patch, err := os.ReadFile(filepath.Join(labRoot, "generated", cl.Name, "controlplane.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := talos.MachineConfig(opts, talos.RoleControlPlane, patch)
	if err != nil {
		t.Fatal(err)
	}
	return talos.InlineManifests(cfg)
}

// The lab tree's generated control-plane patches boot both lab clusters (Talos 1.13 and 1.14
// contracts): phase-0 CRDs established, Cilium rolled out, and only then the control plane Ready.
func TestLabPatchesBootBothClusters(t *testing.T) {
	s, err := spec.Load(filepath.Join(labRoot, spec.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	clusters := testbed.StartManyT(t, testbed.Options{Name: "infra"}, testbed.Options{Name: "apps"})
	for _, c := range clusters {
		cl, _ := s.Cluster(c.Name)
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			nodes, err := c.Nodes(ctx, testbed.LabelControlPlane)
			if err != nil || len(nodes) != 3 {
				t.Fatalf("control-plane nodes: %d, %v", len(nodes), err)
			}
			for _, n := range nodes {
				if testbed.NodeReady(&n) {
					t.Fatalf("node %s Ready before any CNI", n.Name)
				}
			}

			var objs []talosemu.Manifest
			for _, m := range labConfig(t, cl) {
				objs = append(objs, talosemu.Manifest{Name: m.Name, Contents: string(m.Contents)})
			}
			flat, err := talosemu.Objects(objs)
			if err != nil {
				t.Fatal(err)
			}
			node := &talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: t.Logf}
			res, err := node.ApplyUntilSuccess(ctx, flat, 2*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Created) != len(flat) {
				t.Errorf("created %d of %d objects", len(res.Created), len(flat))
			}

			crds := 0
			for _, o := range flat {
				if o.GetKind() == "CustomResourceDefinition" {
					crds++
					if err := c.WaitCRDEstablished(ctx, o.GetName(), time.Minute); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The published charts' CRDs: cert-manager 6, External Secrets 25, flux-operator 4.
			if crds != 35 {
				t.Errorf("phase 0 booted %d CRDs, want 35", crds)
			}
			if err := c.WaitDaemonSetRolledOut(ctx, "kube-system", "cilium", 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitDeploymentRolledOut(ctx, "kube-system", "cilium-operator", 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitNodesReady(ctx, testbed.LabelControlPlane, true, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			// The chart's crds/ file was left to helm-controller: Cilium's own CRD does not exist yet.
			if _, err := c.Get(ctx, crdGVR, "", "ciliumnetworkpolicies.cilium.io"); err == nil {
				t.Error("ciliumnetworkpolicies.cilium.io exists: phase 1 must not carry the chart's crds/")
			}
			// Every control-plane node applies the same manifests at every boot: nothing changes.
			again, err := (&talosemu.Node{Name: "controlplane-2", Config: c.Config, Logf: t.Logf}).ApplyUntilSuccess(ctx, flat, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Created) != 0 || len(again.Existing) != len(flat) {
				t.Errorf("second boot: created %v, existing %d of %d", again.Created, len(again.Existing), len(flat))
			}
		})
	}
}

// Talos applies its own CoreDNS, kube-proxy and Flannel unless the machine config turns each
// off. A default config has all three (both contracts); a patch that turns only Flannel off
// leaves the other two on; the lab's patches (its static patch turning CoreDNS off, gen's patch
// turning the CNI and kube-proxy off) leave only Talos's bootstrap RBAC and token.
func TestTalosOwnManifestsFollowTheConfig(t *testing.T) {
	ids := func(cfg config.Config) []string {
		var out []string
		for _, m := range talosemu.BootstrapManifests(cfg) {
			out = append(out, m.ID)
		}
		return out
	}
	always := []string{"00-kubelet-bootstrapping-token", "01-csr-approver-role-binding", "01-csr-node-bootstrap", "01-csr-renewal-role-binding", "11-kube-config-in-cluster", "11-talos-node-rbac-template"}
	all := sorted(append(slices.Clone(always), "05-flannel", "10-kube-proxy", "11-core-dns", "11-core-dns-svc"))
	for _, contract := range []string{"v1.13", "v1.14"} {
		cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{TalosVersion: contract})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(cfg); !slices.Equal(got, all) {
			t.Errorf("default %s config: Talos's manifests %v, want %v", contract, got, all)
		}
	}
	noFlannel := []byte("apiVersion: v1alpha1\nkind: KubeFlannelCNIConfig\n$patch: delete\n")
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{TalosVersion: "v1.14"}, noFlannel)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(cfg), sorted(append(slices.Clone(always), "10-kube-proxy", "11-core-dns", "11-core-dns-svc")); !slices.Equal(got, want) {
		t.Errorf("Flannel deleted: Talos's manifests %v, want %v", got, want)
	}

	s, err := spec.Load(filepath.Join(labRoot, spec.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range s.Clusters {
		var patches []string
		for _, p := range append(append([]string{}, cl.Patches...), cl.ControlPlanePatches...) {
			patches = append(patches, filepath.Join(labRoot, p))
		}
		patches = append(patches, filepath.Join(labRoot, "generated", cl.Name, "controlplane.yaml"))
		cfg, err := talosemu.MachineConfigFromFiles(talosemu.ConfigOptions{ClusterName: cl.Name, Endpoint: cl.Endpoint,
			KubernetesVersion: cl.KubernetesVersion, TalosVersion: cl.TalosVersion}, patches...)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(cfg); !slices.Equal(got, always) {
			t.Errorf("lab cluster %s: Talos's manifests %v, want only %v", cl.Name, got, always)
		}
	}
}
