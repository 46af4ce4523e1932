package kube

import (
	"context"
	"fmt"

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
		if stalled, msg := Stalled(st.Object); stalled {
			st.Stalled, st.Message = true, msg
		}
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
