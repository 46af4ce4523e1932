package kube

import (
	"context"
	"fmt"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// State is what one read or wait last saw of a target.
type State struct {
	Target
	Object  *unstructured.Unstructured // nil when it does not exist (or its kind is not served)
	Ready   bool
	Message string
	// Stalled: Flux gave up on it at its current generation (Message says why).
	Stalled bool
	// Err is a read error other than "not found".
	Err error
}

// seen is what a read or a wait saw of each object, by kind (without version), namespace, name.
type seen map[object.ObjMetadata]*unstructured.Unstructured

func keyOf(r Ref) object.ObjMetadata {
	return object.ObjMetadata{GroupKind: r.GVK.GroupKind(), Namespace: r.Namespace, Name: r.Name}
}

func (s seen) lookup(r Ref) *unstructured.Unstructured { return s[keyOf(r)] }

// refs are the targets and what their checks need, once each.
func refs(targets []Target) []Ref {
	var out []Ref
	have := map[object.ObjMetadata]bool{}
	add := func(r Ref) {
		if k := keyOf(r); !have[k] {
			have[k] = true
			out = append(out, r)
		}
	}
	for _, t := range targets {
		add(t.Ref)
		for _, n := range t.Needs {
			add(n)
		}
	}
	return out
}

// evaluate applies t's check to what was seen.
func (s seen) evaluate(t Target) State {
	st := State{Target: t, Object: s.lookup(t.Ref)}
	if st.Object == nil {
		st.Message = "not found"
		return st
	}
	st.Ready, st.Message = t.Ready(st.Object, s.lookup)
	if !st.Ready {
		st.Stalled, st.Message = gaveUp(st.Object, st.Message)
	}
	return st
}

// Read reads the targets, and what their checks need, once, and evaluates them: one State per
// target, in order. A missing object, or one whose kind is not served, is not Ready ("not
// found"); another read error is the State's Err.
func (c *Client) Read(ctx context.Context, targets []Target) []State {
	s := seen{}
	errs := map[object.ObjMetadata]error{}
	for _, r := range refs(targets) {
		u, err := c.Get(ctx, r)
		switch {
		case err == nil:
			s[keyOf(r)] = u
		case apierrors.IsNotFound(err):
		case meta.IsNoMatchError(err):
			errs[keyOf(r)] = nil
		default:
			errs[keyOf(r)] = err
		}
	}
	out := make([]State, 0, len(targets))
	for _, t := range targets {
		st := s.evaluate(t)
		if err, ok := errs[keyOf(t.Ref)]; ok {
			if err == nil {
				st.Message = "kind not served (CRD not installed)"
			} else {
				st.Err, st.Message = err, "cannot read: "+err.Error()
			}
		}
		out = append(out, st)
	}
	return out
}

// AllReady reads the targets once: whether every one is Ready, and if not, which is not and why.
// A read error other than "not found" is returned as the error.
func (c *Client) AllReady(ctx context.Context, targets []Target) (bool, string, error) {
	for _, st := range c.Read(ctx, targets) {
		if st.Err != nil {
			return false, "", st.Err
		}
		if !st.Ready {
			return false, st.String() + ": " + st.Message, nil
		}
	}
	return true, fmt.Sprintf("%d objects Ready", len(targets)), nil
}

// gaveUp says whether an object that is not Ready will stay so without a change to it, and
// why: Flux stopped retrying (Stalled), or kstatus computes Failed (a Deployment past its
// progress deadline), as flux's own wait fails fast on.
func gaveUp(u *unstructured.Unstructured, msg string) (bool, string) {
	if stalled, why := Stalled(u); stalled {
		return true, why
	}
	// An object with a Stalled condition is Flux's: Stalled above judged it for the current
	// generation, which kstatus does not look at in conditions.
	if _, flux := Condition(u, "Stalled"); flux {
		return false, msg
	}
	if res, err := status.Compute(u); err == nil && res.Status == status.FailedStatus {
		return true, "Failed: " + res.Message
	}
	return false, msg
}
