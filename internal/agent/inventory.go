package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	gokssa "github.com/siderolabs/go-kubernetes/kubernetes/ssa"
	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

func isNoMatch(err error) bool { return err != nil && meta.IsNoMatchError(err) }

func readRepoFile(repo, p string) ([]byte, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(repo, p)
	}
	return os.ReadFile(p)
}

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

// ---- release-talos ----

type releaseTalosPhase struct{ s *state }

func (p *releaseTalosPhase) Name() string { return PhaseReleaseTalos }
func (p *releaseTalosPhase) Title() string {
	return "releasing the handed-over objects from Talos's inventory " + TalosInventoryNamespace + "/" + TalosInventoryName
}

// bootRefs are the inventory references of what Talos applied from bootcore's manifests.
func (p *releaseTalosPhase) bootRefs() (object.ObjMetadataSet, []*unstructured.Unstructured, error) {
	boot, err := p.s.Boot()
	if err != nil {
		return nil, nil, err
	}
	var refs object.ObjMetadataSet
	var objs []*unstructured.Unstructured
	for _, o := range boot.all() {
		o = o.DeepCopy()
		_, m, err := p.s.k.resourceFor(o.GroupVersionKind(), o.GetNamespace())
		if err != nil {
			return nil, nil, fmt.Errorf("%s from %s: %w", describe(o), boot.Path, err)
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() == "" {
				o.SetNamespace(metav1.NamespaceDefault) // as Talos applies it
			}
		} else {
			o.SetNamespace("")
		}
		refs = append(refs, object.ObjMetadata{Namespace: o.GetNamespace(), Name: o.GetName(), GroupKind: o.GroupVersionKind().GroupKind()})
		objs = append(objs, o)
	}
	return refs, objs, nil
}

// annotated returns the boot objects that still carry Talos's owning-inventory annotation.
func (p *releaseTalosPhase) annotated(ctx context.Context, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		live, err := p.s.k.get(ctx, o.GroupVersionKind(), o.GetNamespace(), o.GetName())
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if live.GetAnnotations()[TalosInventoryAnn] == TalosInventoryName {
			out = append(out, o)
		}
	}
	return out, nil
}

func (p *releaseTalosPhase) Done(ctx context.Context) (bool, string, error) {
	refs, objs, err := p.bootRefs()
	if err != nil {
		return false, "", err
	}
	_, inv, ok, err := inventoryRefs(ctx, p.s.k.client)
	if err != nil {
		return false, "", err
	}
	for _, ref := range inv {
		if refs.Contains(ref) {
			return false, ref.String() + " is in Talos's inventory", nil
		}
	}
	still, err := p.annotated(ctx, objs)
	if err != nil {
		return false, "", err
	}
	if len(still) > 0 {
		return false, describe(still[0]) + " carries " + TalosInventoryAnn, nil
	}
	talosWhy := ""
	if p.s.opts.Talos != nil {
		done, why, err := p.talosDone(ctx)
		if err != nil || !done {
			return done, why, err
		}
		talosWhy = "; " + why
	} else {
		p.s.talosCmd = p.command(ctx)
	}
	if !ok {
		return true, "no Talos inventory (Talos <= 1.12 keeps none)" + talosWhy, nil
	}
	return true, fmt.Sprintf("none of the %d boot objects is in Talos's inventory", len(refs)) + talosWhy, nil
}

func (p *releaseTalosPhase) Run(ctx context.Context) error {
	s := p.s
	refs, objs, err := p.bootRefs()
	if err != nil {
		return err
	}
	// Inventory first: an object out of the inventory is never pruned by upgrade-k8s; a
	// left-over annotation only matters to Talos's own inventory checks.
	removed, err := removeFromInventory(ctx, s.k.client, refs, s.opts.DryRun)
	if err != nil {
		return fmt.Errorf("updating Talos inventory %s/%s: %w", TalosInventoryNamespace, TalosInventoryName, err)
	}
	verb := "removed"
	if s.opts.DryRun {
		verb = "would remove"
	}
	if len(removed) > 0 {
		s.rep.Emit(Event{Type: EventChange, Phase: PhaseReleaseTalos, Object: "ConfigMap " + TalosInventoryNamespace + "/" + TalosInventoryName,
			Message: fmt.Sprintf("%s %d objects from Talos's inventory: %s", verb, len(removed), strings.Join(removed, ", "))})
	}
	still, err := p.annotated(ctx, objs)
	if err != nil {
		return err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{TalosInventoryAnn: nil}}})
	for _, o := range still {
		if err := s.k.patchMerge(ctx, o.GroupVersionKind(), o.GetNamespace(), o.GetName(), patch, s.opts.DryRun); err != nil {
			return fmt.Errorf("removing %s from %s: %w", TalosInventoryAnn, describe(o), err)
		}
	}
	if len(still) > 0 {
		s.rep.Emit(Event{Type: EventChange, Phase: PhaseReleaseTalos, Message: fmt.Sprintf("%s annotation %s from %d objects", verb, TalosInventoryAnn, len(still))})
	}
	if s.opts.Talos != nil {
		return p.releaseNodes(ctx)
	}
	s.talosCmd = p.command(ctx)
	return nil
}

// command is the talosctl invocation that drops bootcore's inline manifests from the machine
// config, so Talos never re-applies what Flux now owns.
func (p *releaseTalosPhase) command(ctx context.Context) string {
	s := p.s
	nodes, _ := controlPlaneAddresses(ctx, s.k.client)
	rel, err := filepath.Rel(s.opts.Repo, filepath.Join(s.outDir(), "post-handover.yaml"))
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = filepath.Join(s.outDir(), "post-handover.yaml")
	}
	cmd := fmt.Sprintf("talosctl patch machineconfig --nodes %s --patch @%s", strings.Join(nodes, ","), rel)
	if versionBefore(s.cluster.TalosVersion, 1, 14) {
		cmd += "\n(apply it once: with a Talos < 1.14 config contract a second application fails in configpatcher with \"lookup failed\")"
	}
	return cmd
}

// versionBefore reports whether a "v1.13.9"-style version is before major.minor.
func versionBefore(v string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(strings.TrimPrefix(v, "v"), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

// controlPlaneAddresses lists the control-plane nodes' InternalIP addresses (the node name
// when it has none), sorted: where their Talos API answers.
func controlPlaneAddresses(ctx context.Context, c kubernetes.Interface) ([]string, error) {
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, n := range list.Items {
		addr := n.Name
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				addr = a.Address
				break
			}
		}
		nodes = append(nodes, addr)
	}
	sort.Strings(nodes)
	// Nodes behind one address (a NAT, a single-host lab) are one talosctl target.
	return slices.Compact(nodes), nil
}
