package kube

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A Kustomization is handed over once it applied its GitRepository's current artifact; the
// check reads the source from what the same read saw, never from the cluster itself.
func TestAppliedSourceRevision(t *testing.T) {
	ks := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
		"metadata": map[string]any{"name": "apps", "namespace": "flux-system"},
		"spec":     map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "flux-system"}},
		"status":   map[string]any{"lastAppliedRevision": "main@sha1:aaa"},
	}}
	src := func(rev string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
			"metadata": map[string]any{"name": "flux-system", "namespace": "flux-system"},
			"status":   map[string]any{"artifact": map[string]any{"revision": rev}},
		}}
	}
	want := Ref{GVK: GitRepository, Namespace: "flux-system", Name: "flux-system"}
	lookupOf := func(u *unstructured.Unstructured) Lookup {
		return func(r Ref) *unstructured.Unstructured {
			if keyOf(r) == keyOf(want) {
				return u
			}
			return nil
		}
	}
	for _, c := range []struct {
		name   string
		source *unstructured.Unstructured
		ready  bool
	}{
		{"source at the applied revision", src("main@sha1:aaa"), true},
		{"source moved on", src("main@sha1:bbb"), false},
		{"source not seen", nil, false},
	} {
		ok, msg := AppliedSourceRevision(ks, lookupOf(c.source))
		if ok != c.ready {
			t.Errorf("%s: ready=%v (%s), want %v", c.name, ok, msg, c.ready)
		}
	}
	if ref, ok := SourceOf(ks); !ok || ref != want {
		t.Errorf("SourceOf = %v %v, want %v", ref, ok, want)
	}
}
