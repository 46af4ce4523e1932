package status

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/talos"
)

// Required is what must be Ready on a cluster bootcore booted and handed over to Flux: the one
// list the agent waits for and `bootcore status` reports on.
type Required struct {
	// Boot are the Deployments and DaemonSets of the CNI and cluster DNS releases Talos applied
	// at boot (the agent's wait-cni waits for them).
	Boot []kube.Target
	// Handover are GitRepository flux-system, every Kustomization and HelmRelease of the
	// cluster's Flux tree, the FluxInstance (when Flux is installed with Helm) and the
	// workloads of agent.handover (the agent's handover waits for them).
	Handover []kube.Target
}

// Cluster is what a cluster's Required list is computed from.
type Cluster struct {
	Repo    string
	Spec    *spec.Spec
	Cluster spec.Cluster
	Tree    *fluxtree.Tree
	Boot    *talos.Boot
	// FluxInstance: Flux was installed with the flux-operator (the agent's helm install).
	FluxInstance bool
}

// OutDir is where gen wrote the cluster's patches: <output>/<cluster>.
func OutDir(repo string, s *spec.Spec, c spec.Cluster) string {
	out := s.Output
	if !filepath.IsAbs(out) {
		out = filepath.Join(repo, out)
	}
	return filepath.Join(out, c.Name)
}

// RequiredFor computes a cluster's Required list.
func RequiredFor(in Cluster) (Required, error) {
	var r Required
	for _, o := range slices.Concat(in.Boot.CNI, in.Boot.DNS) {
		gvk := o.GroupVersionKind()
		if gvk == kube.DaemonSet || gvk == kube.Deployment {
			r.Boot = append(r.Boot, kube.Target{Ref: kube.RefOf(o), Ready: kube.Workload})
		}
	}
	if len(r.Boot) == 0 {
		return r, fmt.Errorf("%s: the CNI manifest has no DaemonSet or Deployment", in.Boot.Path)
	}

	git := kube.Ref{GVK: kube.GitRepository, Namespace: "flux-system", Name: "flux-system"}
	r.Handover = append(r.Handover, kube.Target{Ref: git, Ready: kube.All(kube.Flux, kube.Revision)})
	for _, id := range fluxtree.SortedKeys(in.Tree.Kustomizations) {
		ks := in.Tree.Kustomizations[id]
		t := kube.Target{Ref: kube.Ref{GVK: kube.Kustomization, Namespace: ks.GetNamespace(), Name: ks.GetName()}, Ready: kube.All(kube.Flux, kube.AppliedSourceRevision)}
		if src, ok := kube.SourceOf(ks); ok {
			t.Needs = []kube.Ref{src}
		}
		r.Handover = append(r.Handover, t)
	}
	for _, o := range in.Tree.Objects {
		if o.GroupVersionKind().GroupKind() == kube.HelmRelease.GroupKind() {
			r.Handover = append(r.Handover, kube.Target{Ref: kube.Ref{GVK: kube.HelmRelease, Namespace: o.GetNamespace(), Name: o.GetName()}, Ready: kube.All(kube.Flux, kube.Revision)})
		}
	}
	settings, err := Settings(in.Repo, in.Cluster)
	if err != nil {
		return r, err
	}
	for _, w := range in.Spec.AgentOrDefault().Handover {
		ns, name := spec.SplitName(w.Name)
		gvk := kube.Deployment
		if w.Kind == "DaemonSet" {
			gvk = kube.DaemonSet
		}
		ready := kube.Workload
		if w.ReplicasFrom != "" {
			v, ok := settings[w.ReplicasFrom]
			if !ok {
				return r, fmt.Errorf("agent.handover %s: replicasFrom %s is not a key of %s", w.Name, w.ReplicasFrom, in.Cluster.Settings)
			}
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return r, fmt.Errorf("agent.handover %s: %s=%q in %s is not a number", w.Name, w.ReplicasFrom, v, in.Cluster.Settings)
			}
			ready = kube.All(kube.Workload, kube.Replicas(int64(n), w.ReplicasFrom))
		}
		r.Handover = append(r.Handover, kube.Target{Ref: kube.Ref{GVK: gvk, Namespace: ns, Name: name}, Ready: ready})
	}
	if in.FluxInstance {
		r.Handover = append(r.Handover, kube.Target{Ref: kube.Ref{GVK: kube.FluxInstance, Namespace: "flux-system", Name: "flux"}, Ready: kube.Flux})
	}
	return r, nil
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
