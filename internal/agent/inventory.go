package agent

import (
	"context"
	"fmt"
	"sort"

	gokssa "github.com/siderolabs/go-kubernetes/kubernetes/ssa"
	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Talos's manifest inventory (Talos >= 1.13): a ConfigMap whose keys are the objects it
// applied, in go-kubernetes' ObjMetadata format, and an annotation on each of them.
const (
	TalosInventoryNamespace = "kube-system"
	TalosInventoryName      = "talos-bootstrap-manifests-inventory"
	TalosInventoryAnn       = gokssa.InventoryAnnotationKey // config.k8s.io/owning-inventory
)

// inventoryRefs reads the inventory read-only. ok is false when there is none (Talos <= 1.12
// keeps no inventory).
func inventoryRefs(ctx context.Context, c kubernetes.Interface) (cm *corev1.ConfigMap, refs object.ObjMetadataSet, ok bool, err error) {
	cm, err = c.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("reading Talos inventory: %w", err)
	}
	for key := range cm.Data {
		ref, err := object.ParseObjMetadata(key)
		if err != nil {
			return nil, nil, false, fmt.Errorf("Talos inventory %s/%s: key %q: %w", TalosInventoryNamespace, TalosInventoryName, key, err)
		}
		refs = append(refs, ref)
	}
	return cm, refs, true, nil
}

// removeFromInventory drops refs from the inventory ConfigMap. The update carries the
// resourceVersion read, and is retried on conflict, so an entry Talos adds meanwhile (a node
// re-applying its manifests) is not lost. (go-kubernetes' Inventory.Write overwrites
// unconditionally, and GetInventory creates a missing inventory: neither fits here.)
func removeFromInventory(ctx context.Context, c kubernetes.Interface, drop object.ObjMetadataSet, dryRun bool) (removed []string, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		removed = nil
		cm, refs, ok, err := inventoryRefs(ctx, c)
		if err != nil || !ok {
			return err
		}
		cm = cm.DeepCopy()
		for _, ref := range refs {
			if drop.Contains(ref) {
				delete(cm.Data, ref.String())
				removed = append(removed, ref.String())
			}
		}
		if len(removed) == 0 {
			return nil
		}
		opts := metav1.UpdateOptions{FieldManager: FieldManager}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err = c.CoreV1().ConfigMaps(TalosInventoryNamespace).Update(ctx, cm, opts)
		return err
	})
	sort.Strings(removed)
	return removed, err
}
