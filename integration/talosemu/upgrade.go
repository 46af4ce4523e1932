package talosemu

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	gokssa "github.com/siderolabs/go-kubernetes/kubernetes/ssa"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

var quietOnce sync.Once

// UpgradeK8sSync is the manifest sync of `talosctl upgrade-k8s` against a Talos >= 1.13 node
// whose machine config is cfg, with talosctl's defaults: PerformManifestsSync and
// syncManifestsSSA (pkg/cluster/kubernetes/talos_managed.go, Talos ad8823176) give the node's
// manifests (Talos's own and the inline ones) to go-kubernetes' ssa.Manager under Talos's field
// manager and inventory, with --manifests-inventory-policy=AdoptIfNoInventory and pruning on:
// every manifest object without another inventory's annotation is adopted and applied with
// forced ownership over whatever changed it since, and every inventory object no longer in the
// manifests is deleted. This is Talos's own library doing the sync; only the caller is emulated.
func UpgradeK8sSync(ctx context.Context, cfg *rest.Config, machine config.Config) ([]gokssa.Change, error) {
	// The SSA manager's controller-runtime client logs through a global logger that would
	// otherwise print a stack trace complaining it was never set.
	quietOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	objs, err := Objects(AllManifests(machine))
	if err != nil {
		return nil, err
	}
	m, err := gokssa.NewManager(ctx, cfg, FieldManager, InventoryNamespace, InventoryName)
	if err != nil {
		return nil, fmt.Errorf("upgrade-k8s: SSA manager: %w", err)
	}
	defer m.Close()
	changes, err := m.Apply(ctx, objs, gokssa.ApplyOptions{
		InventoryPolicy: gokssa.InventoryPolicyAdoptIfNoInventory,
		WaitTimeout:     time.Minute,
		CustomStageKinds: map[schema.GroupKind]struct{}{
			schema.ParseGroupKind("ConfigMap"): {},
			schema.ParseGroupKind("Secret"):    {},
		},
	})
	if err != nil {
		return changes, fmt.Errorf("upgrade-k8s: applying manifests: %w", err)
	}
	return changes, nil
}
