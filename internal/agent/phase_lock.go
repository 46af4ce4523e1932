package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/bootcore-dev/bootcore/internal/runlock"
)

// lockPhase takes the run lock, so that two agents never hand one cluster over at once. It
// has no dry run: a dry run writes nothing and needs no lock.
type lockPhase struct{ env }

func (p *lockPhase) Name() string { return PhaseLock }
func (p *lockPhase) Title() string {
	return fmt.Sprintf("taking the agent lock (Lease %s/%s)", runlock.DefaultNamespace, runlock.DefaultName)
}

// Done: holding the lock is never an outcome left from an earlier run.
func (p *lockPhase) Done(context.Context) (Outcome[*runlock.Held], error) {
	return Outcome[*runlock.Held]{}, nil
}

// Run waits up to --lock-wait for another agent's lock. The held lock's context ends when
// the lock is lost; ctx must outlive the phase (the lock phase has no timeout of its own).
func (p *lockPhase) Run(ctx context.Context) (*runlock.Held, error) {
	ttl := p.opts.LockTTL
	lock := &runlock.Lock{
		Client: p.k.Clientset, LeaseDuration: ttl,
		// client-go's leader-election ratios (15 s / 10 s / 2 s), scaled to the lease.
		RenewDeadline: ttl * 2 / 3, RetryPeriod: max(ttl/15, 100*time.Millisecond),
		Labels: map[string]string{managedByLabel: "bootcore"},
	}
	held, err := lock.Acquire(ctx, p.opts.LockWait, func(holder string) {
		p.rep.Emit(Event{Type: EventProgress, Phase: PhaseLock, Message: fmt.Sprintf("waiting for the agent lock (Lease %s/%s) held by %s", runlock.DefaultNamespace, runlock.DefaultName, holder)})
	})
	if err != nil {
		return nil, err
	}
	p.rep.Emit(Event{Type: EventProgress, Phase: PhaseLock, Message: "holding the agent lock as " + held.Identity()})
	return held, nil
}
