package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A Phase is one ordered step of the hand-over (the shape of k0sctl's phase manager): a
// name, a title, a read-only check whether its outcome is already in place, and the work.
// Run must be idempotent: an agent killed in the middle of Run runs it again next time.
type Phase interface {
	// Name is the phase's short name, used in events, flags and the hand-over marker.
	Name() string
	// Title says what the phase does, for the start event.
	Title() string
	// Done reports, without writing anything, whether the phase's outcome is in place.
	// why explains the answer for the skip event (done) or the bundle (not done).
	Done(ctx context.Context) (done bool, why string, err error)
	// Run does the work. With dry-run, it reports what it would change and writes nothing.
	Run(ctx context.Context) error
}

// PhaseError is a phase that failed or timed out.
type PhaseError struct {
	Phase   string
	Timeout time.Duration // > 0 when the phase's timeout passed
	Err     error
}

func (e *PhaseError) Error() string {
	if e.Timeout > 0 {
		return fmt.Sprintf("phase %s timed out after %s: %v", e.Phase, e.Timeout, e.Err)
	}
	return fmt.Sprintf("phase %s: %v", e.Phase, e.Err)
}

func (e *PhaseError) Unwrap() error { return e.Err }

// Manager runs phases in order, each under its own timeout.
type Manager struct {
	Phases []Phase
	// Timeouts per phase name; a phase without one runs until the parent context ends.
	Timeouts map[string]time.Duration
	// Force runs phases whose Done check says they are done.
	Force    bool
	Reporter *Reporter
	// OnDone is called after each phase that ran (ran=true) or was skipped as done, with
	// the time it finished.
	OnDone func(phase string, at time.Time, ran bool)
	now    func() time.Time
}

func (m *Manager) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

// Run runs every phase in order and stops at the first failure, returning a *PhaseError.
func (m *Manager) Run(ctx context.Context) error {
	for _, p := range m.Phases {
		if err := m.runOne(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) runOne(ctx context.Context, p Phase) error {
	start := m.clock()
	timeout := m.Timeouts[p.Name()]
	pctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	fail := func(err error) error {
		pe := &PhaseError{Phase: p.Name(), Err: err}
		// Only this phase's own deadline counts as its timeout; a cancelled parent is not one.
		if timeout > 0 && errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			pe.Timeout = timeout
		}
		m.Reporter.Emit(Event{Type: EventFail, Phase: p.Name(), Message: err.Error(), Elapsed: m.clock().Sub(start).Seconds()})
		return pe
	}

	// An API server or etcd that is briefly away (restarted, leader change) is waited out:
	// the check and the (idempotent) work are retried until the phase's timeout.
	retries := 0
	retry := func(what string, err error) bool {
		if !transient(err) || pctx.Err() != nil {
			return false
		}
		retries++
		delay := min(time.Duration(retries)*time.Second, 5*time.Second)
		m.Reporter.Emit(Event{Type: EventWarning, Phase: p.Name(), Message: fmt.Sprintf("%s: %v; retrying in %s", what, err, delay)})
		select {
		case <-pctx.Done():
		case <-time.After(delay):
		}
		return pctx.Err() == nil
	}
	started := false
	for {
		if !m.Force {
			done, why, err := p.Done(pctx)
			if err != nil {
				if retry("checking whether it is done", err) {
					continue
				}
				return fail(fmt.Errorf("checking whether it is done: %w", err))
			}
			if done && !started {
				m.Reporter.Emit(Event{Type: EventSkip, Phase: p.Name(), Message: "already done: " + why, Elapsed: m.clock().Sub(start).Seconds()})
				if m.OnDone != nil {
					m.OnDone(p.Name(), m.clock(), false)
				}
				return nil
			}
			if done {
				break // a retried Run finished before it could say so
			}
		}
		if !started {
			m.Reporter.Emit(Event{Type: EventStart, Phase: p.Name(), Message: p.Title()})
			started = true
		}
		err := p.Run(pctx)
		if err == nil {
			break
		}
		if retry("interrupted", err) {
			continue
		}
		return fail(err)
	}
	end := m.clock()
	m.Reporter.Emit(Event{Type: EventDone, Phase: p.Name(), Message: "done", Elapsed: end.Sub(start).Seconds()})
	if m.OnDone != nil {
		m.OnDone(p.Name(), end, true)
	}
	return nil
}

// AllDone checks every phase read-only and returns the first that is not done, with why.
// When every phase is done, it reports each as skipped (with why), so a run that changes
// nothing still says what it checked.
func (m *Manager) AllDone(ctx context.Context) (notDone string, why string, err error) {
	var skips []Event
	for _, p := range m.Phases {
		start := m.clock()
		done, why, err := p.Done(ctx)
		if err != nil {
			return p.Name(), "", fmt.Errorf("phase %s: %w", p.Name(), err)
		}
		if !done {
			return p.Name(), why, nil
		}
		skips = append(skips, Event{Type: EventSkip, Phase: p.Name(), Message: "already done: " + why, Elapsed: m.clock().Sub(start).Seconds()})
	}
	if m.Reporter != nil {
		for _, e := range skips {
			m.Reporter.Emit(e)
		}
	}
	return "", "", nil
}
