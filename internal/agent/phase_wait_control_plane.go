package agent

import (
	"context"
	"fmt"

	"github.com/bootcore-dev/bootcore/internal/kube"
)

// waitControlPlanePhase waits until every control-plane node is Ready: Talos applies the boot
// manifests from them, and the agent's later waits need them.
type waitControlPlanePhase struct{ env }

func (p *waitControlPlanePhase) Name() string { return PhaseWaitControlPlane }
func (p *waitControlPlanePhase) Title() string {
	return "waiting for every control-plane node (" + kube.ControlPlaneLabel + ") to be Ready"
}

func (p *waitControlPlanePhase) Done(ctx context.Context) (Outcome[struct{}], error) {
	r, err := p.k.ControlPlaneNodes(ctx)
	if err != nil || !r.Ready() {
		return Outcome[struct{}]{Why: r.String()}, err
	}
	return Outcome[struct{}]{Done: true, Why: fmt.Sprintf("%d control-plane nodes Ready", r.Nodes)}, nil
}

// DryRun says what the wait would wait for.
func (p *waitControlPlanePhase) DryRun(ctx context.Context) (struct{}, error) {
	out, err := p.Done(ctx)
	if err == nil && !out.Done {
		p.rep.Emit(Event{Type: EventChange, Phase: PhaseWaitControlPlane, Message: "would wait for: " + out.Why})
	}
	return struct{}{}, err
}

func (p *waitControlPlanePhase) Run(ctx context.Context) (struct{}, error) {
	return struct{}{}, p.k.WaitControlPlaneNodes(ctx,
		func(node string) {
			p.rep.Emit(Event{Type: EventReady, Phase: PhaseWaitControlPlane, Object: "Node " + node, Message: "control-plane node " + node + " Ready"})
		},
		func(r kube.NodesReport) {
			p.rep.Emit(Event{Type: EventProgress, Phase: PhaseWaitControlPlane, Message: r.String()})
		})
}
