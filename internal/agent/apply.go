package agent

import (
	"context"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// applyObjects applies objs (or, with dryRun, asks the API server what applying them would do)
// and reports each change; details adds a note to an object's line (by its "Kind ns/name"),
// and an object with details is reported even when unchanged.
func (e env) applyObjects(ctx context.Context, phase string, objs []*unstructured.Unstructured, dryRun bool, details map[string]string) error {
	apply := e.k.Apply
	if dryRun {
		apply = e.k.Diff
	}
	changes, err := apply(ctx, objs)
	if err != nil {
		return err
	}
	for _, c := range changes {
		if _, ok := details[c.Object]; !ok && c.Action == ssa.UnchangedAction {
			continue
		}
		verb := string(c.Action)
		if dryRun && c.Action != ssa.UnchangedAction {
			verb = "would be " + verb
		}
		msg := c.Object + " " + verb
		detail := details[c.Object]
		if c.Note != "" {
			detail = joinNonEmpty(detail, c.Note)
		}
		if detail != "" {
			msg += " (" + detail + ")"
		}
		e.rep.Emit(Event{Type: EventChange, Phase: phase, Object: c.Object, Message: msg})
	}
	return nil
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
