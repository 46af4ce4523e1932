package runlock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// Short durations for the tests that are about the mechanism, not the defaults; the
// constraints are the package's (RenewDeadline + RetryPeriod < LeaseDuration).
var quick = Lock{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}

// One API server for all the tests (starting one costs more than the tests themselves);
// each test has a Lease of its own. The outage test stops the API server, so it runs after
// the others.
func TestOnAPIServer(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "runlock", ControlPlanes: -1, Workers: -1})
	t.Run("concurrent", func(t *testing.T) {
		t.Run("SkewedLiveHolderIsKept", func(t *testing.T) { t.Parallel(); testSkewedLiveHolderIsKept(t, c) })
		t.Run("DeadHolderTakenOverAfterLeaseDuration", func(t *testing.T) { t.Parallel(); testDeadHolderTakenOver(t, c) })
		t.Run("TwoAcquireOneHolds", func(t *testing.T) { t.Parallel(); testTwoAcquireOneHolds(t, c) })
		t.Run("TakenOverByForceIsLost", func(t *testing.T) { t.Parallel(); testTakenOverByForce(t, c) })
	})
	t.Run("APIServerOutage", func(t *testing.T) { testAPIServerOutage(t, c) })
}

// newLock is a lock of its own process: its own client, as two agents would have.
func newLock(t *testing.T, c *testbed.Cluster, base Lock, name string) *Lock {
	t.Helper()
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	l := base
	l.Client, l.Name, l.Identity = client, name, NewIdentity()
	return &l
}

// testContext carries a logger that sends leader election's own log lines to the test log.
func testContext(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	// After a failure an elector may still be stopping when the test has ended, and
	// logging then would panic.
	var ended atomic.Bool
	t.Cleanup(func() { ended.Store(true) })
	return klog.NewContext(ctx, funcr.New(func(prefix, args string) {
		if !ended.Load() {
			t.Log(prefix, args)
		}
	}, funcr.Options{}))
}

func acquireT(t *testing.T, ctx context.Context, l *Lock, waitFor time.Duration, onWait func(string)) *Held {
	t.Helper()
	h, err := l.Acquire(ctx, waitFor, onWait)
	if err != nil {
		t.Fatalf("%s: %v", l.Identity, err)
	}
	t.Cleanup(h.Release)
	return h
}

// expiredByItsTimestamps is the rule of the hand-written lock this package replaces: a
// lease is expired when this host's clock is past renewTime + leaseDurationSeconds.
func expiredByItsTimestamps(l *coordinationv1.Lease, now time.Time) bool {
	return now.After(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// writeHolder makes the Lease name holder as another host would write it: renewTime on
// that host's clock (now + skew). It creates the Lease or overwrites whatever is there.
func writeHolder(ctx context.Context, client kubernetes.Interface, name, holder string, seconds int32, skew time.Duration) (*coordinationv1.Lease, error) {
	leases := client.CoordinationV1().Leases(DefaultNamespace)
	t := metav1.NewMicroTime(time.Now().Add(skew))
	spec := coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds, AcquireTime: &t, RenewTime: &t}
	for {
		cur, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DefaultNamespace}, Spec: spec}, metav1.CreateOptions{})
		}
		if err != nil {
			return nil, err
		}
		cur.Spec = spec
		updated, err := leases.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue // the current holder renewed in between
		}
		return updated, err
	}
}

func holderOf(t *testing.T, ctx context.Context, client kubernetes.Interface, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := client.CoordinationV1().Leases(DefaultNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// 1. A live holder on a host whose clock is an hour behind writes renewTimes an hour in
// the past but keeps renewing. Every record it writes is expired by its timestamps, so the
// old lock would have taken it over on its first look; this one sees the record change and
// waits it out, then names the holder.
func testSkewedLiveHolderIsKept(t *testing.T, c *testbed.Cluster) {
	ctx := testContext(t, time.Minute)
	const name, holder = "skew", "skewed-host/4242/aaaaaa"
	const seconds = 5 // the holder's lease duration; it renews every second
	waiter := newLock(t, c, quick, name)

	refreshCtx, stopRefresh := context.WithCancel(ctx)
	var refresher sync.WaitGroup
	var refreshErr error
	var writes int
	first, err := writeHolder(ctx, c.Client, name, holder, seconds, -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !expiredByItsTimestamps(first, time.Now()) {
		t.Fatal("the skewed record is not expired by its timestamps: the test shows nothing")
	}
	refresher.Go(func() {
		tick := time.NewTicker(time.Second) // the live holder's renewal period, not a synchronisation
		defer tick.Stop()
		for {
			select {
			case <-refreshCtx.Done():
				return
			case <-tick.C:
			}
			l, err := writeHolder(refreshCtx, c.Client, name, holder, seconds, -time.Hour)
			if refreshCtx.Err() != nil {
				return
			}
			if err == nil && !expiredByItsTimestamps(l, time.Now()) {
				err = errors.New("a renewal of the skewed holder is not expired by its timestamps")
			}
			if err != nil {
				refreshErr = err
				return
			}
			writes++
		}
	})

	var told []string
	waitFor := 12 * time.Second // more than twice the holder's lease duration
	start := time.Now()
	h, err := waiter.Acquire(ctx, waitFor, func(h string) { told = append(told, h) })
	waited := time.Since(start)
	stopRefresh()
	refresher.Wait()
	if h != nil {
		h.Release()
		t.Fatalf("took over a live holder's Lease after %s", waited)
	}
	if refreshErr != nil {
		t.Fatalf("the skewed holder: %v", refreshErr)
	}
	var he *HeldError
	if !errors.As(err, &he) {
		t.Fatalf("want *HeldError, got %T: %v", err, err)
	}
	if he.Holder != holder || waited < waitFor {
		t.Fatalf("HeldError names %q after %s, want %q after at least %s", he.Holder, waited, holder, waitFor)
	}
	for _, want := range []string{holder, "Lease kube-system/skew", "expires on its own"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if len(told) != 1 || told[0] != holder {
		t.Errorf("onWait was told %q, want once %q", told, holder)
	}
	if got := *holderOf(t, ctx, c.Client, name).Spec.HolderIdentity; got != holder {
		t.Errorf("Lease now held by %q", got)
	}
	t.Logf("a live holder an hour behind (%d renewals, each expired by its timestamps) kept the lock for %s: %v", writes, waited.Round(time.Millisecond), err)
}

// 2. A holder that stopped renewing (killed) on a host whose clock is an hour AHEAD: by its
// timestamps it is valid for another hour, which the old lock would have waited out. It is
// taken over about its lease duration after the waiter first saw it, no earlier. A lease
// released by Release is then taken on the first attempt, even with no wait at all.
func testDeadHolderTakenOver(t *testing.T, c *testbed.Cluster) {
	ctx := testContext(t, time.Minute)
	const name, dead = "dead", "dead-host/1/bbbbbb"
	const seconds = 4
	l, err := writeHolder(ctx, c.Client, name, dead, seconds, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if expiredByItsTimestamps(l, time.Now().Add(50*time.Minute)) {
		t.Fatal("the dead holder's record is expired by its timestamps: the test shows nothing")
	}
	waiter := newLock(t, c, quick, name)
	waiter.Labels = map[string]string{"app.kubernetes.io/managed-by": "bootcore"}
	var told []string
	start := time.Now()
	h := acquireT(t, ctx, waiter, 30*time.Second, func(h string) { told = append(told, h) })
	took := time.Since(start)
	// The waiter's first look is after start; its retries are at most 2.2 RetryPeriod apart.
	limit := seconds*time.Second + 22*waiter.RetryPeriod/10 + 2*time.Second
	if took < seconds*time.Second || took > limit {
		t.Fatalf("dead holder taken over after %s, want between %ds and %s", took, seconds, limit)
	}
	if len(told) != 1 || told[0] != dead {
		t.Errorf("onWait was told %q, want once %q", told, dead)
	}
	got := holderOf(t, ctx, c.Client, name)
	if *got.Spec.HolderIdentity != waiter.Identity || got.Labels["app.kubernetes.io/managed-by"] != "bootcore" {
		t.Fatalf("Lease after the takeover: holder %q, labels %v", *got.Spec.HolderIdentity, got.Labels)
	}
	t.Logf("dead holder (clock an hour ahead, lease %ds) taken over after %s", seconds, took.Round(time.Millisecond))

	h.Release()
	if cause := context.Cause(h.Context()); !errors.Is(cause, ErrReleased) {
		t.Errorf("after Release the context's cause is %v", cause)
	}
	// A newcomer with the default (long) durations and no wait: it never saw the Lease
	// before, so only a released Lease can be taken on its first attempt.
	next := newLock(t, c, Lock{}, name)
	start = time.Now()
	acquireT(t, ctx, next, 0, nil)
	if took := time.Since(start); took > next.withDefaultsT(t).RetryPeriod {
		t.Fatalf("released Lease taken after %s, more than one attempt", took)
	} else {
		t.Logf("released Lease taken by a newcomer after %s", took.Round(time.Millisecond))
	}
}

func (l *Lock) withDefaultsT(t *testing.T) Lock {
	d, err := l.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type result struct {
	h   *Held
	err error
	at  time.Time
}

// 3. Two agents start at once, with the default durations: exactly one holds the lock, the
// other waits (told who holds it) and takes the lock as soon as the first releases it,
// long before the Lease would have expired.
func testTwoAcquireOneHolds(t *testing.T, c *testbed.Cluster) {
	ctx := testContext(t, time.Minute)
	const name = "two"
	locks := []*Lock{newLock(t, c, Lock{}, name), newLock(t, c, Lock{}, name)}
	results := []chan result{make(chan result, 1), make(chan result, 1)}
	told := []chan string{make(chan string, 4), make(chan string, 4)}
	for i, l := range locks {
		go func() {
			h, err := l.Acquire(ctx, time.Minute, func(h string) { told[i] <- h })
			results[i] <- result{h, err, time.Now()}
		}()
	}
	var first result
	var winner int
	select {
	case first = <-results[0]:
	case first = <-results[1]:
		winner = 1
	case <-ctx.Done():
		t.Fatal("neither took the lock")
	}
	if first.err != nil {
		t.Fatal(first.err)
	}
	loser := 1 - winner
	t.Cleanup(first.h.Release)
	select {
	case h := <-told[loser]:
		if h != locks[winner].Identity {
			t.Fatalf("the waiter was told the holder is %q, want %q", h, locks[winner].Identity)
		}
	case r := <-results[loser]:
		if r.h != nil {
			r.h.Release()
		}
		t.Fatalf("both took the lock (second: %v)", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the second was not told who holds the lock")
	}
	select {
	case r := <-results[loser]:
		t.Fatalf("the second returned while the first holds the lock: %v", r.err)
	default:
	}
	if got := *holderOf(t, ctx, c.Client, name).Spec.HolderIdentity; got != locks[winner].Identity {
		t.Fatalf("Lease held by %q, want the first %q", got, locks[winner].Identity)
	}

	first.h.Release()
	released := time.Now()
	var second result
	select {
	case second = <-results[loser]:
	case <-ctx.Done():
		t.Fatal("the second never took the lock")
	}
	if second.err != nil {
		t.Fatal(second.err)
	}
	defer second.h.Release()
	d := locks[loser].withDefaultsT(t)
	after := second.at.Sub(released)
	if limit := 22*d.RetryPeriod/10 + 2*time.Second; after > limit {
		t.Fatalf("the second took the released lock %s after the release, want at most %s (lease duration %s)", after, limit, d.LeaseDuration)
	}
	if err := second.h.Context().Err(); err != nil {
		t.Fatalf("the second's lock: %v", context.Cause(second.h.Context()))
	}
	if got := *holderOf(t, ctx, c.Client, name).Spec.HolderIdentity; got != locks[loser].Identity {
		t.Fatalf("Lease held by %q, want the second %q", got, locks[loser].Identity)
	}
	t.Logf("one of two held the lock; the other took it %s after the release", after.Round(time.Millisecond))
}

// 4a. Another process overwrites the Lease's holder: the holder's context is cancelled
// with ErrLost within RenewDeadline + RetryPeriod, and its release does not overwrite the
// new holder.
func testTakenOverByForce(t *testing.T, c *testbed.Cluster) {
	ctx := testContext(t, time.Minute)
	const name, intruder = "force", "intruder/1/cccccc"
	l := newLock(t, c, quick, name)
	h := acquireT(t, ctx, l, 10*time.Second, nil)
	if _, err := writeHolder(ctx, c.Client, name, intruder, 60, 0); err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	limit := l.RenewDeadline + l.RetryPeriod
	select {
	case <-h.Context().Done():
	case <-time.After(limit + time.Second):
		t.Fatalf("still holding %s after the Lease was taken over", limit+time.Second)
	}
	lost := time.Since(taken)
	cause := context.Cause(h.Context())
	if !errors.Is(cause, ErrLost) || !strings.Contains(cause.Error(), "lost the agent lock") || !strings.Contains(cause.Error(), intruder) {
		t.Fatalf("cause %v", cause)
	}
	h.Release()
	if got := *holderOf(t, ctx, c.Client, name).Spec.HolderIdentity; got != intruder {
		t.Fatalf("after Release the Lease is held by %q, want the intruder", got)
	}
	t.Logf("lost %s after the takeover (limit %s): %v", lost.Round(time.Millisecond), limit, cause)
}

// 4b. The API server is killed and comes back. A lock with short durations is lost within
// RenewDeadline + RetryPeriod of the last renewal; a lock with the defaults survives the
// same outage and renews once the API server is back.
func testAPIServerOutage(t *testing.T, c *testbed.Cluster) {
	ctx := testContext(t, time.Minute)
	short := newLock(t, c, quick, "outage-short")
	def := newLock(t, c, Lock{}, "outage-default")
	// A waitFor far shorter than the hold: once leading, it must not cancel anything.
	hs := acquireT(t, ctx, short, time.Second, nil)
	hd := acquireT(t, ctx, def, time.Second, nil)

	down, err := c.Crash("kube-apiserver")
	if err != nil {
		t.Fatal(err)
	}
	// No renewal can have been sent after the kill, so the short lock must be lost
	// RenewDeadline + RetryPeriod after it at the latest.
	limit := short.RenewDeadline + short.RetryPeriod
	select {
	case <-hs.Context().Done():
	case <-time.After(limit + time.Second):
		t.Fatalf("short lock still held %s after the API server was killed", limit+time.Second)
	}
	lost := time.Since(down.At)
	if cause := context.Cause(hs.Context()); !errors.Is(cause, ErrLost) {
		t.Fatalf("short lock: cause %v", cause)
	} else {
		t.Logf("short lock lost %s after the kill (limit %s): %v", lost.Round(time.Millisecond), limit, cause)
	}

	// The outage (a fault, not a synchronisation): 7 s down, then the API server's start
	// (about 2 s here), as a kube-apiserver restart on a node.
	select {
	case <-time.After(7*time.Second - time.Since(down.At)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if err := down.Start(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	outage := back.Sub(down.At)
	t.Logf("API server back after %s", outage.Round(time.Millisecond))

	// The default lock renews on the restarted API server (renewTime is written on this
	// host's clock, so comparing it with ours is sound here).
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoordinationV1().Leases(DefaultNamespace).Get(ctx, def.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != def.Identity {
			return false, fmt.Errorf("Lease held by %q", h)
		}
		return l.Spec.RenewTime.After(back), nil
	})
	if err != nil {
		t.Fatalf("default lock did not renew after the outage: %v", err)
	}
	if err := hd.Context().Err(); err != nil {
		t.Fatalf("default lock lost in a %s outage: %v", outage, context.Cause(hd.Context()))
	}
	t.Logf("default lock (renew deadline %s) kept through a %s outage", DefaultRenewDeadline, outage.Round(time.Millisecond))
}

// Pure logic: the constraints on the durations, and what a HeldError tells the operator.
func TestDefaultsAndErrors(t *testing.T) {
	for _, l := range []Lock{
		{LeaseDuration: 1500 * time.Millisecond},
		{LeaseDuration: 20 * time.Second}, // <= 20 s + 2 s
		{LeaseDuration: 10 * time.Second, RenewDeadline: 8 * time.Second, RetryPeriod: 2 * time.Second},
		{Identity: "x"}, // no client
	} {
		if l.Identity == "" {
			l.Client = &kubernetes.Clientset{}
		}
		if _, err := l.Acquire(context.Background(), 0, nil); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	d, err := (&Lock{Client: &kubernetes.Clientset{}}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if d.Namespace != "kube-system" || d.Name != "bootcore-agent" || d.Identity == "" ||
		d.LeaseDuration != DefaultLeaseDuration || d.RenewDeadline != DefaultRenewDeadline || d.RetryPeriod != DefaultRetryPeriod {
		t.Errorf("defaults %+v", d)
	}
	if parts := strings.Split(NewIdentity(), "/"); len(parts) != 3 || len(parts[2]) != 6 {
		t.Errorf("identity %q is not host/pid/hex", NewIdentity())
	}
	if a, b := NewIdentity(), NewIdentity(); a == b {
		t.Errorf("two identities of one process are equal: %s", a)
	}
	msg := (&HeldError{Holder: "h1/7/abcdef", Lease: "kube-system/bootcore-agent", Waited: 5 * time.Minute, Expiry: 30 * time.Second}).Error()
	for _, want := range []string{"h1/7/abcdef", "Lease kube-system/bootcore-agent", "waited 5m0s", "expires on its own", "30s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
}
