// Package runlock is the run lock of a cluster: a coordination Lease that keeps two
// `bootcore agent` runs from handing one cluster over at once.
//
// It exists because the agent's first, hand-written Lease lock had two faults (issue #18):
// it judged a lease expired by comparing its own clock with the renewTime the holder's
// host had written, so a live holder on a host whose clock was behind was taken over at
// once; and a holder whose renewals failed went on writing past its TTL. This package is
// built on client-go's leader election (k8s.io/client-go/tools/leaderelection with a
// resourcelock.LeaseLock), which fixes both:
//
//   - A waiter never reads the holder's timestamps. It remembers, on its own clock, when it
//     first saw the current Lease record, and takes the Lease over only once the record has
//     not changed for the holder's leaseDurationSeconds. Clock skew between hosts therefore
//     does not matter (only a difference in clock rate does, see LeaseDuration).
//   - A holder that could not renew for RenewDeadline gives the lock up, and Held.Context
//     tells the caller to stop, before any waiter can take the Lease over.
//
// Consequence for a re-run after a holder was killed (SIGKILL, OOM, a lost laptop): its
// Lease stays behind, and because a waiter cannot trust the dead holder's renewTime it
// takes the Lease over only LeaseDuration (default 30 s) after it FIRST saw it, however
// long ago the holder died. A re-run after a kill therefore always waits about
// LeaseDuration (+ up to 2.2 RetryPeriod), and its waitFor must be longer than that or it
// fails with a HeldError naming the dead holder. A run that ends normally, or on a signal
// it handles, calls Held.Release, and the next run takes the Lease at once.
//
// There is no fencing (the API server does not reject a stale holder's writes): a holder
// must stop writing when Held.Context is done. It has LeaseDuration - (RenewDeadline +
// RetryPeriod) (8 s with the defaults) to do so before a waiter may take over.
package runlock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// The Lease lives in kube-system because flux-system may not exist yet when the lock is
// taken.
const (
	DefaultNamespace = "kube-system"
	DefaultName      = "bootcore-agent"
)

// The defaults are chosen so that a holder survives a kube-apiserver restart (about 10 s
// on a control-plane node, etcd readiness included) without losing the lock, while a
// killed holder blocks a re-run for as short a time as that allows.
const (
	// DefaultRetryPeriod is how often a holder renews and a waiter retries; client-go's
	// own default. A waiter sees a released Lease within 2.2 of it (leader election
	// jitters the waiter's retries by up to 1.2 periods).
	DefaultRetryPeriod = 2 * time.Second
	// DefaultRenewDeadline is how long a holder keeps retrying failed renewals before it
	// gives the lock up: twice the ~10 s outage of an API server restart.
	DefaultRenewDeadline = 20 * time.Second
	// DefaultLeaseDuration is how long a waiter must see the Lease unchanged before it
	// takes it over. A holder whose renewals fail gives up at the latest RetryPeriod +
	// RenewDeadline (22 s) after its last successful renewal was sent, and no waiter can
	// have seen that renewal before it was sent; the remaining 8 s are for the holder to
	// stop its in-flight writes and absorb a difference in clock rates (30/22: one host's
	// clock may run ~35% faster than the other's).
	DefaultLeaseDuration = 30 * time.Second
)

// ErrLost is the cause (context.Cause) of a Held context cancelled because the lock was
// lost: the caller must stop writing, another agent may be running now.
var ErrLost = errors.New("lost the agent lock")

// ErrReleased is the cause of a Held context after Release.
var ErrReleased = errors.New("agent lock released")

// Lock is the run lock of one cluster: a coordination Lease.
type Lock struct {
	Client kubernetes.Interface
	// Namespace and Name of the Lease; default DefaultNamespace/DefaultName.
	Namespace, Name string
	// Identity is written as the Lease's holderIdentity; default NewIdentity(). Every
	// Acquire needs its own: two with one identity would both believe they hold the lock.
	Identity string
	// Durations; default DefaultLeaseDuration, DefaultRenewDeadline, DefaultRetryPeriod.
	// LeaseDuration is stored in the Lease in whole seconds, and waiters use the stored
	// value, so it must be a whole number of seconds.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Labels are set on the Lease whenever this process creates or writes it, e.g.
	// app.kubernetes.io/managed-by: bootcore.
	Labels map[string]string
}

// NewIdentity names this agent process for the Lease's holderIdentity: the host and pid
// tell an operator which run holds the lock, the random part keeps two runs (or a pid
// reused after a reboot) apart.
func NewIdentity() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// HeldError is returned by Acquire when another agent held the lock for the whole wait.
type HeldError struct {
	Holder string        // the holder's identity
	Lease  string        // namespace/name
	Waited time.Duration // how long Acquire waited
	// Expiry is the holder's lease duration: how long a waiter must see the Lease
	// unrenewed before it takes it over.
	Expiry time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("another bootcore agent (%s) holds the agent lock (Lease %s) and is handing this cluster over; waited %s. "+
		"Let it finish, or if it died, the lock expires on its own: a run takes it over once it has seen the Lease unrenewed for %s",
		e.Holder, e.Lease, e.Waited.Round(time.Second), e.Expiry)
}

func (l Lock) withDefaults() (Lock, error) {
	if l.Client == nil {
		return l, errors.New("runlock: no Client")
	}
	if l.Namespace == "" {
		l.Namespace = DefaultNamespace
	}
	if l.Name == "" {
		l.Name = DefaultName
	}
	if l.Identity == "" {
		l.Identity = NewIdentity()
	}
	if l.LeaseDuration == 0 {
		l.LeaseDuration = DefaultLeaseDuration
	}
	if l.RenewDeadline == 0 {
		l.RenewDeadline = DefaultRenewDeadline
	}
	if l.RetryPeriod == 0 {
		l.RetryPeriod = DefaultRetryPeriod
	}
	if l.LeaseDuration < time.Second || l.LeaseDuration%time.Second != 0 {
		return l, fmt.Errorf("runlock: LeaseDuration %s is not a whole number of seconds", l.LeaseDuration)
	}
	// A holder may go on believing it holds the lock for RetryPeriod + RenewDeadline after
	// its last renewal; a waiter may take over LeaseDuration after it. Leader election
	// only checks LeaseDuration > RenewDeadline.
	if l.RenewDeadline+l.RetryPeriod >= l.LeaseDuration {
		return l, fmt.Errorf("runlock: RenewDeadline %s + RetryPeriod %s must be shorter than LeaseDuration %s", l.RenewDeadline, l.RetryPeriod, l.LeaseDuration)
	}
	return l, nil
}

func (l *Lock) lease() string { return l.Namespace + "/" + l.Name }

// Held is a lock this process holds.
type Held struct {
	lock     Lock
	ctx      context.Context
	cancel   context.CancelCauseFunc
	stop     context.CancelFunc // stops the elector, which then releases the Lease
	stopped  chan struct{}      // closed when the elector has returned
	deadline *time.Timer        // fires when renewals have failed for RetryPeriod + RenewDeadline

	releasing atomic.Bool
	once      sync.Once
}

// Context is cancelled when the lock is lost (cause wraps ErrLost: renewals failed for
// RenewDeadline, or the Lease was taken over or deleted), when the context given to
// Acquire ends, or on Release.
func (h *Held) Context() context.Context { return h.ctx }

// Identity is the holderIdentity this process wrote.
func (h *Held) Identity() string { return h.lock.Identity }

// Release gives the lock up and returns when the elector has stopped. If the lock is still
// held, the Lease is marked released (empty holder) so that a waiting agent takes it at
// once instead of after LeaseDuration; that write is given up to RenewDeadline. Call it
// once the work the lock guards has stopped: the context given to Acquire ending does not
// release the lock, since the caller's writes may still be winding down then.
func (h *Held) Release() {
	h.once.Do(func() {
		h.releasing.Store(true)
		h.stop()
		<-h.stopped
		h.deadline.Stop()
		h.cancel(ErrReleased)
	})
}

// lose cancels the held context and stops the elector: a lost lock is final, the elector
// must not take the Lease again behind the caller's back.
func (h *Held) lose(err error) {
	if h.releasing.Load() {
		return
	}
	h.cancel(err)
	h.stop()
}

// Acquire blocks until this process holds the lock, ctx ends, or waitFor passes while
// another agent holds it; onWait is told the holder's identity each time the holder
// changes (it runs on the elector's goroutine, so it must not block). Acquire makes at
// least one attempt, so a waitFor of 0 takes a free lock and reports a held one. On
// timeout the error is a *HeldError if a holder was seen. The returned Held must be
// released.
func (l *Lock) Acquire(ctx context.Context, waitFor time.Duration, onWait func(holder string)) (*Held, error) {
	lk, err := l.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// The elector runs until Release, not until ctx ends: ReleaseOnCancel gives the Lease
	// up at once, which must not happen while the caller's cancelled writes are still
	// returning. Values (the klog logger) are kept.
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	heldCtx, cancel := context.WithCancelCause(ctx)
	h := &Held{lock: lk, ctx: heldCtx, cancel: cancel, stop: stop, stopped: make(chan struct{})}
	w := &watchedLock{
		Interface: &rl.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: lk.Namespace, Name: lk.Name},
			Client:     lk.Client.CoordinationV1(),
			LockConfig: rl.ResourceLockConfig{Identity: lk.Identity},
			Labels:     lk.Labels,
		},
		h:        h,
		onWait:   onWait,
		acquired: make(chan struct{}),
		answered: make(chan struct{}),
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            w,
		Name:            lk.lease(),
		LeaseDuration:   lk.LeaseDuration,
		RenewDeadline:   lk.RenewDeadline,
		RetryPeriod:     lk.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			// Leading is learnt from the lock's own successful write (watchedLock), which
			// happens before this callback's goroutine runs, so a waitFor that ends at
			// the same moment cannot cancel an elector that already holds the Lease.
			OnStartedLeading: func(context.Context) {},
			// The elector returns on its own only when renewals failed for RenewDeadline.
			OnStoppedLeading: func() {
				if w.isLeading() {
					h.lose(fmt.Errorf("%w: could not renew Lease %s for %s (%s)", ErrLost, lk.lease(), lk.RenewDeadline, w.lastError()))
				}
			},
			// OnNewLeader is not used for onWait: it runs in a goroutine of its own, so it
			// could report a holder out of order or after Acquire returned.
		},
	})
	if err != nil {
		stop()
		cancel(err)
		return nil, fmt.Errorf("runlock: %w", err)
	}
	go func() {
		defer close(h.stopped)
		le.Run(runCtx)
	}()

	giveUp := func(why error) (*Held, error) {
		h.releasing.Store(true)
		stop()
		<-h.stopped
		// If a write made us the holder after all (it raced the cancellation), the
		// elector has released the Lease again on its way out; the caller is never told.
		// A write that was committed but whose answer the cancellation cut off leaves the
		// Lease naming us until it expires: the next agent waits LeaseDuration, which is
		// safe, as nothing here acts on it.
		if h.deadline != nil {
			h.deadline.Stop()
		}
		cancel(why)
		return nil, why
	}
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for {
		select {
		case <-w.acquired:
			return h, nil
		case <-ctx.Done():
			return giveUp(fmt.Errorf("waiting for the agent lock (Lease %s): %w", lk.lease(), context.Cause(ctx)))
		case <-h.stopped:
			// Only stop() ends the elector before it leads; kept so a change in client-go
			// cannot hang Acquire.
			return giveUp(fmt.Errorf("waiting for the agent lock (Lease %s): leader election ended (%s)", lk.lease(), w.lastError()))
		case <-timer.C:
			// A write that made us the holder may have completed just now.
			select {
			case <-w.acquired:
				return h, nil
			default:
			}
			// Without an answer there is no holder to name: wait for the first attempt
			// (each request is bounded, see watchedLock).
			select {
			case <-w.answered:
			case <-w.acquired:
				return h, nil
			case <-ctx.Done():
				continue
			}
			select {
			case <-w.acquired:
				return h, nil
			default:
			}
			holder, expiry := w.observedHolder()
			if holder == "" {
				return giveUp(fmt.Errorf("could not take the agent lock (Lease %s) within %s: %s", lk.lease(), time.Since(start).Round(time.Second), w.lastError()))
			}
			return giveUp(&HeldError{Holder: holder, Lease: lk.lease(), Waited: time.Since(start), Expiry: expiry})
		}
	}
}

// watchedLock is the LeaseLock as the elector uses it, with what this package needs to
// know on the way: who holds the Lease while we wait (onWait, HeldError), when we became
// the holder, when each renewal succeeded (the deadline), and whether someone else took
// the Lease while we hold it. Its methods run on the elector's goroutine.
type watchedLock struct {
	rl.Interface
	h        *Held
	onWait   func(string)
	acquired chan struct{} // closed when a write made us the holder
	answered chan struct{} // closed when the first attempt got an answer that names no free Lease

	mu       sync.Mutex
	leading  bool
	holder   string // last foreign holder seen while waiting
	expiry   time.Duration
	reported string
	lastErr  error
	answerMu sync.Once
}

// requestTimeout bounds each request so that one hung request (a black-holed network)
// cannot outlast RenewDeadline; half of it, as resourcelock.NewFromKubeconfig does.
func (w *watchedLock) requestTimeout() time.Duration {
	return max(w.h.lock.RenewDeadline/2, time.Second)
}

func (w *watchedLock) isLeading() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leading
}

func (w *watchedLock) lastError() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastErr == nil {
		return "no error answered"
	}
	return "last error: " + w.lastErr.Error()
}

func (w *watchedLock) observedHolder() (string, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holder, w.expiry
}

func (w *watchedLock) answer() { w.answerMu.Do(func() { close(w.answered) }) }

func (w *watchedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, w.requestTimeout())
	defer cancel()
	rec, raw, err := w.Interface.Get(ctx)

	w.mu.Lock()
	defer w.mu.Unlock()
	lease := w.h.lock.lease()
	switch {
	case apierrors.IsNotFound(err):
		if w.leading {
			// Someone removed our claim; another agent may have created the Lease and
			// worked in between our renewals.
			w.h.lose(fmt.Errorf("%w: Lease %s was deleted", ErrLost, lease))
		}
	case err != nil:
		w.lastErr = err
		w.answer()
	case w.leading:
		if rec.HolderIdentity != w.h.lock.Identity {
			// Leader election would keep renewing until RenewDeadline, and would take
			// the Lease back if the new holder's lease expired meanwhile.
			w.h.lose(fmt.Errorf("%w: Lease %s was taken over by %q", ErrLost, lease, rec.HolderIdentity))
		}
	case rec.HolderIdentity != "" && rec.HolderIdentity != w.h.lock.Identity:
		w.holder, w.expiry = rec.HolderIdentity, time.Duration(rec.LeaseDurationSeconds)*time.Second
		w.answer()
		if w.holder != w.reported && w.onWait != nil {
			w.reported = w.holder
			w.onWait(w.holder)
		}
	}
	return rec, raw, err
}

func (w *watchedLock) Create(ctx context.Context, ler rl.LeaderElectionRecord) error {
	return w.write(ctx, ler, w.Interface.Create)
}

func (w *watchedLock) Update(ctx context.Context, ler rl.LeaderElectionRecord) error {
	return w.write(ctx, ler, w.Interface.Update)
}

func (w *watchedLock) write(ctx context.Context, ler rl.LeaderElectionRecord, op func(context.Context, rl.LeaderElectionRecord) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.requestTimeout())
	defer cancel()
	sent := time.Now()
	err := op(ctx, ler)
	w.wrote(ler, sent, err)
	return err
}

// wrote notes a write's outcome. A successful write naming us starts (or renews) our hold
// and moves the deadline. The deadline counts from when the write was sent, since a waiter
// cannot have seen the new record earlier than that. Leader election gives up about as
// late (RetryPeriod + RenewDeadline after the renewal RETURNED) but says so only after its
// release request, which can take another RenewDeadline on an unreachable API server; the
// deadline does not wait for that.
func (w *watchedLock) wrote(ler rl.LeaderElectionRecord, sent time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.answer()
	if err != nil {
		w.lastErr = err
		return
	}
	if ler.HolderIdentity != w.h.lock.Identity {
		return // the elector's release
	}
	h := w.h
	limit := h.lock.RetryPeriod + h.lock.RenewDeadline
	if !w.leading {
		w.leading = true
		h.deadline = time.AfterFunc(time.Until(sent.Add(limit)), func() {
			h.lose(fmt.Errorf("%w: no renewal of Lease %s succeeded for %s (%s)", ErrLost, h.lock.lease(), limit, w.lastError()))
		})
		close(w.acquired)
		return
	}
	h.deadline.Reset(time.Until(sent.Add(limit)))
}
