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

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/talos"
)

// TalosAPI is the Talos API of the cluster's control-plane nodes (internal/talosapi). Every
// error names the node and carries the Talos API's own error.
type TalosAPI interface {
	// Nodes are the nodes from --nodes or the talosconfig context; empty when neither names
	// any (then the control-plane nodes' InternalIPs are used).
	Nodes() []string
	// Describe names the talosconfig and context for messages.
	Describe() string
	// InlineManifests lists which of names are inline manifests in node's machine config.
	InlineManifests(ctx context.Context, node string, names []string) ([]string, error)
	// Release applies patch to node's machine config, validated, without a reboot, and checks
	// that none of names remains; a node without any of them is left alone (nil result).
	// With dryRun the node only validates the result. It returns the manifests removed.
	Release(ctx context.Context, node string, patch []byte, names []string, dryRun bool) ([]string, error)
}

// talosFacts: without the Talos API, the talosctl command the user runs to drop bootcore's
// inline manifests from the machine config.
type talosFacts struct {
	command string
}

// releaseTalosPhase takes the handed-over objects out of Talos's hands: out of its manifest
// inventory and without its owning-inventory annotation (so `talosctl upgrade-k8s` neither
// reverts nor prunes what Flux now owns), and, through the Talos API, bootcore's inline
// manifests out of every control-plane node's machine config.
type releaseTalosPhase struct{ env }

func (p *releaseTalosPhase) Name() string { return PhaseReleaseTalos }
func (p *releaseTalosPhase) Title() string {
	return "releasing the handed-over objects from Talos's inventory " + TalosInventoryNamespace + "/" + TalosInventoryName
}

// bootRefs are the inventory references of what Talos applied from bootcore's manifests, in
// the namespace Talos applied them to.
func (p *releaseTalosPhase) bootRefs() (object.ObjMetadataSet, []kube.Ref, error) {
	var refs object.ObjMetadataSet
	var objs []kube.Ref
	for _, o := range p.boot.All() {
		ref := kube.RefOf(o)
		_, m, err := p.k.Resource(ref.GVK, ref.Namespace)
		if err != nil {
			return nil, nil, fmt.Errorf("%s from %s: %w", ref, p.boot.Path, err)
		}
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			ref.Namespace = ""
		} else if ref.Namespace == "" {
			ref.Namespace = metav1.NamespaceDefault // as Talos applies it
		}
		refs = append(refs, object.ObjMetadata{Namespace: ref.Namespace, Name: ref.Name, GroupKind: ref.GVK.GroupKind()})
		objs = append(objs, ref)
	}
	return refs, objs, nil
}

// annotated returns the boot objects that still carry Talos's owning-inventory annotation.
func (p *releaseTalosPhase) annotated(ctx context.Context, objs []kube.Ref) ([]kube.Ref, error) {
	var out []kube.Ref
	for _, ref := range objs {
		live, err := p.k.GetMetadata(ctx, ref)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if live.GetAnnotations()[TalosInventoryAnn] == TalosInventoryName {
			out = append(out, ref)
		}
	}
	return out, nil
}

func (p *releaseTalosPhase) Done(ctx context.Context) (Outcome[talosFacts], error) {
	refs, objs, err := p.bootRefs()
	if err != nil {
		return Outcome[talosFacts]{}, err
	}
	_, inv, ok, err := inventoryRefs(ctx, p.k.Clientset)
	if err != nil {
		return Outcome[talosFacts]{}, err
	}
	for _, ref := range inv {
		if refs.Contains(ref) {
			return Outcome[talosFacts]{Why: ref.String() + " is in Talos's inventory"}, nil
		}
	}
	still, err := p.annotated(ctx, objs)
	if err != nil {
		return Outcome[talosFacts]{}, err
	}
	if len(still) > 0 {
		return Outcome[talosFacts]{Why: still[0].String() + " carries " + TalosInventoryAnn}, nil
	}
	var facts talosFacts
	talosWhy := ""
	if p.opts.Talos != nil {
		done, why, err := p.talosDone(ctx)
		if err != nil || !done {
			return Outcome[talosFacts]{Why: why}, err
		}
		talosWhy = "; " + why
	} else {
		facts.command = p.command(ctx)
	}
	why := fmt.Sprintf("none of the %d boot objects is in Talos's inventory", len(refs))
	if !ok {
		why = "no Talos inventory (Talos <= 1.12 keeps none)"
	}
	return Outcome[talosFacts]{Done: true, Why: why + talosWhy, Facts: facts}, nil
}

func (p *releaseTalosPhase) Run(ctx context.Context) (talosFacts, error) {
	return p.release(ctx, false)
}

func (p *releaseTalosPhase) DryRun(ctx context.Context) (talosFacts, error) {
	return p.release(ctx, true)
}

func (p *releaseTalosPhase) release(ctx context.Context, dryRun bool) (talosFacts, error) {
	refs, objs, err := p.bootRefs()
	if err != nil {
		return talosFacts{}, err
	}
	// Inventory first: an object out of the inventory is never pruned by upgrade-k8s; a
	// left-over annotation only matters to Talos's own inventory checks.
	removed, err := removeFromInventory(ctx, p.k.Clientset, refs, dryRun)
	if err != nil {
		return talosFacts{}, fmt.Errorf("updating Talos inventory %s/%s: %w", TalosInventoryNamespace, TalosInventoryName, err)
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	if len(removed) > 0 {
		p.rep.Emit(Event{Type: EventChange, Phase: PhaseReleaseTalos, Object: "ConfigMap " + TalosInventoryNamespace + "/" + TalosInventoryName,
			Message: fmt.Sprintf("%s %d objects from Talos's inventory: %s", verb, len(removed), strings.Join(removed, ", "))})
	}
	still, err := p.annotated(ctx, objs)
	if err != nil {
		return talosFacts{}, err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{TalosInventoryAnn: nil}}})
	for _, ref := range still {
		if err := p.k.MergePatch(ctx, ref, patch, dryRun); err != nil {
			return talosFacts{}, fmt.Errorf("removing %s from %s: %w", TalosInventoryAnn, ref, err)
		}
	}
	if len(still) > 0 {
		p.rep.Emit(Event{Type: EventChange, Phase: PhaseReleaseTalos, Message: fmt.Sprintf("%s annotation %s from %d objects", verb, TalosInventoryAnn, len(still))})
	}
	if p.opts.Talos != nil {
		return talosFacts{}, p.releaseNodes(ctx, dryRun)
	}
	return talosFacts{command: p.command(ctx)}, nil
}

func (p *releaseTalosPhase) postHandoverPatch() string {
	return filepath.Join(p.outDir, talos.PostHandoverFile)
}

// command is the talosctl invocation that drops bootcore's inline manifests from the machine
// config, so Talos never re-applies what Flux now owns.
func (p *releaseTalosPhase) command(ctx context.Context) string {
	nodes, _ := controlPlaneAddresses(ctx, p.k)
	path := p.postHandoverPatch()
	if rel, err := filepath.Rel(p.opts.Repo, path); err == nil && !strings.HasPrefix(rel, "..") {
		path = rel
	}
	cmd := fmt.Sprintf("talosctl patch machineconfig --nodes %s --patch @%s", strings.Join(nodes, ","), path)
	if versionBefore(p.cluster.TalosVersion, 1, 14) {
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
func controlPlaneAddresses(ctx context.Context, k *kube.Client) ([]string, error) {
	list, err := k.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: kube.ControlPlaneLabel})
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

// talosNodes are the control-plane nodes the Talos API is asked about.
func (p *releaseTalosPhase) talosNodes(ctx context.Context) ([]string, error) {
	if nodes := p.opts.Talos.Nodes(); len(nodes) > 0 {
		return nodes, nil
	}
	nodes, err := controlPlaneAddresses(ctx, p.k)
	if err != nil {
		return nil, fmt.Errorf("listing the control-plane nodes for the Talos API: %w", err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no control-plane node to reach through the Talos API: pass --nodes")
	}
	return nodes, nil
}

// talosDone: every control-plane node's machine config is without bootcore's manifests.
func (p *releaseTalosPhase) talosDone(ctx context.Context) (bool, string, error) {
	nodes, err := p.talosNodes(ctx)
	if err != nil {
		return false, "", err
	}
	for _, n := range nodes {
		left, err := p.opts.Talos.InlineManifests(ctx, n, talos.Manifests)
		if err != nil {
			return false, "", err
		}
		if len(left) > 0 {
			return false, fmt.Sprintf("node %s: the machine config still has inline manifest(s) %s", n, strings.Join(left, ", ")), nil
		}
	}
	return true, fmt.Sprintf("the machine configs of nodes %s have none of bootcore's inline manifests", strings.Join(nodes, ", ")), nil
}

// releaseNodes applies the post-handover patch through the Talos API, one control-plane node
// at a time, so a rejected config stops the phase with the other nodes either done or untouched.
func (p *releaseTalosPhase) releaseNodes(ctx context.Context, dryRun bool) error {
	path := p.postHandoverPatch()
	patch, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the post-handover patch bootcore gen wrote: %w", err)
	}
	nodes, err := p.talosNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		removed, err := p.opts.Talos.Release(ctx, n, patch, talos.Manifests, dryRun)
		if err != nil {
			return err
		}
		if len(removed) == 0 {
			p.rep.Emit(Event{Type: EventProgress, Phase: PhaseReleaseTalos, Object: "node " + n,
				Message: fmt.Sprintf("node %s: the machine config has none of bootcore's inline manifests", n)})
			continue
		}
		verb := "applied"
		if dryRun {
			verb = "would apply (validated by the node)"
		}
		p.rep.Emit(Event{Type: EventChange, Phase: PhaseReleaseTalos, Object: "node " + n,
			Message: fmt.Sprintf("node %s: %s %s without a reboot: removed inline manifest(s) %s", n, verb, path, strings.Join(removed, ", "))})
	}
	return nil
}
