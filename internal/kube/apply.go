package kube

import (
	"context"
	"fmt"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Change is what an apply did, or in a dry run would do, to one object.
type Change struct {
	Object string     // "Kind namespace/name"
	Action ssa.Action // created, configured or unchanged
	// Note says why a dry run could not tell more, e.g. the kind is not served before the
	// apply that installs its CRD.
	Note string
}

// Apply server-side applies objs as the client's field manager, taking ownership of the fields
// it sets (the only writer until Flux takes over): CRDs, Namespaces and ClusterRoles first,
// waited for, then the rest, so one call can create a kind and its objects. An object that would
// not change is not written (ssa compares a server-side dry run with the live object), so a
// re-run on a cluster in the wanted state writes nothing. Changes are in the order of objs.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured) ([]Change, error) {
	rm, err := c.resources()
	if err != nil {
		return nil, err
	}
	cs, err := rm.ApplyAllStaged(ctx, objs, ssa.DefaultApplyOptions())
	if err != nil {
		return nil, err
	}
	actions := map[object.ObjMetadata]ssa.Action{}
	for _, e := range cs.Entries {
		actions[e.ObjMetadata] = e.Action
	}
	out := make([]Change, 0, len(objs))
	for _, o := range objs {
		out = append(out, Change{Object: DescribeObject(o), Action: actions[object.UnstructuredToObjMetadata(o)]})
	}
	return out, nil
}

// Diff is Apply's dry run: what applying each object would do, with nothing written. Values of
// Secrets never leave the API server's answer (ssa masks them, and a Change carries none).
func (c *Client) Diff(ctx context.Context, objs []*unstructured.Unstructured) ([]Change, error) {
	rm, err := c.resources()
	if err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(objs))
	for _, o := range objs {
		ch := Change{Object: DescribeObject(o)}
		e, _, _, err := rm.Diff(ctx, o.DeepCopy(), ssa.DefaultDiffOptions())
		switch {
		case err == nil:
			ch.Action = e.Action
		case meta.IsNoMatchError(err):
			// A CRD the same apply would install first.
			ch.Action, ch.Note = ssa.CreatedAction, "its kind is not served yet: "+err.Error()
		case apierrors.IsNotFound(err) && o.GetNamespace() != "":
			// Its namespace does not exist yet; an earlier step of the run creates it.
			ch.Action, ch.Note = ssa.CreatedAction, "namespace "+o.GetNamespace()+" does not exist yet"
		default:
			return nil, fmt.Errorf("%s: %w", ch.Object, err)
		}
		out = append(out, ch)
	}
	return out, nil
}
