package kube

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

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

// CoreDNS is Ready only at the replica count cluster-settings asks for; the message shows
// expected vs actual either way.
func TestReplicas(t *testing.T) {
	d := parse(t, "spec: {replicas: 2}\nstatus: {readyReplicas: 2}\n")
	if ok, msg := Replicas(2, "COREDNS_REPLICAS")(d, nil); !ok || msg != "2/2 replicas ready, expected 2 (COREDNS_REPLICAS in cluster-settings)" {
		t.Errorf("2 of 2: %v %q", ok, msg)
	}
	if ok, msg := Replicas(3, "COREDNS_REPLICAS")(d, nil); ok || !strings.Contains(msg, "2/2 replicas ready, expected 3") {
		t.Errorf("want 3, have 2: %v %q", ok, msg)
	}
}

// Flux's Ready condition counts only for the generation it was computed for.
func TestFluxReadyNeedsCurrentGeneration(t *testing.T) {
	ks := parse(t, `
metadata: {generation: 3}
status:
  conditions:
    - {type: Ready, status: "True", reason: ReconciliationSucceeded, message: "Applied revision: main@sha1:abc", observedGeneration: 2}
`)
	if ok, msg := Flux(ks, nil); ok || !strings.Contains(msg, "generation 3 not observed yet") {
		t.Errorf("stale condition: %v %q", ok, msg)
	}
	unstructured.SetNestedField(ks.Object, int64(2), "metadata", "generation")
	if ok, msg := Flux(ks, nil); !ok || !strings.Contains(msg, "Applied revision: main@sha1:abc") {
		t.Errorf("current condition: %v %q", ok, msg)
	}
}

func parse(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	// As the API server's JSON decodes: integers are int64.
	data, err := yaml.YAMLToJSON([]byte("apiVersion: v1\nkind: Test\n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}

// A wait ends early on what will not become Ready by itself: Flux's Stalled at the current
// generation (not an old one), and kstatus' Failed (a Deployment past its progress deadline).
func TestGaveUp(t *testing.T) {
	stalled := parse(t, `
metadata: {generation: 2}
status:
  conditions:
    - {type: Stalled, status: "True", reason: RetriesExceeded, message: "Failed to install after 1 attempt(s)", observedGeneration: 2}
    - {type: Ready, status: "False", reason: InstallFailed, message: "boom", observedGeneration: 2}
`)
	if ok, msg := gaveUp(stalled, ""); !ok || !strings.Contains(msg, "RetriesExceeded") {
		t.Errorf("stalled: %v %q", ok, msg)
	}
	unstructured.SetNestedField(stalled.Object, int64(3), "metadata", "generation")
	if ok, _ := gaveUp(stalled, ""); ok {
		t.Error("a Stalled condition of an older generation ended the wait")
	}
	d := &unstructured.Unstructured{}
	if err := d.UnmarshalJSON([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","namespace":"y","generation":1},
		"spec":{"replicas":1},"status":{"observedGeneration":1,"conditions":[{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded"}]}}`)); err != nil {
		t.Fatal(err)
	}
	if ok, msg := gaveUp(d, ""); !ok || !strings.HasPrefix(msg, "Failed") {
		t.Errorf("deadline exceeded: %v %q", ok, msg)
	}
	d.Object["status"] = map[string]any{"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1)}
	if ok, _ := gaveUp(d, ""); ok {
		t.Error("a rolling-out Deployment ended the wait")
	}
}
