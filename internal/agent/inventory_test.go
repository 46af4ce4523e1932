package agent

import (
	"context"
	"testing"

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRemoveFromInventory(t *testing.T) {
	ctx := context.Background()
	keep := "kube-system_coredns_apps_Deployment"
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: TalosInventoryNamespace, Name: TalosInventoryName, ResourceVersion: "1"},
		Data: map[string]string{
			"kube-system_cilium_apps_DaemonSet":                                              "",
			"_ciliumnetworkpolicies.cilium.io_apiextensions.k8s.io_CustomResourceDefinition": "",
			keep: "",
		},
	}
	c := fake.NewClientset(cm)
	boot := []string{"kube-system_cilium_apps_DaemonSet", "_ciliumnetworkpolicies.cilium.io_apiextensions.k8s.io_CustomResourceDefinition", "kube-system_cilium-operator_apps_Deployment"}
	var drop object.ObjMetadataSet
	for _, k := range boot {
		ref, err := object.ParseObjMetadata(k)
		if err != nil {
			t.Fatal(err)
		}
		drop = append(drop, ref)
	}
	// (The fake clientset ignores dry-run; the e2e tests cover --dry-run on a real API server.)
	removed, err := removeFromInventory(ctx, c, drop, false)
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	got, _ := c.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{})
	if len(got.Data) != 1 || got.Data[keep] != "" {
		t.Errorf("inventory = %v, want only %s", got.Data, keep)
	}
	// Nothing left to remove: no write.
	before := got.ResourceVersion
	if removed, err := removeFromInventory(ctx, c, drop, false); err != nil || len(removed) != 0 {
		t.Errorf("second run: %v, %v", removed, err)
	}
	got, _ = c.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{})
	if got.ResourceVersion != before {
		t.Error("second run wrote the inventory")
	}
	// No inventory (Talos <= 1.12): nothing to do, and nothing created.
	empty := fake.NewClientset()
	if removed, err := removeFromInventory(ctx, empty, drop, false); err != nil || removed != nil {
		t.Errorf("no inventory: %v, %v", removed, err)
	}
	if _, err := empty.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Error("an inventory was created")
	}
}
