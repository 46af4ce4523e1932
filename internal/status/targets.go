package status

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// GroupVersionKinds of the objects the validation steps read.
var (
	GVKDeployment    = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	GVKDaemonSet     = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	GVKGitRepository = schema.GroupVersionKind{Group: fluxtree.SourceGroup, Version: "v1", Kind: "GitRepository"}
	GVKKustomization = schema.GroupVersionKind{Group: fluxtree.KustomizeGroup, Version: "v1", Kind: "Kustomization"}
	GVKHelmRelease   = schema.GroupVersionKind{Group: fluxtree.HelmGroup, Version: "v2", Kind: "HelmRelease"}
	GVKFluxInstance  = schema.GroupVersionKind{Group: "fluxcd.controlplane.io", Version: "v1", Kind: "FluxInstance"}
)

// Target is one object that must be Ready.
type Target struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
	Ready     Readiness
}

func (t Target) String() string { return Ref(t.GVK.Kind, t.Namespace, t.Name) }

// Ref names an object the way kubectl users read it: "Kind namespace/name".
func Ref(kind, namespace, name string) string {
	if namespace == "" {
		return kind + " " + name
	}
	return kind + " " + namespace + "/" + name
}

// Settings reads the cluster-settings ConfigMap file Flux substitutes from (clusters[].settings,
// relative to repo).
func Settings(repo string, c spec.Cluster) (map[string]string, error) {
	p := c.Settings
	if !filepath.IsAbs(p) {
		p = filepath.Join(repo, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("clusters[%s].settings: %w", c.Name, err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Settings, err)
	}
	return cm.Data, nil
}

// HandoverWorkloads are agent.handover's Deployments and DaemonSets: rolled out, and a
// Deployment with replicasFrom at the replica count cluster-settings holds.
func HandoverWorkloads(a spec.Agent, c spec.Cluster, settings map[string]string) ([]Target, error) {
	var out []Target
	for _, w := range a.Handover {
		ns, name := spec.SplitName(w.Name)
		gvk := GVKDeployment
		if w.Kind == "DaemonSet" {
			gvk = GVKDaemonSet
		}
		ready := Workload
		if w.ReplicasFrom != "" {
			v, ok := settings[w.ReplicasFrom]
			if !ok {
				return nil, fmt.Errorf("agent.handover %s: replicasFrom %s is not a key of %s", w.Name, w.ReplicasFrom, c.Settings)
			}
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("agent.handover %s: %s=%q in %s is not a number", w.Name, w.ReplicasFrom, v, c.Settings)
			}
			ready = All(Workload, Replicas(int64(n), w.ReplicasFrom))
		}
		out = append(out, Target{GVK: gvk, Namespace: ns, Name: name, Ready: ready})
	}
	return out, nil
}

// CNIWorkloads are the Cilium agent DaemonSet and operator Deployment of the CNI HelmRelease.
// Cilium's chart names them cilium and cilium-operator whatever the release is called, in the
// release's namespace; naming them here (rather than listing what exists) makes a deleted one
// show up as missing.
func CNIWorkloads(s *spec.Spec) []Target {
	ns, _ := spec.SplitName(s.CNI.HelmRelease)
	return []Target{
		{GVK: GVKDaemonSet, Namespace: ns, Name: "cilium", Ready: Workload},
		{GVK: GVKDeployment, Namespace: ns, Name: "cilium-operator", Ready: Workload},
	}
}
