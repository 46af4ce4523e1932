// Package status holds the story's validation steps: what "this cluster is booted and handed
// over to Flux" means, object by object. `bootcore status` prints them; the agent's hand-over
// phase waits for the same readiness checks.
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
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/bootcore-dev/bootcore/internal/spec"
)

// Objects status reads besides Targets.
const (
	ControlPlaneLabel       = "node-role.kubernetes.io/control-plane"
	MarkerNamespace         = "flux-system"
	MarkerName              = "bootcore-handover"
	TalosInventoryNamespace = "kube-system"
	TalosInventoryName      = "talos-bootstrap-manifests-inventory"
	externalSecretsGroup    = "external-secrets.io"
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
	repo     string
	spec     *spec.Spec
	cluster  spec.Cluster
	agent    spec.Agent
	settings map[string]string
	server   string
	client   kubernetes.Interface
	dyn      dynamic.Interface
	mapper   meta.ResettableRESTMapper
}

// NewChecker loads the spec at repo/bootstrap/bootcore.yaml and the cluster's settings; errors
// name the file or field at fault.
func NewChecker(repo, cluster string, cfg *rest.Config) (*Checker, error) {
	sp, err := spec.Load(filepath.Join(repo, spec.DefaultPath))
	if err != nil {
		return nil, err
	}
	c, ok := sp.Cluster(cluster)
	if !ok {
		return nil, fmt.Errorf("%s: no cluster %q (clusters: %s)", spec.DefaultPath, cluster, strings.Join(sp.ClusterNames(), ", "))
	}
	settings, err := Settings(repo, c)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100 // a few dozen reads per evaluation; --watch repeats them
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Checker{
		repo: repo, spec: sp, cluster: c, agent: sp.AgentOrDefault(), settings: settings, server: cfg.Host,
		client: cs, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery())),
	}, nil
}

// Run evaluates every step once, read-only. The error is an *UnreachableError when the API
// server does not answer, or a spec error; a step that is not Ready is a Check, not an error.
func (k *Checker) Run(ctx context.Context) (*Report, error) {
	if _, err := k.client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{}); err != nil {
		return nil, &UnreachableError{Server: k.server, Err: err}
	}
	k.mapper.Reset() // CRDs may have appeared since the last evaluation
	r := &Report{Cluster: k.cluster.Name, Server: k.server}
	r.Checks = append(r.Checks, k.nodes(ctx))
	workloads, err := HandoverWorkloads(k.agent, k.cluster, k.settings)
	if err != nil {
		return nil, err
	}
	for _, t := range append(CNIWorkloads(k.spec), workloads...) {
		r.Checks = append(r.Checks, k.target(ctx, t))
	}
	r.Checks = append(r.Checks, k.clusterDNS(ctx))
	r.Checks = append(r.Checks, k.secrets(ctx)...)
	r.Checks = append(r.Checks, k.stores(ctx)...)
	r.Checks = append(r.Checks, k.target(ctx, Target{GVK: GVKFluxInstance, Namespace: "flux-system", Name: "flux", Ready: Flux}))
	r.Checks = append(r.Checks, k.target(ctx, Target{GVK: GVKGitRepository, Namespace: "flux-system", Name: "flux-system", Ready: All(Flux, revision)}))
	for _, gvk := range []schema.GroupVersionKind{GVKKustomization, GVKHelmRelease} {
		r.Checks = append(r.Checks, k.all(ctx, gvk, All(Flux, revision))...)
	}
	r.Checks = append(r.Checks, k.marker(ctx), k.inventory(ctx))
	r.Ready = len(r.NotReady()) == 0
	return r, nil
}

func (k *Checker) resource(gvk schema.GroupVersionKind) (dynamic.NamespaceableResourceInterface, error) {
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	return k.dyn.Resource(m.Resource), nil
}

// target reads one object and applies its readiness check.
func (k *Checker) target(ctx context.Context, t Target) Check {
	c := Check{Name: t.String()}
	ri, err := k.resource(t.GVK)
	if err != nil {
		c.Message = describeErr(err)
		return c
	}
	u, err := ri.Namespace(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		c.Message = describeErr(err)
		return c
	}
	c.Ready, c.Message = t.Ready(u)
	return c
}

// all checks every object of a kind in every namespace (`flux get kustomizations -A`).
func (k *Checker) all(ctx context.Context, gvk schema.GroupVersionKind, ready Readiness) []Check {
	ri, err := k.resource(gvk)
	if err != nil {
		return []Check{{Name: gvk.Kind + "s", Message: describeErr(err)}}
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Check{{Name: gvk.Kind + "s", Message: describeErr(err)}}
	}
	if len(list.Items) == 0 {
		return []Check{{Name: gvk.Kind + "s", Message: "none in any namespace"}}
	}
	var out []Check
	for i := range list.Items {
		u := &list.Items[i]
		ok, msg := ready(u)
		out = append(out, Check{Name: Ref(gvk.Kind, u.GetNamespace(), u.GetName()), Ready: ok, Message: msg})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DNSService is where Talos and the CoreDNS chart (with the usual service.name) serve cluster DNS.
const DNSService = "kube-dns"

// clusterDNS: Service kube-system/kube-dns has a ready endpoint (every pod resolves through it).
func (k *Checker) clusterDNS(ctx context.Context) Check {
	c := Check{Name: Ref("Service", metav1.NamespaceSystem, DNSService) + " (cluster DNS)"}
	n, err := ReadyEndpoints(ctx, k.client, metav1.NamespaceSystem, DNSService)
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

// ReadyEndpoints counts the ready addresses of a Service's EndpointSlices.
func ReadyEndpoints(ctx context.Context, c kubernetes.Interface, namespace, name string) (int, error) {
	list, err := c.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return 0, fmt.Errorf("EndpointSlices of Service %s/%s: %w", namespace, name, err)
	}
	n := 0
	for _, sl := range list.Items {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				n += len(ep.Addresses)
			}
		}
	}
	return n, nil
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

// revision adds the source or applied revision to a Ready Flux object's message, unless
// Flux's own message already names it.
func revision(u *unstructured.Unstructured) (bool, string) {
	cond, _ := Condition(u, "Ready")
	msg, _ := cond["message"].(string)
	for _, path := range [][]string{{"status", "artifact", "revision"}, {"status", "lastAppliedRevision"}} {
		if rev, _, _ := unstructured.NestedString(u.Object, path...); rev != "" && !strings.Contains(msg, rev) {
			return true, "revision " + rev
		}
	}
	return true, ""
}

// nodes: every control-plane node Ready; the NotReady ones named with their condition.
func (k *Checker) nodes(ctx context.Context) Check {
	c := Check{Name: "Nodes " + ControlPlaneLabel}
	list, err := k.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		c.Message = err.Error()
		return c
	}
	if len(list.Items) == 0 {
		c.Message = "no control-plane node"
		return c
	}
	var bad []string
	for i := range list.Items {
		if ok, msg := Node(&list.Items[i]); !ok {
			bad = append(bad, list.Items[i].Name+" ("+msg+")")
		}
	}
	sort.Strings(bad)
	c.Ready = len(bad) == 0
	c.Message = fmt.Sprintf("%d/%d Ready", len(list.Items)-len(bad), len(list.Items))
	if len(bad) > 0 {
		c.Message += "; not Ready: " + strings.Join(bad, ", ")
	}
	return c
}

// secrets: the agent's bootstrap Secrets exist with every key (values are never read out).
func (k *Checker) secrets(ctx context.Context) []Check {
	var out []Check
	for _, want := range k.agent.Secrets {
		ns, name := spec.SplitName(want.Name)
		c := Check{Name: Ref("Secret", ns, name)}
		live, err := k.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
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
	for _, kind := range []string{"ClusterSecretStore", "SecretStore"} {
		m, err := k.mapper.RESTMapping(schema.GroupKind{Group: externalSecretsGroup, Kind: kind})
		if meta.IsNoMatchError(err) {
			continue // External Secrets not installed: nothing to check
		}
		if err != nil {
			out = append(out, Check{Name: kind + "s", Message: err.Error()})
			continue
		}
		list, err := k.dyn.Resource(m.Resource).List(ctx, metav1.ListOptions{})
		if err != nil {
			out = append(out, Check{Name: kind + "s", Message: err.Error()})
			continue
		}
		for i := range list.Items {
			out = append(out, k.store(ctx, &list.Items[i]))
		}
	}
	return out
}

func (k *Checker) store(ctx context.Context, u *unstructured.Unstructured) Check {
	c := Check{Name: Ref(u.GetKind(), u.GetNamespace(), u.GetName())}
	var missing []string
	provider, _, _ := unstructured.NestedMap(u.Object, "spec", "provider")
	for _, ref := range SecretRefs(provider, u.GetNamespace()) {
		if _, err := k.client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); err != nil {
			missing = append(missing, fmt.Sprintf("Secret %s/%s (spec.provider.%s): %s", ref.Namespace, ref.Name, ref.Path, describeErr(err)))
		}
	}
	cond, ok := Condition(u, "Ready")
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

// marker: the agent's hand-over record exists and names this cluster.
func (k *Checker) marker(ctx context.Context) Check {
	c := Check{Name: Ref("ConfigMap", MarkerNamespace, MarkerName) + " (hand-over marker)"}
	cm, err := k.client.CoreV1().ConfigMaps(MarkerNamespace).Get(ctx, MarkerName, metav1.GetOptions{})
	if err != nil {
		c.Message = describeErr(err) + ": not handed over (run bootcore agent)"
		return c
	}
	if got := cm.Data["cluster"]; got != k.cluster.Name {
		c.Message = fmt.Sprintf("records cluster %q, not %q", got, k.cluster.Name)
		return c
	}
	c.Ready = true
	c.Message = fmt.Sprintf("handed over at %s, revision %s", cm.Data["handedOverAt"], cm.Data["gitRevision"])
	return c
}

// Labels and annotations Flux and Helm put on what they manage (gen puts them on the boot-time
// CNI objects too, so helm-controller adopts them).
var managedBy = []string{"helm.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/name", "meta.helm.sh/release-name"}

// inventory: Talos's manifest inventory holds no object Flux manages. A handed-over object
// left there would be force-applied over Flux's version, or pruned, by talosctl upgrade-k8s.
func (k *Checker) inventory(ctx context.Context) Check {
	c := Check{Name: Ref("ConfigMap", TalosInventoryNamespace, TalosInventoryName) + " (Talos inventory)"}
	cm, err := k.client.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{})
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
		ri, err := k.resource(schema.GroupVersionKind{Group: ref.GroupKind.Group, Kind: ref.GroupKind.Kind})
		if err != nil {
			continue // a kind no longer served cannot be managed by anyone
		}
		var live *unstructured.Unstructured
		if ref.Namespace != "" {
			live, err = ri.Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		} else {
			live, err = ri.Get(ctx, ref.Name, metav1.GetOptions{})
		}
		if err != nil {
			continue
		}
		if managed(live) {
			held = append(held, Ref(ref.GroupKind.Kind, ref.Namespace, ref.Name))
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

func managed(u *unstructured.Unstructured) bool {
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
