package fluxtree

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/resource"
)

// postBuild substitution (Flux's SubstituteVariables: YAML round trip and envsubst per
// object) is about half of a walk's CPU. It runs off the walk's goroutine, so that it overlaps
// the next Kustomization's kustomize build (builds are serialised, see build) on another core.
// What the walk observes stays that of a sequential walk:
//   - substitutions only read the tree's objects; flush waits for all of them before it adds
//     their objects, in walk order (the first Kustomization to apply an object wins, as before);
//   - a Kustomization whose substituteFrom objects are not in the tree yet flushes first, so its
//     variables are read from everything applied before it;
//   - every problem flushes first (fail), so problems and the first error keep the walk's order.

// substitution is the postBuild substitution of one build's objects.
type substitution struct {
	ks      *unstructured.Unstructured
	what    string
	done    chan struct{}
	results []substituted
}

type substituted struct {
	kind, name string
	obj        *Object
	err        error // substitution failed: a problem of the tree
	fatal      error // the object cannot be converted: stops the walk
}

func (t *Tree) substituteAsync(ctx context.Context, ks *unstructured.Unstructured, what string, resources []*resource.Resource) {
	job := &substitution{ks: ks, what: what, done: make(chan struct{})}
	t.inflight = append(t.inflight, job)
	t.workers <- struct{}{}
	go func() {
		defer close(job.done)
		defer func() { <-t.workers }()
		job.results = t.substitute(ctx, ks, what, resources)
	}()
}

// substitute must not write to the tree (it runs concurrently with the walk). It does what
// kustomize-controller does with each built object: SOPS decryption when spec.decryption
// asks for it, then postBuild substitution when spec.postBuild is set (without postBuild
// Flux substitutes nothing, and ${VAR} reaches the cluster as written).
func (t *Tree) substitute(ctx context.Context, ks *unstructured.Unstructured, what string, resources []*resource.Resource) []substituted {
	lookup := &objectReader{tree: t}
	targetNS, _, _ := unstructured.NestedString(ks.Object, "spec", "targetNamespace")
	_, postBuild, _ := unstructured.NestedMap(ks.Object, "spec", "postBuild")
	runtimeFrom := t.runtimeSubstituteFrom(ks)
	provider, _, _ := unstructured.NestedString(ks.Object, "spec", "decryption", "provider")
	out := make([]substituted, 0, len(resources))
	for _, res := range resources {
		r := substituted{kind: res.GetKind(), name: res.GetName()}
		encrypted := isSOPS(res)
		if encrypted && provider != "sops" {
			r.err = &sopsError{fmt.Errorf("%s %s is SOPS-encrypted but the Kustomization has no spec.decryption (provider sops): kustomize-controller refuses to apply it", res.GetKind(), res.GetName())}
			out = append(out, r)
			continue
		}
		if encrypted {
			m, err := t.decryptSOPS(res)
			if err != nil {
				r.err = err
				out = append(out, r)
				continue
			}
			if m == nil { // no key: decrypted in-cluster only
				u := &unstructured.Unstructured{Object: stripSOPS(res)}
				if targetNS != "" && u.GetNamespace() == "" {
					u.SetNamespace(targetNS)
				}
				r.obj = &Object{Unstructured: u, AppliedBy: ks.GetNamespace() + "/" + ks.GetName(), Encrypted: true}
				out = append(out, r)
				continue
			}
			dec, err := resourceFromMap(m)
			if err != nil {
				r.fatal = fmt.Errorf("%s: %s %s: %w", what, res.GetKind(), res.GetName(), err)
				return append(out, r)
			}
			res = dec
		}
		sub := res
		runtime := ""
		if postBuild {
			var err error
			sub, err = kustomize.SubstituteVariables(ctx, lookup, *ks, res, kustomize.SubstituteWithStrict(true))
			if err != nil && runtimeFrom != "" && strings.Contains(err.Error(), "variable not set") {
				// The variable may come from the Secret known only in-cluster.
				runtime = fmt.Sprintf("%v; postBuild.substituteFrom %s", err, runtimeFrom)
				sub, err = kustomize.SubstituteVariables(ctx, lookup, *ks, res, kustomize.SubstituteWithStrict(false))
			}
			if err != nil {
				r.err = err
				out = append(out, r)
				continue
			}
			if sub == nil { // substitution disabled by annotation
				sub = res
			}
		}
		m, err := sub.Map()
		if err != nil {
			r.fatal = fmt.Errorf("%s: %s %s: %w", what, res.GetKind(), res.GetName(), err)
			return append(out, r)
		}
		u := &unstructured.Unstructured{Object: m}
		if targetNS != "" && u.GetNamespace() == "" {
			u.SetNamespace(targetNS)
		}
		r.obj = &Object{Unstructured: u, AppliedBy: ks.GetNamespace() + "/" + ks.GetName(), Runtime: runtime}
		out = append(out, r)
	}
	return out
}

// runtimeSubstituteFrom names the substituteFrom Secrets of ks whose values are known only
// in-cluster (made outside Git, or SOPS-encrypted without a key here), "" when none.
func (t *Tree) runtimeSubstituteFrom(ks *unstructured.Unstructured) string {
	refs, _, _ := unstructured.NestedSlice(ks.Object, "spec", "postBuild", "substituteFrom")
	var names []string
	for _, r := range refs {
		ref, _ := r.(map[string]any)
		kind, _ := ref["kind"].(string)
		name, _ := ref["name"].(string)
		if kind != "Secret" {
			continue
		}
		o, ok := t.Get("", kind, ks.GetNamespace(), name)
		switch {
		case ok && o.Encrypted:
			names = append(names, fmt.Sprintf("Secret %s/%s (SOPS-encrypted; no age key given)", ks.GetNamespace(), name))
		case !ok:
			if why := t.runtimeSecret(ks.GetNamespace(), name); why != "" {
				names = append(names, fmt.Sprintf("Secret %s/%s (%s)", ks.GetNamespace(), name, why))
			}
		}
	}
	return strings.Join(names, ", ")
}

// flush waits for every running substitution, then adds their objects and records their
// problems in walk order.
func (t *Tree) flush() error {
	jobs := t.inflight
	t.inflight = nil
	for _, j := range jobs {
		<-j.done
	}
	for _, j := range jobs {
		for _, r := range j.results {
			switch {
			case r.fatal != nil:
				return r.fatal
			case r.err != nil:
				err := fmt.Errorf("%s: postBuild substitution in %s %s (%s): %w", j.what, r.kind, r.name, t.files.locateKind(r.kind, r.name), r.err)
				var se *sopsError
				if errors.As(r.err, &se) {
					err = fmt.Errorf("%s: %w", j.what, r.err)
				}
				if err := t.fail(j.ks, r.kind, r.name, err); err != nil {
					return err
				}
			default:
				t.add(r.obj)
			}
		}
	}
	return nil
}

// wait lets running substitutions finish (a walk that stopped early leaves none behind).
func (t *Tree) wait() {
	for _, j := range t.inflight {
		<-j.done
	}
	t.inflight = nil
}

// substituteFromRef is one entry of a Kustomization's spec.postBuild.substituteFrom.
type substituteFromRef struct {
	kind, name string
	optional   bool
}

func substituteFromRefs(ks *unstructured.Unstructured) []substituteFromRef {
	refs, _, _ := unstructured.NestedSlice(ks.Object, "spec", "postBuild", "substituteFrom")
	out := make([]substituteFromRef, 0, len(refs))
	for _, r := range refs {
		ref, _ := r.(map[string]any)
		kind, _ := ref["kind"].(string)
		name, _ := ref["name"].(string)
		optional, _ := ref["optional"].(bool)
		out = append(out, substituteFromRef{kind: kind, name: name, optional: optional})
	}
	return out
}

// substituteFromPresent says whether every substituteFrom object of ks (optional ones too) is
// already in the tree.
func (t *Tree) substituteFromPresent(ks *unstructured.Unstructured) bool {
	for _, ref := range substituteFromRefs(ks) {
		if _, ok := t.Get("", ref.kind, ks.GetNamespace(), ref.name); !ok {
			return false
		}
	}
	return true
}
