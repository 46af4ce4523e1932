package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The coordination Lease that keeps two agents from handing over one cluster at once. It
// lives in kube-system because flux-system may not exist yet when the lock is taken.
const (
	LockNamespace = "kube-system"
	LockName      = "bootcore-agent"
)

// LockHeldError is returned when another agent held the lock for the whole wait.
type LockHeldError struct {
	Holder string
	Since  time.Time
	Waited time.Duration
}

func (e *LockHeldError) Error() string {
	return fmt.Sprintf("another bootcore agent (%s, holding Lease %s/%s since %s) is handing this cluster over; waited %s. Let it finish, or if it died, the lock expires on its own",
		e.Holder, LockNamespace, LockName, e.Since.UTC().Format(time.RFC3339), e.Waited.Round(time.Second))
}

// Lock is a Lease held by one agent. A holder renews it every TTL/3; a holder that stops
// renewing (killed) loses it after TTL, so a re-run never waits forever.
type Lock struct {
	Client   kubernetes.Interface
	Identity string
	TTL      time.Duration
	// PollInterval is how often a waiting agent retries; default 1s.
	PollInterval time.Duration

	held *coordinationv1.Lease
	now  func() time.Time
}

// NewIdentity names this agent process for the Lease's holderIdentity.
func NewIdentity() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

func (l *Lock) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// tryAcquire takes the lock if it is free or expired; otherwise it returns the current lease.
func (l *Lock) tryAcquire(ctx context.Context) (bool, *coordinationv1.Lease, error) {
	leases := l.Client.CoordinationV1().Leases(LockNamespace)
	now := metav1.NewMicroTime(l.clock())
	want := coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(l.Identity),
		LeaseDurationSeconds: ptr.To(int32(l.TTL.Seconds())),
		AcquireTime:          &now,
		RenewTime:            &now,
	}
	created, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: LockNamespace, Labels: map[string]string{managedByLabel: "bootcore"}},
		Spec:       want,
	}, metav1.CreateOptions{FieldManager: FieldManager})
	if err == nil {
		l.held = created
		return true, created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, nil, fmt.Errorf("taking the agent lock (Lease %s/%s): %w", LockNamespace, LockName, err)
	}
	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil, nil // released meanwhile: the next try creates it
	}
	if err != nil {
		return false, nil, err
	}
	if !l.expired(cur) && ptr.Deref(cur.Spec.HolderIdentity, "") != "" {
		return false, cur, nil
	}
	// Expired (its holder was killed) or released: take it over. The update carries the
	// resourceVersion we read, so of two agents taking over at once only one wins.
	taken := cur.DeepCopy()
	taken.Spec = want
	updated, err := leases.Update(ctx, taken, metav1.UpdateOptions{FieldManager: FieldManager})
	if apierrors.IsConflict(err) {
		return false, cur, nil
	}
	if err != nil {
		return false, nil, err
	}
	l.held = updated
	return true, updated, nil
}

func (l *Lock) expired(lease *coordinationv1.Lease) bool {
	t := lease.Spec.RenewTime
	if t == nil {
		t = lease.Spec.AcquireTime
	}
	if t == nil || lease.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return l.clock().After(t.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second))
}

// Acquire takes the lock, waiting up to wait for another holder to finish; onWait is told
// who holds it (once per holder).
func (l *Lock) Acquire(ctx context.Context, waitFor time.Duration, onWait func(holder string)) error {
	start := l.clock()
	interval := l.PollInterval
	if interval == 0 {
		interval = time.Second
	}
	var last *coordinationv1.Lease
	reported := ""
	outer := ctx
	err := wait.PollUntilContextTimeout(ctx, interval, waitFor, true, func(context.Context) (bool, error) {
		// Requests use the caller's context, not the wait's deadline: a request cut short by
		// the deadline would be an error instead of "still held".
		ok, cur, err := l.tryAcquire(outer)
		if err != nil || ok {
			return ok, err
		}
		if cur != nil {
			last = cur
			if h := ptr.Deref(cur.Spec.HolderIdentity, ""); h != reported && onWait != nil {
				reported = h
				onWait(h)
			}
		}
		return false, nil
	})
	if err == nil {
		return nil
	}
	if last != nil && (errors.Is(err, context.DeadlineExceeded) || wait.Interrupted(err)) && ctx.Err() == nil {
		since := l.clock()
		if last.Spec.AcquireTime != nil {
			since = last.Spec.AcquireTime.Time
		}
		return &LockHeldError{Holder: ptr.Deref(last.Spec.HolderIdentity, ""), Since: since, Waited: l.clock().Sub(start)}
	}
	return err
}

// Keep renews the lock until ctx ends. If the lock is lost (taken over after an expiry, or
// deleted), lost is called once: the caller must stop writing.
func (l *Lock) Keep(ctx context.Context, lost func(error)) {
	ticker := time.NewTicker(l.TTL / 3)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			// An API server that is briefly away (restart) is not a lost lock: the renewal
			// is retried on the next tick. The update carries the held resourceVersion, so
			// if another agent took the lease over meanwhile it fails with a conflict.
			if err := l.renew(ctx); err != nil && ctx.Err() == nil && !transient(err) {
				lost(err)
				return
			}
		}
	}
}

func (l *Lock) renew(ctx context.Context) error {
	lease := l.held.DeepCopy()
	now := metav1.NewMicroTime(l.clock())
	lease.Spec.RenewTime = &now
	updated, err := l.Client.CoordinationV1().Leases(LockNamespace).Update(ctx, lease, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("renewing the agent lock (Lease %s/%s): %w", LockNamespace, LockName, err)
	}
	l.held = updated
	return nil
}

// Release deletes the lease if this agent still holds it. It runs even after the caller's
// context ended, so the next agent does not wait for the TTL.
func (l *Lock) Release() {
	if l.held == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer func() { l.held = nil }()
	leases := l.Client.CoordinationV1().Leases(LockNamespace)
	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if err != nil || ptr.Deref(cur.Spec.HolderIdentity, "") != l.Identity {
		return // gone, or taken over after it expired: not ours to delete
	}
	// The preconditions make the delete fail if another agent took it over since the read.
	_ = leases.Delete(ctx, LockName, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion},
	})
}
