package gen

import (
	"context"
	"fmt"
	"github.com/bootcore-dev/bootcore/talos"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Cluster DNS boots with the CNI (the published CoreDNS chart, from the lab's HelmRelease):
// its own inline manifest after the CNI's, Helm ownership for release kube-system/coredns, the
// kube-dns Service at the cluster-settings ClusterIP, replicas from cluster-settings, and the
// post-handover patch removes it with the others.
func TestClusterDNSBoots(t *testing.T) {
	root := labCopy(t)
	edit(t, root, "kubernetes/clusters/apps/cluster-settings.yaml", `COREDNS_REPLICAS: "2"`, `COREDNS_REPLICAS: "3"`)
	out := run(t, root)
	for cluster, c := range map[string]struct {
		version  string
		replicas int64
	}{"infra": {"v1.13.9", 2}, "apps": {"v1.14.1", 3}} {
		m := manifests(t, out, cluster, c.version)
		dns := m[talos.DNSManifest]
		if len(dns) == 0 {
			t.Fatalf("%s: no inline manifest %s", cluster, talos.DNSManifest)
		}
		var svc, deploy *unstructured.Unstructured
		for _, o := range dns {
			if o.GetLabels()[managedByLabel] != "Helm" || o.GetAnnotations()[releaseNameAnno] != "coredns" ||
				o.GetAnnotations()[releaseNamespaceAnn] != "kube-system" || o.GetLabels()[fluxNameLabel] != "coredns" {
				t.Errorf("%s: %s %s lacks Helm ownership metadata for release kube-system/coredns", cluster, o.GetKind(), o.GetName())
			}
			switch o.GetKind() {
			case "Service":
				svc = o.Unstructured
			case "Deployment":
				deploy = o.Unstructured
			case "Secret", "Job", "CustomResourceDefinition":
				t.Errorf("%s: the DNS manifest holds %s %s", cluster, o.GetKind(), o.GetName())
			}
		}
		if svc == nil || svc.GetName() != "kube-dns" || svc.GetNamespace() != "kube-system" {
			t.Fatalf("%s: no Service kube-system/kube-dns in %s", cluster, talos.DNSManifest)
		}
		if ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP"); ip != "10.96.0.10" {
			t.Errorf("%s: kube-dns clusterIP %q, want cluster-settings' CLUSTER_DNS_IP 10.96.0.10", cluster, ip)
		}
		if deploy == nil {
			t.Fatalf("%s: no CoreDNS Deployment in %s", cluster, talos.DNSManifest)
		}
		// The decoded number is an int64 or a float64, as the YAML decoder gives it.
		if n, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "replicas"); fmt.Sprint(n) != fmt.Sprint(c.replicas) {
			t.Errorf("%s: CoreDNS replicas %v, want COREDNS_REPLICAS %d", cluster, n, c.replicas)
		}
		post := string(out.Files["generated/"+cluster+"/post-handover.yaml"])
		if !strings.Contains(post, talos.DNSManifest) {
			t.Errorf("%s: the post-handover patch does not remove %s:\n%s", cluster, talos.DNSManifest, post)
		}
	}
}

// Talos's CoreDNS off (the lab's static patches) with no boot release for cluster DNS is an
// error naming the spec field: the hand-over would hang, as Flux's pods cannot resolve.
func TestClusterDNSMissingIsAnError(t *testing.T) {
	root := labCopy(t)
	edit(t, root, "bootstrap/bootcore.yaml", "dns:\n  helmRelease: kube-system/coredns\n", "")
	_, err := Run(context.Background(), Options{Repo: root, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no boot release provides cluster DNS") || !strings.Contains(err.Error(), "dns.helmRelease") {
		t.Fatalf("gen without dns: and with Talos's CoreDNS off: %v", err)
	}
}
