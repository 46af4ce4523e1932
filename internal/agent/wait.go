package agent

import (
	"context"
	"fmt"
	"strings"

	"github.com/bootcore-dev/bootcore/internal/kube"
)

// wait waits for targets, reporting each as it turns Ready and, every --progress interval,
// what is still pending.
func (e env) wait(ctx context.Context, phase string, targets []kube.Target) error {
	return e.k.Wait(ctx, targets, kube.WaitOptions{
		OnReady: func(st kube.State) {
			e.rep.Emit(Event{Type: EventReady, Phase: phase, Object: st.String(), Message: st.String() + " Ready"})
		},
		OnProgress: func(pending []kube.State) {
			parts := make([]string, 0, len(pending))
			for _, st := range pending {
				parts = append(parts, fmt.Sprintf("%s (%s)", st, st.Message))
			}
			e.rep.Emit(Event{Type: EventProgress, Phase: phase, Message: "waiting for " + strings.Join(parts, ", ")})
		},
		ProgressEvery: e.opts.ProgressEvery,
	})
}

// wouldWait is a wait's dry run: it reports, once, each target that is not Ready yet.
func (e env) wouldWait(ctx context.Context, phase string, targets []kube.Target) error {
	for _, st := range e.k.Read(ctx, targets) {
		if st.Err != nil {
			return st.Err
		}
		if !st.Ready {
			e.rep.Emit(Event{Type: EventChange, Phase: phase, Object: st.String(), Message: fmt.Sprintf("would wait for %s (now: %s)", st, st.Message)})
		}
	}
	return nil
}
