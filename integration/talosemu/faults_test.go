package talosemu_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// TestTalosConcurrentEqualsSequential: three control-plane nodes applying the same config at
// the same time, each twice (a reboot), leave a cluster in exactly the state one node
// applying it once leaves in a twin cluster: same objects, same owning-inventory
// annotations, same field managers, same inventory. The other talosemu tests check the
// second run changes nothing and that concurrent runs create each object once; this one
// compares the end states. (Emulation of Talos's inline manifests, see package talosemu.)
func TestTalosConcurrentEqualsSequential(t *testing.T) {
	clusters := testbed.StartManyT(t, testbed.Options{Name: "talos-once", ControlPlanes: 3, Workers: -1},
		testbed.Options{Name: "talos-concurrent", ControlPlanes: 3, Workers: -1})
	once, concurrent := clusters[0], clusters[1]
	ctx := context.Background()
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, patchV1Alpha1())
	if err != nil {
		t.Fatal(err)
	}

	if _, err := (&talosemu.Node{Name: "controlplane-1", Config: once.Config, Logf: t.Logf}).Boot(ctx, cfg, 2*time.Minute); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range 6 {
		node := &talosemu.Node{Name: fmt.Sprintf("controlplane-%d", i%3+1), Config: concurrent.Config, Logf: t.Logf}
		wg.Go(func() { _, errs[i] = node.Boot(ctx, cfg, 2*time.Minute) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	want, got := talosState(t, once), talosState(t, concurrent)
	if !slices.Equal(want, got) {
		t.Errorf("end states differ\none node once:\n  %s\nthree nodes twice, concurrently:\n  %s", strings.Join(want, "\n  "), strings.Join(got, "\n  "))
	}
}

// talosState describes the objects of the manifests and the inventory, without what differs
// between any two clusters (UIDs, resource versions, timestamps).
func talosState(t *testing.T, c *testbed.Cluster) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, ref := range []struct {
		gvr             schema.GroupVersionResource
		namespace, name string
	}{
		{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, "", "lab"},
		{schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}, "", "widgets.lab.bootcore.dev"},
		{widgetGVR, "lab", "first"},
		{daemonSetGVR, "kube-system", "cilium"},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "kube-system", "cilium-operator"},
	} {
		obj, err := c.Get(ctx, ref.gvr, ref.namespace, ref.name)
		if err != nil {
			t.Fatal(err)
		}
		var managers []string
		for _, f := range obj.GetManagedFields() {
			if f.Manager == "talos" {
				managers = append(managers, f.Manager+"/"+string(f.Operation))
			}
		}
		sort.Strings(managers)
		out = append(out, fmt.Sprintf("%s %s/%s generation=%d annotations=%v managers=%v", obj.GetKind(), ref.namespace, ref.name,
			obj.GetGeneration(), obj.GetAnnotations(), managers))
	}
	inv, err := c.Client.CoreV1().ConfigMaps(talosemu.InventoryNamespace).Get(ctx, talosemu.InventoryName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(inv.Data))
	for k, v := range inv.Data {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	out = append(out, fmt.Sprintf("inventory %v", keys))
	return out
}
