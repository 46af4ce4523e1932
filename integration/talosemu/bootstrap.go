package talosemu

import (
	"embed"
	"strings"

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	"github.com/siderolabs/talos/pkg/machinery/config"
)

// talosBootstrap holds Talos's own rendered bootstrap manifests (see PROVENANCE.md there).
//
//go:embed testdata/talos-bootstrap/*.yaml
var talosBootstrap embed.FS

// bootstrapManifest is one of Talos's own manifests: its ID and the template outputs it
// holds, in Talos's order (manifest.go, ManifestController.render).
type bootstrapManifest struct {
	id    string
	files []string
	on    func(config.Config) bool
}

// bootstrapManifests follows ManifestController.render; the conditions follow
// ControlPlaneController.manageManifestsConfig (control_plane.go): CoreDNS and kube-proxy are on
// when their config is present and enabled (K8sCoreDNSConfig, K8sProxyConfig: v1alpha1
// cluster.coreDNS / cluster.proxy up to 1.13, the KubeCoreDNSConfig / KubeProxyConfig documents
// from 1.14), Flannel when a Flannel config is present (cluster.network.cni flannel, or the
// KubeFlannelCNIConfig document), the Talos API CRD when Kubernetes Talos API access is configured.
var bootstrapManifests = []bootstrapManifest{
	{"00-kubelet-bootstrapping-token", []string{"kubelet-bootstrapping-token"}, always},
	{"01-csr-node-bootstrap", []string{"csr-node-bootstrap"}, always},
	{"01-csr-approver-role-binding", []string{"csr-approver-role-binding"}, always},
	{"01-csr-renewal-role-binding", []string{"csr-renewal-role-binding"}, always},
	{"11-kube-config-in-cluster", []string{"kubeconfig-in-cluster"}, always},
	{"11-talos-node-rbac-template", []string{"talos-nodes-rbac-cluster-role-binding", "talos-nodes-rbac-cluster-role"}, always},
	{"11-core-dns", []string{"coredns-service-account", "coredns-cluster-role", "coredns-cluster-role-binding", "coredns-configmap-cluster-domain", "coredns-deployment"}, CoreDNSOn},
	{"11-core-dns-svc", []string{"coredns-service-ipv4"}, CoreDNSOn},
	{"05-flannel", []string{"flannel-cluster-role", "flannel-cluster-role-binding", "flannel-service-account", "flannel-configmap-v4", "flannel-daemonset"}, FlannelOn},
	{"10-kube-proxy", []string{"kube-proxy-daemonset", "kube-proxy-service-account", "kube-proxy-cluster-role-binding"}, KubeProxyOn},
	{"13-talos-service-account-crd", []string{"talos-service-account-crd"}, func(c config.Config) bool { return c.K8sTalosAPIAccessConfig() != nil }},
}

func always(config.Config) bool { return true }

// CoreDNSOn reports whether Talos applies its own CoreDNS for cfg.
func CoreDNSOn(cfg config.Config) bool {
	c := cfg.K8sCoreDNSConfig()
	return c != nil && c.Enabled()
}

// FlannelOn reports whether Talos applies Flannel for cfg.
func FlannelOn(cfg config.Config) bool { return cfg.K8sFlannelCNIConfig() != nil }

// KubeProxyOn reports whether Talos applies kube-proxy for cfg.
func KubeProxyOn(cfg config.Config) bool {
	c := cfg.K8sProxyConfig()
	return c != nil && c.Enabled()
}

// BootstrapManifests returns the manifests Talos applies of its own for cfg (CoreDNS, kube-proxy,
// Flannel, bootstrap RBAC and token), with Talos's IDs, sorted by ID as InlineManifests is.
func BootstrapManifests(cfg config.Config) []Manifest {
	var out []Manifest
	for _, m := range bootstrapManifests {
		if !m.on(cfg) {
			continue
		}
		var docs []string
		for _, f := range m.files {
			data, err := talosBootstrap.ReadFile("testdata/talos-bootstrap/" + f + ".yaml")
			if err != nil {
				panic("talosemu: embedded Talos manifest missing: " + err.Error()) // a build defect, not input
			}
			docs = append(docs, strings.TrimSpace(string(data)))
		}
		out = append(out, Manifest{ID: m.id, Name: m.id[3:], Contents: strings.Join(docs, "\n---\n") + "\n"})
	}
	return sortManifests(out)
}

// AllManifests is what Talos's manifest apply gets for cfg: its own and the inline manifests,
// sorted by ID (inline manifests are "99-<name>", so they come last).
func AllManifests(cfg config.Config) []Manifest {
	return sortManifests(append(BootstrapManifests(cfg), InlineManifests(cfg)...))
}

// OwnInventoryKeys are the inventory keys (go-kubernetes' format) of the objects Talos applies
// of its own for cfg: what its inventory keeps after a hand-over.
func OwnInventoryKeys(cfg config.Config) (map[string]bool, error) {
	objs, err := Objects(BootstrapManifests(cfg))
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, o := range objs {
		ref, err := object.RuntimeToObjMeta(o)
		if err != nil {
			return nil, err
		}
		keys[ref.String()] = true
	}
	return keys, nil
}
