package agent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bootcore-dev/bootcore/internal/runlock"
)

// While one agent holds the lock another waits, says who holds it, and gives up after
// --lock-wait with the holder's identity; once the first gives the lock up (the unlock phase)
// the next takes it at once, without waiting out the lease.
func TestLockPhasesHandTheLockOn(t *testing.T) {
	_, k := onBed(t, "lock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	agent := func(wait time.Duration) (env, *Reporter) {
		rep := NewReporter(&bytes.Buffer{}, true)
		return env{inputs: &inputs{opts: Options{LockTTL: 30 * time.Second, LockWait: wait}}, k: k, rep: rep}, rep
	}

	firstEnv, _ := agent(time.Second)
	held, err := (&lockPhase{firstEnv}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := (&lockPhase{firstEnv}).Done(ctx); err != nil || out.Done {
		t.Fatalf("lock check: %+v, %v; holding is never left from an earlier run", out, err)
	}

	secondEnv, rep := agent(3 * time.Second)
	_, err = (&lockPhase{secondEnv}).Run(ctx)
	var heldErr *runlock.HeldError
	if !errors.As(err, &heldErr) || heldErr.Holder != held.Identity() {
		t.Fatalf("second agent: %v, want the lock held by %s", err, held.Identity())
	}
	if !hasMessage(rep, "held by "+held.Identity()) {
		t.Errorf("the waiting agent never said who holds the lock: %+v", rep.Events())
	}

	if _, err := (&unlockPhase{env: firstEnv, held: held}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if context.Cause(held.Context()) != runlock.ErrReleased {
		t.Errorf("held context cause = %v, want released", context.Cause(held.Context()))
	}
	// Well within the 30-second lease: taken because it was given up, not because it expired.
	thirdEnv, _ := agent(10 * time.Second)
	next, err := (&lockPhase{thirdEnv}).Run(ctx)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	next.Release()
}

func hasMessage(rep *Reporter, part string) bool {
	for _, e := range rep.Events() {
		if strings.Contains(e.Message, part) {
			return true
		}
	}
	return false
}
