package gen

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// TreeOptions are the walk options the spec sets: which GitRepository is this repository
// and which Secrets exist in-cluster without being in Git (bootstrapSecrets, agent.secrets).
func TreeOptions(s *spec.Spec) fluxtree.Options {
	var o fluxtree.Options
	if g := s.GitRepository; g != nil {
		o.GitRepository, o.URL = g.Name, g.URL
	}
	o.RuntimeSecrets = append(o.RuntimeSecrets, s.BootstrapSecrets...)
	if s.Agent != nil {
		for _, sec := range s.Agent.Secrets {
			o.RuntimeSecrets = append(o.RuntimeSecrets, sec.Name)
		}
	}
	return o
}

// BootReleases are the HelmReleases gen renders: the CNI and the phase-0 releases.
func BootReleases(s *spec.Spec) []string {
	var ids []string
	if s.CNI.HelmRelease != "" {
		ids = append(ids, s.CNI.HelmRelease)
	}
	for _, r := range s.CRDs {
		if r.HelmRelease != "" {
			ids = append(ids, r.HelmRelease)
		}
	}
	return ids
}

// bootProblems returns the first walk problem of a Kustomization that leads to a boot
// release: one that applies it, its chart source or its valuesFrom objects, an ancestor of
// those, or one that applies what they substitute from. When a boot release is missing, any
// problem may be why, so the first one is returned.
func bootProblems(tree *fluxtree.Tree, problems []fluxtree.Problem, ids []string) error {
	if len(problems) == 0 {
		return nil
	}
	relevant := map[string]bool{}
	var mark func(appliedBy string)
	// markRefs marks what applies each object a list of {kind, name} references in obj names
	// (substituteFrom, valuesFrom: ConfigMaps and Secrets in obj's namespace).
	markRefs := func(obj map[string]any, ns string, path ...string) {
		refs, _, _ := unstructured.NestedSlice(obj, path...)
		for _, r := range refs {
			ref, _ := r.(map[string]any)
			kind, _ := ref["kind"].(string)
			n, _ := ref["name"].(string)
			if o, ok := tree.Get("", kind, ns, n); ok {
				mark(o.AppliedBy)
			}
		}
	}
	mark = func(id string) {
		if id == "" || relevant[id] {
			return
		}
		relevant[id] = true
		ns, name, _ := strings.Cut(id, "/")
		ks, ok := tree.Get(fluxtree.KustomizeGroup, "Kustomization", ns, name)
		if !ok {
			return
		}
		mark(ks.AppliedBy)
		markRefs(ks.Object, ns, "spec", "postBuild", "substituteFrom")
	}
	for _, id := range ids {
		ns, name, _ := strings.Cut(id, "/")
		hr, ok := tree.Get(fluxtree.HelmGroup, "HelmRelease", ns, name)
		if !ok {
			return fmt.Errorf("HelmRelease %s is not in the tree, and the walk had problems: %w", id, problems[0])
		}
		mark(hr.AppliedBy)
		for _, path := range [][]string{{"spec", "chart", "spec", "sourceRef"}, {"spec", "chartRef"}} {
			ref, _, _ := unstructured.NestedStringMap(hr.Object, path...)
			rns := ref["namespace"]
			if rns == "" {
				rns = ns
			}
			if o, ok := tree.Get(fluxtree.SourceGroup, ref["kind"], rns, ref["name"]); ok {
				mark(o.AppliedBy)
			}
		}
		markRefs(hr.Object, ns, "spec", "valuesFrom")
	}
	for _, p := range problems {
		if relevant[p.Kustomization] {
			return p.Err
		}
	}
	return nil
}
