package talosemu_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	"github.com/siderolabs/talos/pkg/machinery/config"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// Manifests of a control-plane patch like the one bootcore gen produces:
// a Namespace, a CRD and a custom resource of it, and a Cilium stand-in
// (agent DaemonSet + operator Deployment) in kube-system.
const crdManifest = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.lab.bootcore.dev
spec:
  group: lab.bootcore.dev
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

// The custom resource comes before its CRD in file order on purpose: Talos
// moves CRDs ahead of it but does not wait for them to be established.
const appManifest = `apiVersion: lab.bootcore.dev/v1
kind: Widget
metadata:
  name: first
  namespace: lab
spec:
  size: 3
---
apiVersion: v1
kind: Namespace
metadata:
  name: lab
`

const ciliumManifest = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cilium
  namespace: kube-system
spec:
  selector:
    matchLabels: {k8s-app: cilium}
  template:
    metadata:
      labels: {k8s-app: cilium}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers:
      - name: cilium-agent
        image: quay.io/cilium/cilium:v1.19.6
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cilium-operator
  namespace: kube-system
spec:
  replicas: 1
  selector:
    matchLabels: {io.cilium/app: operator}
  template:
    metadata:
      labels: {io.cilium/app: operator}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers:
      - name: cilium-operator
        image: quay.io/cilium/operator-generic:v1.19.6
`

// patch114 ships the manifests as Talos 1.14 KubeInlineManifestConfig documents.
func patch114() []byte {
	var b strings.Builder
	for _, m := range []struct{ name, body string }{{"cilium", ciliumManifest}, {"app", appManifest}, {"crds", crdManifest}} {
		fmt.Fprintf(&b, "---\napiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: %s\nmanifest: |\n%s", m.name, indent(m.body, "  "))
	}
	return []byte(b.String())
}

// patchV1Alpha1 ships the same manifests in v1alpha1 cluster.inlineManifests.
func patchV1Alpha1() []byte {
	var b strings.Builder
	b.WriteString("cluster:\n  inlineManifests:\n")
	for _, m := range []struct{ name, body string }{{"cilium", ciliumManifest}, {"app", appManifest}, {"crds", crdManifest}} {
		fmt.Fprintf(&b, "  - name: %s\n    contents: |\n%s", m.name, indent(m.body, "      "))
	}
	return []byte(b.String())
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestInlineManifestsBothContracts needs no cluster: both ways of shipping
// inline manifests give the same manifests, sorted by ID, and the same
// object order (Namespaces, CRDs, then file order).
func TestInlineManifestsBothContracts(t *testing.T) {
	var orders [][]string
	for _, tc := range []struct {
		contract string
		patch    []byte
	}{{"v1.14", patch114()}, {"v1.13", patchV1Alpha1()}, {"v1.14", patchV1Alpha1()}} {
		cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{TalosVersion: tc.contract}, tc.patch)
		if err != nil {
			t.Fatalf("contract %s: %v", tc.contract, err)
		}
		ms := talosemu.InlineManifests(cfg)
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		if fmt.Sprint(ids) != "[99-app 99-cilium 99-crds]" {
			t.Errorf("contract %s: manifest IDs %v", tc.contract, ids)
		}
		objs, err := talosemu.Objects(ms)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, o := range objs {
			order = append(order, o.GetKind()+"/"+o.GetName())
		}
		orders = append(orders, order)
	}
	want := "[Namespace/lab CustomResourceDefinition/widgets.lab.bootcore.dev Widget/first DaemonSet/cilium Deployment/cilium-operator]"
	for i, o := range orders {
		if fmt.Sprint(o) != want {
			t.Errorf("config %d: object order\n got %v\nwant %s", i, o, want)
		}
	}
}

var (
	widgetGVR    = schema.GroupVersionResource{Group: "lab.bootcore.dev", Version: "v1", Resource: "widgets"}
	daemonSetGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

func TestTalosBootAppliesInlineManifests(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "talos"})
	ctx := context.Background()
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, patch114())
	if err != nil {
		t.Fatal(err)
	}

	// A pre-existing object with the same name as one in the manifests must
	// be left alone (create-only) and still land in the inventory.
	if err := c.Apply(ctx, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab\n  labels: {preexisting: \"yes\"}\n")); err != nil {
		t.Fatal(err)
	}

	node := &talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: t.Logf}
	res, err := node.Boot(ctx, cfg, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// This config leaves Talos's CoreDNS, kube-proxy and Flannel on: Talos applies them too.
	own, ownKeys := talosOwn(t, cfg)
	for _, want := range []string{"DaemonSet kube-system/kube-flannel", "DaemonSet kube-system/kube-proxy", "Deployment kube-system/coredns", "Service kube-system/kube-dns", "Secret kube-system/bootstrap-token-25p8ak"} {
		if !slices.Contains(own, want) {
			t.Errorf("Talos's own manifests lack %s: %v", want, own)
		}
	}
	slices.Sort(res.Created)
	if want := sorted(append(own, "CustomResourceDefinition widgets.lab.bootcore.dev", "DaemonSet kube-system/cilium", "Deployment kube-system/cilium-operator", "Widget lab/first")); fmt.Sprint(res.Created) != fmt.Sprint(want) {
		t.Errorf("created %v\nwant %s", res.Created, want)
	}
	if fmt.Sprint(res.Existing) != "[Namespace lab]" {
		t.Errorf("existing %v, want [Namespace lab]", res.Existing)
	}

	// Existing object not updated: no inventory annotation, no talos field manager.
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, "lab", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ns.Annotations[talosemu.InventoryAnnotation]; ok || managedBy(ns.ManagedFields, talosemu.FieldManager) {
		t.Errorf("pre-existing namespace was modified: annotations %v", ns.Annotations)
	}

	// Created objects: field manager talos (apply), owning-inventory annotation.
	ds, err := c.Get(ctx, daemonSetGVR, "kube-system", "cilium")
	if err != nil {
		t.Fatal(err)
	}
	if ds.GetAnnotations()[talosemu.InventoryAnnotation] != talosemu.InventoryName || !managedBy(ds.GetManagedFields(), talosemu.FieldManager) {
		t.Errorf("cilium DaemonSet: annotations %v, managers %v", ds.GetAnnotations(), managers(ds.GetManagedFields()))
	}

	// The patch left Flannel on: Talos's Flannel DaemonSet runs beside the boot CNI.
	flannel, err := c.Get(ctx, daemonSetGVR, "kube-system", "kube-flannel")
	if err != nil {
		t.Errorf("Flannel DaemonSet on the bed: %v", err)
	} else if flannel.GetAnnotations()[talosemu.InventoryAnnotation] != talosemu.InventoryName {
		t.Errorf("Flannel DaemonSet: annotations %v", flannel.GetAnnotations())
	}

	// Inventory lists every object, in go-kubernetes' format.
	inv, err := c.Client.CoreV1().ConfigMaps(talosemu.InventoryNamespace).Get(ctx, talosemu.InventoryName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range inv.Data {
		if _, err := object.ParseObjMetadata(k); err != nil {
			t.Errorf("inventory key %q: %v", k, err)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := fmt.Sprint(sorted(append(ownKeys, "_lab__Namespace", "_widgets.lab.bootcore.dev_apiextensions.k8s.io_CustomResourceDefinition", "kube-system_cilium-operator_apps_Deployment", "kube-system_cilium_apps_DaemonSet", "lab_first_lab.bootcore.dev_Widget")))
	if fmt.Sprint(keys) != want {
		t.Errorf("inventory keys\n got %v\nwant %s", keys, want)
	}

	// The cluster comes up: CRD established, Cilium rolled out, control planes Ready.
	if err := c.WaitCRDEstablished(ctx, "widgets.lab.bootcore.dev", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDaemonSetRolledOut(ctx, "kube-system", "cilium", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDeploymentRolledOut(ctx, "kube-system", "cilium-operator", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNodesReady(ctx, testbed.LabelControlPlane, true, time.Minute); err != nil {
		t.Fatal(err)
	}

	// A second boot (and one of another control-plane node) changes nothing,
	// even when an object drifted from its manifest: create-only.
	widget, _ := c.Get(ctx, widgetGVR, "lab", "first")
	_ = unstructured.SetNestedField(widget.Object, int64(5), "spec", "size")
	if _, err := c.Dynamic.Resource(widgetGVR).Namespace("lab").Update(ctx, widget, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := resourceVersions(t, c)
	for _, name := range []string{"controlplane-1", "controlplane-2"} {
		again := &talosemu.Node{Name: name, Config: c.Config, Logf: t.Logf}
		res, err := again.Boot(ctx, cfg, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Created) != 0 || len(res.Existing) != 5+len(own) {
			t.Errorf("boot of %s: created %v, existing %v", name, res.Created, res.Existing)
		}
	}
	if after := resourceVersions(t, c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("second boot changed objects:\nbefore %v\nafter  %v", before, after)
	}
	widget, _ = c.Get(ctx, widgetGVR, "lab", "first")
	if size, _, _ := unstructured.NestedInt64(widget.Object, "spec", "size"); size != 5 {
		t.Errorf("Widget reverted to size %d", size)
	}

	// Talos checks the owning inventory on the manifest's object, not the live one: a live
	// object in its inventory is skipped whatever it carries ...
	if err := c.Apply(ctx, []byte("apiVersion: lab.bootcore.dev/v1\nkind: Widget\nmetadata:\n  name: first\n  namespace: lab\n  annotations: {config.k8s.io/owning-inventory: someone-else}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := (&talosemu.Node{Name: "controlplane-3", Config: c.Config}).Boot(ctx, cfg, 3*time.Second); err != nil {
		t.Errorf("a live object of another inventory: %v", err)
	}
	// ... and a manifest object naming another inventory is refused.
	foreign := strings.Replace(string(patch114()), "    name: first\n", "    name: second\n    annotations: {config.k8s.io/owning-inventory: someone-else}\n", 1)
	fcfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, []byte(foreign))
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&talosemu.Node{Name: "controlplane-3", Config: c.Config}).Boot(ctx, fcfg, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), `unexpected foreign inventory annotation on Widget lab/second ("someone-else")`) {
		t.Errorf("want a foreign-inventory error, got %v", err)
	}

	// An object Talos's inventory holds is never re-created: deleted, it stays deleted.
	if err := c.Dynamic.Resource(widgetGVR).Namespace("lab").Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := (&talosemu.Node{Name: "controlplane-1", Config: c.Config}).Boot(ctx, cfg, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, widgetGVR, "lab", "first"); !apierrors.IsNotFound(err) {
		t.Errorf("deleted Widget after a reboot: %v, want not found (Talos does not re-create inventory objects)", err)
	}
}

// A run that meets an error other than a bad object (here PodSecurity refusing a privileged
// pod: Forbidden) stops there, and Talos writes the inventory its aborted run returned: none.
// Everything recorded before is forgotten, so the next runs backfill it.
func TestTalosAbortedRunEmptiesInventory(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "talos-abort", ControlPlanes: 1, Workers: -1})
	ctx := context.Background()
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, patch114())
	if err != nil {
		t.Fatal(err)
	}
	node := &talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: t.Logf}
	if _, err := node.Boot(ctx, cfg, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	inventory := func() map[string]string {
		inv, err := c.Client.CoreV1().ConfigMaps(talosemu.InventoryNamespace).Get(ctx, talosemu.InventoryName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return inv.Data
	}
	full := len(inventory())

	const privileged = `apiVersion: v1
kind: Pod
metadata:
  name: privileged
  namespace: lab
spec:
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: after-the-pod
  namespace: lab
`
	bad := string(patch114()) + fmt.Sprintf("---\napiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: a-pod\nmanifest: |\n%s", indent(privileged, "  "))
	bcfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := talosemu.Objects(talosemu.AllManifests(bcfg))
	if err != nil {
		t.Fatal(err)
	}
	_, err = node.ApplyOnce(ctx, objs)
	if err == nil || !strings.Contains(err.Error(), "error creating Pod lab/privileged") || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("want the run aborted on the privileged pod, got %v", err)
	}
	if got := inventory(); len(got) != 0 {
		t.Errorf("inventory after the aborted run: %d entries (of %d), want none", len(got), full)
	}
	if _, err := c.Client.CoreV1().ConfigMaps("lab").Get(ctx, "after-the-pod", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap after the pod: %v, want not created (the run stopped)", err)
	}
	// The next good run backfills every existing object.
	if _, err := node.Boot(ctx, cfg, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := len(inventory()); got != full {
		t.Errorf("inventory after the next run: %d entries, want %d", got, full)
	}
}

// A custom resource whose CRD is not established yet fails the run; the
// retry after the CRD is established creates it.
func TestTalosRetryUntilCRDEstablished(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "talos-retry", ControlPlanes: 1, Workers: -1})
	ctx := context.Background()
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, patch114())
	if err != nil {
		t.Fatal(err)
	}
	objs, err := talosemu.Objects(talosemu.InlineManifests(cfg))
	if err != nil {
		t.Fatal(err)
	}
	node := &talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: t.Logf}

	// First run: within the same run the CRD is created but its kind is not
	// discoverable yet; everything else is applied anyway.
	res, err := node.ApplyOnce(ctx, objs)
	if err == nil || !strings.Contains(err.Error(), "Widget") {
		t.Fatalf("first run: want an error for the Widget, got %v", err)
	}
	if len(res.Created) != 4 {
		t.Errorf("first run created %v, want all but the Widget", res.Created)
	}
	if _, err := c.Get(ctx, widgetGVR, "lab", "first"); !apierrors.IsNotFound(err) {
		t.Errorf("Widget exists after a failed run: %v", err)
	}
	// Retried with backoff until it succeeds.
	res, err = node.ApplyUntilSuccess(ctx, objs, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Created) != "[Widget lab/first]" {
		t.Errorf("retry created %v", res.Created)
	}
}

// Two control-plane nodes booting at once end with the same cluster state
// as one: every object created once, a complete inventory.
func TestTalosConcurrentBoot(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "talos-concurrent"})
	ctx := context.Background()
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, patch114())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]talosemu.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		node := &talosemu.Node{Name: fmt.Sprintf("controlplane-%d", i+1), Config: c.Config, Logf: t.Logf}
		wg.Go(func() { results[i], errs[i] = node.Boot(ctx, cfg, 2*time.Minute) })
	}
	wg.Wait()
	var created []string
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		created = append(created, results[i].Created...)
	}
	slices.Sort(created)
	own, _ := talosOwn(t, cfg)
	if want := sorted(append(own, "CustomResourceDefinition widgets.lab.bootcore.dev", "DaemonSet kube-system/cilium", "Deployment kube-system/cilium-operator", "Namespace lab", "Widget lab/first")); fmt.Sprint(created) != fmt.Sprint(want) {
		t.Errorf("created (both nodes) %v\nwant %s", created, want)
	}
	inv, err := c.Client.CoreV1().ConfigMaps(talosemu.InventoryNamespace).Get(ctx, talosemu.InventoryName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Data) != 5+len(own) {
		t.Errorf("inventory has %d entries, want %d: %v", len(inv.Data), 5+len(own), inv.Data)
	}
	if err := c.WaitNodesReady(ctx, testbed.LabelControlPlane, true, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func managedBy(fields []metav1.ManagedFieldsEntry, manager string) bool {
	return slices.Contains(managers(fields), manager)
}

func managers(fields []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, f := range fields {
		out = append(out, f.Manager)
	}
	return out
}

// resourceVersions of everything the manifests contain plus the inventory.
func resourceVersions(t *testing.T, c *testbed.Cluster) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, ref := range []struct {
		gvr       schema.GroupVersionResource
		namespace string
		name      string
	}{
		{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, "", "lab"},
		{schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}, "", "widgets.lab.bootcore.dev"},
		{widgetGVR, "lab", "first"},
		{daemonSetGVR, "kube-system", "cilium"},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "kube-system", "cilium-operator"},
		{configMapGVR, talosemu.InventoryNamespace, talosemu.InventoryName},
	} {
		obj, err := c.Get(ctx, ref.gvr, ref.namespace, ref.name)
		if err != nil {
			t.Fatal(err)
		}
		out[ref.name] = obj.GetResourceVersion()
	}
	return out
}

// talosOwn returns the objects Talos applies of its own for cfg ("Kind namespace/name") and
// their inventory keys.
func talosOwn(t *testing.T, cfg config.Config) (names, keys []string) {
	t.Helper()
	objs, err := talosemu.Objects(talosemu.BootstrapManifests(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		name := o.GetKind() + " " + o.GetName()
		if o.GetNamespace() != "" {
			name = o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
		}
		names = append(names, name)
		ref, err := object.RuntimeToObjMeta(o)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ref.String())
	}
	return names, keys
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// upgrade-k8s's manifest sync (go-kubernetes' SSA manager with talosctl's defaults) reverts
// what changed an object in Talos's inventory and prunes what left the manifests: the reason a
// hand-over must take bootcore's objects out of the inventory and its manifests out of the config.
func TestUpgradeK8sSyncRevertsAndPrunes(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "talos-upgrade", ControlPlanes: 1, Workers: -1})
	ctx := context.Background()
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, patch114())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: t.Logf}).Boot(ctx, cfg, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	widget, err := c.Get(ctx, widgetGVR, "lab", "first")
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(widget.Object, int64(5), "spec", "size")
	if _, err := c.Dynamic.Resource(widgetGVR).Namespace("lab").Update(ctx, widget, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := talosemu.UpgradeK8sSync(ctx, c.Config, cfg); err != nil {
		t.Fatal(err)
	}
	widget, _ = c.Get(ctx, widgetGVR, "lab", "first")
	if size, _, _ := unstructured.NestedInt64(widget.Object, "spec", "size"); size != 3 {
		t.Errorf("Widget size %d after upgrade-k8s, want the manifest's 3 (force-applied)", size)
	}

	// The cilium manifest removed from the config: upgrade-k8s prunes its objects.
	var without strings.Builder
	for _, m := range []struct{ name, body string }{{"app", appManifest}, {"crds", crdManifest}} {
		fmt.Fprintf(&without, "---\napiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: %s\nmanifest: |\n%s", m.name, indent(m.body, "  "))
	}
	cfg2, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, []byte(without.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := talosemu.UpgradeK8sSync(ctx, c.Config, cfg2); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitGone(ctx, daemonSetGVR, "kube-system", "cilium", time.Minute); err != nil {
		t.Errorf("cilium DaemonSet after upgrade-k8s without its manifest: %v, want pruned", err)
	}
}
