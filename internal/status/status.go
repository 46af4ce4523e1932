// Package status holds the story's validation steps: what "this cluster is booted and handed
// over to Flux" means, object by object. RequiredFor is the one list of what must be Ready
// (the agent's waits use it too); `bootcore status` checks it, with the readiness functions of
// internal/kube, plus what only a person or CI asks about: bootstrap Secrets, External Secrets
// stores, the hand-over marker, Talos's manifest inventory.
package status

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/talos"
)

// Objects status reads besides Targets.
const (
	MarkerNamespace         = "flux-system"
	MarkerName              = "bootcore-handover"
	TalosInventoryNamespace = "kube-system"
	TalosInventoryName      = "talos-bootstrap-manifests-inventory"
)

// Check is one validation step's outcome.
type Check struct {
	Name    string `json:"name"`
	Ready   bool   `json:"ready"`
	Message string `json:"message"`
}

// Report is one evaluation of a cluster.
type Report struct {
	Cluster string  `json:"cluster"`
	Server  string  `json:"server"`
	Ready   bool    `json:"ready"`
	Checks  []Check `json:"checks"`
}

// NotReady lists the checks that failed.
func (r *Report) NotReady() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Ready {
			out = append(out, c)
		}
	}
	return out
}

// UnreachableError: the API server did not answer.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cluster unreachable at %s: %v", e.Server, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// Checker evaluates one cluster of a repository's spec.
type Checker struct {
	repo    string
	spec    *spec.Spec
	cluster spec.Cluster
	agent   spec.Agent
	tree    *fluxtree.Tree
	boot    *talos.Boot
	k       *kube.Client
}

// NewChecker loads the spec at repo/bootstrap/bootcore.yaml, the cluster's Flux tree and the
// boot objects of the patch gen wrote; errors name the file or field at fault.
func NewChecker(ctx context.Context, repo, cluster string, cfg *rest.Config) (*Checker, error) {
	sp, err := spec.Load(filepath.Join(repo, spec.DefaultPath))
	if err != nil {
		return nil, err
	}
	c, ok := sp.Cluster(cluster)
	if !ok {
		return nil, fmt.Errorf("%s: no cluster %q (clusters: %s)", spec.DefaultPath, cluster, strings.Join(sp.ClusterNames(), ", "))
	}
	tree, err := fluxtree.Load(ctx, repo, c.FluxSystem)
	if err != nil {
		return nil, err
	}
	boot, err := talos.ReadBoot(filepath.Join(OutDir(repo, sp, c), talos.ControlPlaneFile))
	if err != nil {
		return nil, err
	}
	k, err := kube.New(cfg, "bootcore-status")
	if err != nil {
		return nil, err
	}
	chk := &Checker{repo: repo, spec: sp, cluster: c, agent: sp.AgentOrDefault(), tree: tree, boot: boot, k: k}
	if _, err := chk.required(true); err != nil {
		return nil, err
	}
	return chk, nil
}

func (k *Checker) required(fluxInstance bool) (Required, error) {
	return RequiredFor(Cluster{Repo: k.repo, Spec: k.spec, Cluster: k.cluster, Tree: k.tree, Boot: k.boot, FluxInstance: fluxInstance})
}

// Run evaluates every step once, read-only. The error is an *UnreachableError when the API
// server does not answer, or a spec error; a step that is not Ready is a Check, not an error.
func (k *Checker) Run(ctx context.Context) (*Report, error) {
	if _, err := k.k.Clientset.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{}); err != nil {
		return nil, &UnreachableError{Server: k.k.Config.Host, Err: err}
	}
	marker, markerCheck := k.marker(ctx)
	// Flux installed from manifests has no FluxInstance; the marker says how it was installed.
	req, err := k.required(marker == nil || marker.Data["fluxInstall"] != "manifests")
	if err != nil {
		return nil, err
	}
	r := &Report{Cluster: k.cluster.Name, Server: k.k.Config.Host}
	r.Checks = append(r.Checks, k.nodes(ctx))
	// One check per object: a workload agent.handover names (at the replica count
	// cluster-settings asks for) is checked there rather than as a boot object.
	handover := map[kube.Ref]bool{}
	for _, t := range req.Handover {
		handover[t.Ref] = true
	}
	var workloads, flux []kube.Target
	for _, t := range req.Boot {
		if !handover[t.Ref] {
			workloads = append(workloads, t)
		}
	}
	for _, t := range req.Handover {
		if t.GVK == kube.Deployment || t.GVK == kube.DaemonSet {
			workloads = append(workloads, t)
		} else {
			flux = append(flux, t)
		}
	}
	r.Checks = append(r.Checks, k.checks(ctx, workloads)...)
	r.Checks = append(r.Checks, k.clusterDNS(ctx))
	r.Checks = append(r.Checks, k.secrets(ctx)...)
	r.Checks = append(r.Checks, k.stores(ctx)...)
	r.Checks = append(r.Checks, k.flux(ctx, flux)...)
	r.Checks = append(r.Checks, markerCheck, k.inventory(ctx))
	r.Ready = len(r.NotReady()) == 0
	return r, nil
}

// checks reads the targets once and reports each.
func (k *Checker) checks(ctx context.Context, targets []kube.Target) []Check {
	var out []Check
	for _, st := range k.k.Read(ctx, targets) {
		c := Check{Name: st.String(), Ready: st.Ready, Message: st.Message}
		if st.Err != nil {
			c.Message = describeErr(st.Err)
		}
		out = append(out, c)
	}
	return out
}

// flux checks the Flux objects of the Required list, and every other Kustomization and
// HelmRelease in the cluster (`flux get kustomizations -A`): one created outside the tree must
// be Ready too. Kustomizations and HelmReleases are listed by name.
func (k *Checker) flux(ctx context.Context, required []kube.Target) []Check {
	have := map[kube.Ref]bool{}
	for _, t := range required {
		have[t.Ref] = true
	}
	targets := required
	for _, gvk := range []schema.GroupVersionKind{kube.Kustomization, kube.HelmRelease} {
		list, err := k.k.List(ctx, gvk, "")
		if err != nil {
			continue // not served, or not readable: the required ones say so
		}
		for i := range list.Items {
			u := &list.Items[i]
			ref := kube.Ref{GVK: gvk, Namespace: u.GetNamespace(), Name: u.GetName()}
			if have[ref] {
				continue
			}
			t := kube.Target{Ref: ref, Ready: kube.All(kube.Flux, kube.Revision)}
			if gvk == kube.Kustomization {
				t.Ready = kube.All(kube.Flux, kube.AppliedSourceRevision)
				if src, ok := kube.SourceOf(u); ok {
					t.Needs = []kube.Ref{src}
				}
			}
			targets = append(targets, t)
		}
	}
	out := k.checks(ctx, targets)
	kinds := func(c Check) int {
		switch {
		case strings.HasPrefix(c.Name, "Kustomization "):
			return 1
		case strings.HasPrefix(c.Name, "HelmRelease "):
			return 2
		}
		return 0
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ki, kj := kinds(out[i]), kinds(out[j]); ki != kj || ki == 0 {
			return ki < kj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// DNSService is where Talos and the CoreDNS chart (with the usual service.name) serve cluster DNS.
const DNSService = "kube-dns"

// clusterDNS: Service kube-system/kube-dns has a ready endpoint (every pod resolves through it).
func (k *Checker) clusterDNS(ctx context.Context) Check {
	c := Check{Name: kube.Describe("Service", metav1.NamespaceSystem, DNSService) + " (cluster DNS)"}
	n, err := k.k.ReadyEndpoints(ctx, metav1.NamespaceSystem, DNSService)
	switch {
	case err != nil:
		c.Message = describeErr(err)
	case n == 0:
		c.Message = "no ready endpoint: pods cannot resolve names"
	default:
		c.Ready, c.Message = true, fmt.Sprintf("%d ready endpoint(s)", n)
	}
	return c
}

func describeErr(err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return "not found"
	case meta.IsNoMatchError(err):
		return "kind not served (CRD not installed): " + err.Error()
	default:
		return err.Error()
	}
}

// nodes: every control-plane node Ready; the NotReady ones named with their condition.
func (k *Checker) nodes(ctx context.Context) Check {
	c := Check{Name: "Nodes " + kube.ControlPlaneLabel}
	r, err := k.k.ControlPlaneNodes(ctx)
	switch {
	case err != nil:
		c.Message = err.Error()
	case r.Nodes == 0:
		c.Message = "no control-plane node"
	default:
		c.Ready = r.Ready()
		c.Message = fmt.Sprintf("%d/%d Ready", r.Nodes-len(r.NotReady), r.Nodes)
		if !c.Ready {
			c.Message += "; " + strings.TrimPrefix(r.String(), "control-plane nodes ")
		}
	}
	return c
}

// secrets: the agent's bootstrap Secrets exist with every key (values are never read out).
func (k *Checker) secrets(ctx context.Context) []Check {
	var out []Check
	for _, want := range k.agent.Secrets {
		ns, name := spec.SplitName(want.Name)
		c := Check{Name: kube.Describe("Secret", ns, name)}
		live, err := k.k.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			c.Message = describeErr(err) + " (a bootstrap Secret: bootcore agent creates it from agent.secrets)"
			out = append(out, c)
			continue
		}
		var missing []string
		for key := range want.Data {
			if len(live.Data[key]) == 0 {
				missing = append(missing, key)
			}
		}
		sort.Strings(missing)
		c.Ready = len(missing) == 0
		c.Message = fmt.Sprintf("%d keys", len(live.Data))
		if len(missing) > 0 {
			c.Message = "no key " + strings.Join(missing, ", ")
		}
		out = append(out, c)
	}
	return out
}

// stores: every External Secrets (Cluster)SecretStore Ready, and every Secret its provider
// refers to present. The controller's condition alone often says only "unable to create
// client"; naming the missing Secret is what tells the user what to restore.
func (k *Checker) stores(ctx context.Context) []Check {
	var out []Check
	for _, gvk := range []schema.GroupVersionKind{kube.ClusterSecretStore, kube.SecretStore} {
		list, err := k.k.List(ctx, gvk, "")
		if meta.IsNoMatchError(err) {
			continue // External Secrets not installed: nothing to check
		}
		if err != nil {
			out = append(out, Check{Name: gvk.Kind + "s", Message: err.Error()})
			continue
		}
		for i := range list.Items {
			out = append(out, k.store(ctx, &list.Items[i]))
		}
	}
	return out
}

func (k *Checker) store(ctx context.Context, u *unstructured.Unstructured) Check {
	c := Check{Name: kube.Describe(u.GetKind(), u.GetNamespace(), u.GetName())}
	var missing []string
	provider, _, _ := unstructured.NestedMap(u.Object, "spec", "provider")
	for _, ref := range SecretRefs(provider, u.GetNamespace()) {
		if _, err := k.k.Clientset.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); err != nil {
			missing = append(missing, fmt.Sprintf("Secret %s/%s (spec.provider.%s): %s", ref.Namespace, ref.Name, ref.Path, describeErr(err)))
		}
	}
	cond, ok := kube.Condition(u, "Ready")
	switch {
	case !ok:
		c.Message = "no Ready condition yet"
	default:
		c.Ready = cond["status"] == "True"
		c.Message = fmt.Sprintf("Ready=%v %v: %v", cond["status"], cond["reason"], cond["message"])
	}
	if len(missing) > 0 {
		c.Ready = false
		c.Message = "missing " + strings.Join(missing, "; ") + "; " + c.Message
	}
	return c
}

// SecretRef is a Secret a store's provider configuration names.
type SecretRef struct {
	Namespace, Name, Path string
}

// SecretRefs finds the Secret references in an External Secrets provider block: every object
// under a key ending in "SecretRef"/"secretRef" with a name (ESO's SecretKeySelector). A
// reference without namespace is in the store's namespace.
func SecretRefs(provider map[string]any, defaultNamespace string) []SecretRef {
	var out []SecretRef
	var walk func(v any, path string)
	walk = func(v any, path string) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		keys := make([]string, 0, len(m))
		for key := range m {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			p := key
			if path != "" {
				p = path + "." + key
			}
			if ref, ok := m[key].(map[string]any); ok && strings.HasSuffix(strings.ToLower(key), "secretref") {
				if name, _ := ref["name"].(string); name != "" {
					ns, _ := ref["namespace"].(string)
					if ns == "" {
						ns = defaultNamespace
					}
					out = append(out, SecretRef{Namespace: ns, Name: name, Path: p})
					continue
				}
			}
			walk(m[key], p)
		}
	}
	walk(provider, "")
	return out
}

// marker: the agent's hand-over record exists and names this cluster. It returns the marker
// too: it says how Flux was installed.
func (k *Checker) marker(ctx context.Context) (*corev1.ConfigMap, Check) {
	c := Check{Name: kube.Describe("ConfigMap", MarkerNamespace, MarkerName) + " (hand-over marker)"}
	cm, err := k.k.Clientset.CoreV1().ConfigMaps(MarkerNamespace).Get(ctx, MarkerName, metav1.GetOptions{})
	if err != nil {
		c.Message = describeErr(err) + ": not handed over (run bootcore agent)"
		return nil, c
	}
	if got := cm.Data["cluster"]; got != k.cluster.Name {
		c.Message = fmt.Sprintf("records cluster %q, not %q", got, k.cluster.Name)
		return cm, c
	}
	c.Ready = true
	c.Message = fmt.Sprintf("handed over at %s, revision %s", cm.Data["handedOverAt"], cm.Data["gitRevision"])
	return cm, c
}

// Labels and annotations Flux and Helm put on what they manage (gen puts them on the boot-time
// CNI objects too, so helm-controller adopts them).
var managedBy = []string{"helm.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/name", "meta.helm.sh/release-name"}

// inventory: Talos's manifest inventory holds no object Flux manages. A handed-over object
// left there would be force-applied over Flux's version, or pruned, by talosctl upgrade-k8s.
func (k *Checker) inventory(ctx context.Context) Check {
	c := Check{Name: kube.Describe("ConfigMap", TalosInventoryNamespace, TalosInventoryName) + " (Talos inventory)"}
	cm, err := k.k.Clientset.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c.Ready, c.Message = true, "none (Talos <= 1.12 keeps no inventory)"
		return c
	}
	if err != nil {
		c.Message = err.Error()
		return c
	}
	var held []string
	for key := range cm.Data {
		ref, err := object.ParseObjMetadata(key)
		if err != nil {
			c.Message = fmt.Sprintf("key %q: %v", key, err)
			return c
		}
		live, err := k.k.GetMetadata(ctx, kube.Ref{GVK: ref.GroupKind.WithVersion(""), Namespace: ref.Namespace, Name: ref.Name})
		if err != nil { // a kind no longer served cannot be managed by anyone
			continue
		}
		if managed(live) {
			held = append(held, kube.Describe(ref.GroupKind.Kind, ref.Namespace, ref.Name))
		}
	}
	sort.Strings(held)
	c.Ready = len(held) == 0
	c.Message = fmt.Sprintf("%d entries, none managed by Flux", len(cm.Data))
	if len(held) > 0 {
		const show = 5
		names := held
		if len(names) > show {
			names = append(names[:show:show], fmt.Sprintf("and %d more", len(held)-show))
		}
		// They are back after a hand-over when a control-plane node re-applied bootcore's inline
		// manifests (still in its machine config): Talos adds existing objects to its inventory.
		patch := filepath.Join(k.spec.Output, k.cluster.Name, "post-handover.yaml")
		c.Message = fmt.Sprintf("still holds %d objects Flux manages: %s; talosctl upgrade-k8s would force-apply its boot version over them or prune them. "+
			"If the control-plane machine configs still carry bootcore's inline manifests, apply %s to them "+
			"(talosctl patch machineconfig --nodes <control-plane nodes> --patch @%s), then run bootcore agent again: its release-talos phase removes them",
			len(held), strings.Join(names, ", "), patch, patch)
	}
	return c
}

func managed(u metav1.Object) bool {
	for _, key := range managedBy {
		if u.GetLabels()[key] != "" || u.GetAnnotations()[key] != "" {
			return true
		}
	}
	return false
}

// IsUnreachable reports whether err says the cluster did not answer.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// Watch re-evaluates every interval and calls changed with each report that differs from the
// previous one, until the cluster is Ready or ctx ends. It returns the last report. A cluster
// that stops answering is reported once per change too (as a nil report and the error), and
// watched on: a rebooting API server comes back.
func (k *Checker) Watch(ctx context.Context, interval time.Duration, changed func(*Report, error)) (*Report, error) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	last := ""
	for {
		r, err := k.Run(ctx)
		if err != nil && !IsUnreachable(err) {
			return nil, err
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		key := fmt.Sprint(err)
		if r != nil {
			key = fmt.Sprint(r.Checks)
		}
		if key != last {
			changed(r, err)
			last = key
		}
		if r != nil && r.Ready {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-ticker.C:
		}
	}
}
