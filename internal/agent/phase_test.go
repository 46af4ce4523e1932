package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/kube"
)

// fakePhase records what the manager did with it; its facts say who produced them.
type fakePhase struct {
	name    string
	done    bool
	runErr  error
	block   bool // Run waits for its context (to test timeouts)
	ran     bool
	checked bool
}

func (p *fakePhase) Name() string { return p.name }

func (p *fakePhase) Title() string { return "doing " + p.name }

func (p *fakePhase) Done(context.Context) (Outcome[string], error) {
	p.checked = true
	return Outcome[string]{Done: p.done, Why: "it is", Facts: p.name + " found"}, nil
}

func (p *fakePhase) Run(ctx context.Context) (string, error) {
	p.ran = true
	if p.block {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return p.name + " ran", p.runErr
}

// dryPhase can dry-run.
type dryPhase struct{ fakePhase }

func (p *dryPhase) DryRun(context.Context) (string, error) { return p.name + " dry", nil }

// Phases run in order, a done one is passed over and hands on the facts its check found, a
// phase that ran hands on its own; the manager remembers which ran and when each finished.
func TestManagerRunsAndSkipsDone(t *testing.T) {
	a, b := &fakePhase{name: "a"}, &fakePhase{name: "b", done: true}
	var out bytes.Buffer
	m := &Manager{Reporter: NewReporter(&out, false)}
	ctx := context.Background()
	if f, err := RunPhase(ctx, m, a); err != nil || f != "a ran" || !a.ran {
		t.Fatalf("a: %q %v ran=%v", f, err, a.ran)
	}
	if f, err := RunPhase(ctx, m, b); err != nil || f != "b found" || b.ran {
		t.Fatalf("b: %q %v ran=%v", f, err, b.ran)
	}
	if !m.RanAny() || len(m.Finished()) != 2 {
		t.Errorf("RanAny %v, finished %v", m.RanAny(), m.Finished())
	}
	text := out.String()
	for _, want := range []string{"► a: doing a", "✔ a: done", "✔ b: already done: it is"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	only := &Manager{Reporter: NewReporter(io.Discard, false)}
	if _, err := RunPhase(ctx, only, &fakePhase{name: "c", done: true}); err != nil || only.RanAny() {
		t.Errorf("a done phase counted as run: %v", err)
	}

	// Force runs done phases too.
	m.Force = true
	if f, err := RunPhase(ctx, m, b); err != nil || !b.ran || f != "b ran" {
		t.Errorf("force: %q err=%v b.ran=%v", f, err, b.ran)
	}
}

// Under --dry-run a phase's DryRun runs instead of Run; a phase without one is passed over.
func TestManagerDryRun(t *testing.T) {
	m := &Manager{DryRun: true, Reporter: NewReporter(io.Discard, false)}
	d := &dryPhase{fakePhase{name: "d"}}
	if f, err := RunPhase(context.Background(), m, d); err != nil || f != "d dry" || d.ran {
		t.Errorf("dry phase: %q %v ran=%v", f, err, d.ran)
	}
	w := &fakePhase{name: "w"}
	if f, err := RunPhase(context.Background(), m, w); err != nil || f != "" || w.ran {
		t.Errorf("phase without a dry run: %q %v ran=%v", f, err, w.ran)
	}
}

func TestManagerFailureAndTimeout(t *testing.T) {
	boom := errors.New("boom")
	m := &Manager{Reporter: NewReporter(&bytes.Buffer{}, false)}
	_, err := RunPhase(context.Background(), m, &fakePhase{name: "b", runErr: boom})
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != "b" || !errors.Is(err, boom) || pe.Timeout != 0 {
		t.Fatalf("err = %#v", err)
	}

	m.Timeouts = map[string]time.Duration{"slow": 20 * time.Millisecond}
	_, err = RunPhase(context.Background(), m, &fakePhase{name: "slow", block: true})
	if !errors.As(err, &pe) || pe.Timeout != 20*time.Millisecond || !strings.Contains(err.Error(), "timed out after 20ms") {
		t.Fatalf("timeout err = %v", err)
	}

	// A cancelled run is not reported as the phase's timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Timeouts = map[string]time.Duration{"slow": time.Hour}
	if _, err := RunPhase(ctx, m, &fakePhase{name: "slow", block: true}); !errors.As(err, &pe) || pe.Timeout != 0 {
		t.Fatalf("cancelled err = %v", err)
	}
}

func TestManagerAllDone(t *testing.T) {
	a, b := &fakePhase{name: "a", done: true}, &fakePhase{name: "b"}
	m := &Manager{Reporter: NewReporter(io.Discard, false)}
	notDone, _, err := m.AllDone(context.Background(), Check(a), Check(b))
	if err != nil || notDone != "b" {
		t.Errorf("AllDone = %q, %v", notDone, err)
	}
	var out bytes.Buffer
	m.Reporter = NewReporter(&out, false)
	b.done = true
	if notDone, _, _ := m.AllDone(context.Background(), Check(a), Check(b)); notDone != "" {
		t.Errorf("AllDone = %q, want all done", notDone)
	}
	if got := out.String(); !strings.Contains(got, "✔ a: already done: it is") || !strings.Contains(got, "✔ b: already done: it is") {
		t.Errorf("all done: output %q, want a skip line per phase", got)
	}
	if a.ran || b.ran {
		t.Error("AllDone ran a phase")
	}
}

// flakyPhase fails its check and its run with a transient error a few times each.
type flakyPhase struct {
	checkFails, runFails int
	runs                 int
	done                 bool
	err                  error
}

func (p *flakyPhase) Name() string  { return "flaky" }
func (p *flakyPhase) Title() string { return "flaky" }
func (p *flakyPhase) Done(context.Context) (Outcome[struct{}], error) {
	if p.checkFails > 0 {
		p.checkFails--
		return Outcome[struct{}]{}, p.err
	}
	return Outcome[struct{}]{Done: p.done, Why: "done"}, nil
}
func (p *flakyPhase) Run(context.Context) (struct{}, error) {
	p.runs++
	if p.runFails > 0 {
		p.runFails--
		return struct{}{}, p.err
	}
	p.done = true
	return struct{}{}, nil
}

// An API server that refuses connections for a while (restart) is waited out: the check and
// the run are retried; a permanent error is not retried; retries stop at the phase timeout.
func TestManagerRetriesTransientErrors(t *testing.T) {
	refused := fmt.Errorf("helm install: %w", syscall.ECONNREFUSED)
	p := &flakyPhase{checkFails: 1, runFails: 1, err: refused}
	var out bytes.Buffer
	m := &Manager{Reporter: NewReporter(&out, false)}
	if _, err := RunPhase(context.Background(), m, p); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if p.runs != 2 || strings.Count(out.String(), "retrying in") != 2 || strings.Count(out.String(), "► flaky") != 1 {
		t.Errorf("runs=%d, output:\n%s", p.runs, out.String())
	}

	p = &flakyPhase{runFails: 5, err: errors.New("invalid spec")}
	m = &Manager{Reporter: NewReporter(io.Discard, false)}
	if _, err := RunPhase(context.Background(), m, p); err == nil || p.runs != 1 {
		t.Errorf("permanent error: err=%v runs=%d, want one run", err, p.runs)
	}

	p = &flakyPhase{runFails: 1000, err: refused}
	m = &Manager{Reporter: NewReporter(io.Discard, false), Timeouts: map[string]time.Duration{"flaky": 1500 * time.Millisecond}}
	var pe *PhaseError
	if _, err := RunPhase(context.Background(), m, p); !errors.As(err, &pe) || pe.Timeout == 0 || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("retries past the timeout: %v", err)
	}
}

// onBed starts a one-node test-bed cluster (a real API server) and connects to it as the agent.
func onBed(t *testing.T, name string) (*testbed.Cluster, *kube.Client) {
	t.Helper()
	c := testbed.StartT(t, testbed.Options{Name: name, ControlPlanes: 1, Workers: -1})
	k, err := kube.New(c.Config, FieldManager)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}
