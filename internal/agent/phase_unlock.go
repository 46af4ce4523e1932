package agent

import (
	"context"

	"github.com/bootcore-dev/bootcore/internal/runlock"
)

// unlockPhase gives the run lock up, so the next agent takes it at once rather than after
// its lease duration.
type unlockPhase struct {
	env
	held *runlock.Held
}

func (p *unlockPhase) Name() string  { return PhaseUnlock }
func (p *unlockPhase) Title() string { return "giving the agent lock up" }

func (p *unlockPhase) Done(context.Context) (Outcome[struct{}], error) {
	return Outcome[struct{}]{}, nil
}

func (p *unlockPhase) Run(context.Context) (struct{}, error) {
	p.held.Release()
	return struct{}{}, nil
}
