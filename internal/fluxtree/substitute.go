package fluxtree

import (
	"context"
	"fmt"

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

// substitute must not write to the tree (it runs concurrently with the walk).
func (t *Tree) substitute(ctx context.Context, ks *unstructured.Unstructured, what string, resources []*resource.Resource) []substituted {
	lookup := &objectReader{tree: t}
	targetNS, _, _ := unstructured.NestedString(ks.Object, "spec", "targetNamespace")
	out := make([]substituted, 0, len(resources))
	for _, res := range resources {
		r := substituted{kind: res.GetKind(), name: res.GetName()}
		sub, err := kustomize.SubstituteVariables(ctx, lookup, *ks, res, kustomize.SubstituteWithStrict(true))
		if err != nil {
			r.err = err
			out = append(out, r)
			continue
		}
		if sub == nil { // substitution disabled by annotation
			sub = res
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
		r.obj = &Object{Unstructured: u, AppliedBy: ks.GetNamespace() + "/" + ks.GetName()}
		out = append(out, r)
	}
	return out
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

// substituteFromPresent says whether every substituteFrom object of ks (optional ones too) is
// already in the tree.
func (t *Tree) substituteFromPresent(ks *unstructured.Unstructured) bool {
	refs, _, _ := unstructured.NestedSlice(ks.Object, "spec", "postBuild", "substituteFrom")
	for _, r := range refs {
		ref, _ := r.(map[string]any)
		kind, _ := ref["kind"].(string)
		name, _ := ref["name"].(string)
		if _, ok := t.Get("", kind, ks.GetNamespace(), name); !ok {
			return false
		}
	}
	return true
}
