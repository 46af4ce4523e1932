package talosemu

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Talos serialises manifest application across control-plane nodes with an
// etcd mutex. The emulation has no etcd client; a Lease works as the same
// kind of cluster-wide lock: whoever creates it holds it, deleting it
// releases it, and a holder that vanished is overtaken after lockTTL.
const (
	lockName = "bootcore-talosemu-manifest-apply"
	lockTTL  = 60 * time.Second
)

func (n *Node) lock(ctx context.Context, client kubernetes.Interface) (unlock func(), err error) {
	leases := client.CoordinationV1().Leases(InventoryNamespace)
	var held *coordinationv1.Lease
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: lockName},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.Name),
				LeaseDurationSeconds: ptr.To(int32(lockTTL / time.Second)),
				AcquireTime:          &now,
			},
		}, metav1.CreateOptions{})
		if err == nil {
			held = lease
			return true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, err
		}
		cur, err := leases.Get(ctx, lockName, metav1.GetOptions{})
		if err != nil {
			return false, nil // released meanwhile: try again
		}
		if cur.Spec.AcquireTime != nil && time.Since(cur.Spec.AcquireTime.Time) > lockTTL {
			_ = leases.Delete(ctx, lockName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return func() {
		// Release even when ctx is done, else the next run waits for lockTTL.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = leases.Delete(ctx, lockName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &held.UID}})
	}, nil
}
