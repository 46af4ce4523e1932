package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bootcore-dev/bootcore/internal/kube"
)

// A Phase is one ordered step of the hand-over, on the shape of k0sctl's phase manager: a
// name, a title, a read-only check whether its outcome is in place, and the work. Both the
// check and the work hand what later phases need on as typed facts F (the Helm chart versions
// installed, the Git revision handed over), so phases share no state. Run must be idempotent:
// an agent killed in the middle of Run runs it again next time.
type Phase[F any] interface {
	// Name is the phase's short name, used in events, flags and the hand-over marker.
	Name() string
	// Title says what the phase does, for the start event.
	Title() string
	// Done reports, without writing anything, whether the phase's outcome is in place.
	Done(ctx context.Context) (Outcome[F], error)
	// Run does the work.
	Run(ctx context.Context) (F, error)
}

// Outcome is what a phase's check found.
type Outcome[F any] struct {
	Done bool
	// Why explains the answer, for the skip event (done) or the support bundle (not done).
	Why string
	// Facts are the phase's facts, when Done.
	Facts F
}

// DryRunner is a phase that can say what it would change without writing anything: under
// --dry-run the manager calls DryRun instead of Run. A phase without it is passed over.
type DryRunner[F any] interface {
	DryRun(ctx context.Context) (F, error)
}

// Preparer is a phase with inputs to read before anything is written (environment variables,
// files): the manager prepares every phase before the first write, so a missing input
// changes nothing. An input the user must fix is an *InputError (exit 2).
type Preparer interface {
	Prepare(ctx context.Context) error
}

// named is what every phase is, whatever its facts.
type named interface {
	Name() string
	Title() string
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

// Manager runs phases, each under its own timeout, and remembers when each finished.
type Manager struct {
	// Timeouts per phase name; a phase without one runs until the parent context ends.
	Timeouts map[string]time.Duration
	// Force runs phases whose Done check says they are done.
	Force bool
	// DryRun calls DryRun instead of Run, and passes over phases that cannot dry-run.
	DryRun   bool
	Reporter *Reporter

	finished map[string]time.Time
	ranAny   bool
	now      func() time.Time
}

func (m *Manager) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

// Finished is when each phase finished (ran, or was found done) in this run.
func (m *Manager) Finished() map[string]time.Time {
	out := map[string]time.Time{}
	for k, v := range m.finished {
		out[k] = v
	}
	return out
}

// RanAny says whether any phase did its work in this run (rather than finding it done).
func (m *Manager) RanAny() bool { return m.ranAny }

func (m *Manager) record(phase string, at time.Time, ran bool) {
	if m.finished == nil {
		m.finished = map[string]time.Time{}
	}
	m.finished[phase] = at
	m.ranAny = m.ranAny || ran
}

// Prepare reads every phase's inputs (see Preparer), before anything is written.
func (m *Manager) Prepare(ctx context.Context, phases ...named) error {
	for _, p := range phases {
		if pr, ok := p.(Preparer); ok {
			if err := pr.Prepare(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// RunPhase runs one phase: passed over when its check says its outcome is in place (unless Force),
// else its work (or dry run). An API server or etcd that is briefly away (restarted, a leader
// change) is waited out: the check and the idempotent work are retried until the phase's
// timeout. A failure is a *PhaseError.
func RunPhase[F any](ctx context.Context, m *Manager, p Phase[F]) (F, error) {
	var zero F
	start := m.clock()
	timeout := m.Timeouts[p.Name()]
	pctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	fail := func(err error) (F, error) {
		pe := &PhaseError{Phase: p.Name(), Err: err}
		// Only this phase's own deadline counts as its timeout; a cancelled parent is not one.
		if timeout > 0 && errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			pe.Timeout = timeout
		}
		m.Reporter.Emit(Event{Type: EventFail, Phase: p.Name(), Message: err.Error(), Elapsed: m.clock().Sub(start).Seconds()})
		return zero, pe
	}
	retries := 0
	retry := func(what string, err error) bool {
		if !kube.Transient(err) || pctx.Err() != nil {
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

	work := p.Run
	if m.DryRun {
		d, ok := p.(DryRunner[F])
		if !ok {
			m.Reporter.Emit(Event{Type: EventSkip, Phase: p.Name(), Message: "not run in a dry run: " + p.Title()})
			return zero, nil
		}
		work = d.DryRun
	}
	started := false
	for {
		if !m.Force {
			out, err := p.Done(pctx)
			if err != nil {
				if retry("checking whether it is done", err) {
					continue
				}
				return fail(fmt.Errorf("checking whether it is done: %w", err))
			}
			if out.Done && !started {
				m.Reporter.Emit(Event{Type: EventSkip, Phase: p.Name(), Message: "already done: " + out.Why, Elapsed: m.clock().Sub(start).Seconds()})
				m.record(p.Name(), m.clock(), false)
				return out.Facts, nil
			}
			if out.Done {
				// A retried Run finished before it could say so.
				m.Reporter.Emit(Event{Type: EventDone, Phase: p.Name(), Message: "done", Elapsed: m.clock().Sub(start).Seconds()})
				m.record(p.Name(), m.clock(), true)
				return out.Facts, nil
			}
		}
		if !started {
			m.Reporter.Emit(Event{Type: EventStart, Phase: p.Name(), Message: p.Title()})
			started = true
		}
		facts, err := work(pctx)
		if err == nil {
			end := m.clock()
			m.Reporter.Emit(Event{Type: EventDone, Phase: p.Name(), Message: "done", Elapsed: end.Sub(start).Seconds()})
			m.record(p.Name(), end, true)
			return facts, nil
		}
		if retry("interrupted", err) {
			continue
		}
		return fail(err)
	}
}

// A check is a phase's Done without its facts, for AllDone.
type check interface {
	named
	done(ctx context.Context) (bool, string, error)
}

type checkOf[F any] struct{ Phase[F] }

func (c checkOf[F]) done(ctx context.Context) (bool, string, error) {
	out, err := c.Done(ctx)
	return out.Done, out.Why, err
}

// Check is p's check, for AllDone.
func Check[F any](p Phase[F]) check { return checkOf[F]{p} }

// AllDone checks every phase read-only and returns the first that is not done, with why. When
// every phase is done, it reports each as passed over (with why), so a run that changes
// nothing still says what it checked.
func (m *Manager) AllDone(ctx context.Context, checks ...check) (notDone string, why string, err error) {
	var skips []Event
	for _, c := range checks {
		start := m.clock()
		done, why, err := c.done(ctx)
		if err != nil {
			return c.Name(), "", fmt.Errorf("phase %s: %w", c.Name(), err)
		}
		if !done {
			return c.Name(), why, nil
		}
		skips = append(skips, Event{Type: EventSkip, Phase: c.Name(), Message: "already done: " + why, Elapsed: m.clock().Sub(start).Seconds()})
	}
	for _, e := range skips {
		m.Reporter.Emit(e)
	}
	return "", "", nil
}
