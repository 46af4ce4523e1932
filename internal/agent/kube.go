package agent

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kube bundles the clients of one cluster.
type kube struct {
	cfg       *rest.Config
	clientset *kubernetes.Clientset // go-talos-support's collectors need the concrete type
	client    kubernetes.Interface
	dyn       dynamic.Interface
	disco     discovery.CachedDiscoveryInterface
	mapper    meta.ResettableRESTMapper
}

func newKube(cfg *rest.Config) (*kube, error) {
	cfg = rest.CopyConfig(cfg)
	// The agent lists and watches a handful of objects; client-go's default 5 QPS would turn
	// a hand-over's polling into throttling waits.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disco := memory.NewMemCacheClient(cs.Discovery())
	return &kube{
		cfg: cfg, clientset: cs, client: cs, dyn: dyn, disco: disco,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(disco),
	}, nil
}

// resourceFor maps an object's kind to its resource, re-reading discovery once when the kind
// is unknown (a CRD installed since the last lookup).
func (k *kube) resourceFor(gvk schema.GroupVersionKind, namespace string) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		k.mapper.Reset()
		m, err = k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if namespace == "" {
			namespace = metav1.NamespaceDefault
		}
		return k.dyn.Resource(m.Resource).Namespace(namespace), m, nil
	}
	return k.dyn.Resource(m.Resource), m, nil
}

// get fetches one object.
func (k *kube) get(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	ri, _, err := k.resourceFor(gvk, namespace)
	if err != nil {
		return nil, err
	}
	return ri.Get(ctx, name, metav1.GetOptions{})
}

// applyResult is what server-side apply did (or, in a dry run, would do) to one object.
type applyResult string

const (
	applyCreated    applyResult = "created"
	applyConfigured applyResult = "configured"
	applyUnchanged  applyResult = "unchanged"
)

// apply server-side applies obj as the agent's field manager, forcing ownership of the fields
// it sets: the agent is the only writer of what it applies until Flux takes over.
func (k *kube) apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) (applyResult, error) {
	ri, _, err := k.resourceFor(obj.GroupVersionKind(), obj.GetNamespace())
	if err != nil {
		return "", fmt.Errorf("%s: %w", describe(obj), err)
	}
	before, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	existed := err == nil
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	after, err := ri.Apply(ctx, obj.GetName(), obj, opts)
	if dryRun && !existed && apierrors.IsNotFound(err) && obj.GetNamespace() != "" {
		// A dry run does not create the namespace an earlier step would have created.
		return applyCreated, nil
	}
	if err != nil {
		return "", fmt.Errorf("applying %s: %w", describe(obj), err)
	}
	switch {
	case !existed:
		return applyCreated, nil
	case before.GetResourceVersion() != after.GetResourceVersion():
		return applyConfigured, nil
	case dryRun && before.GetGeneration() != after.GetGeneration():
		return applyConfigured, nil
	default:
		return applyUnchanged, nil
	}
}

// patchMerge applies a JSON merge patch (used for annotations the agent removes or sets on
// objects it does not own).
func (k *kube) patchMerge(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string, patch []byte, dryRun bool) error {
	ri, _, err := k.resourceFor(gvk, namespace)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, name, types.MergePatchType, patch, opts)
	return err
}

func describe(o *unstructured.Unstructured) string {
	return describeRef(o.GetKind(), o.GetNamespace(), o.GetName())
}

func describeRef(kind, namespace, name string) string {
	if namespace == "" {
		return kind + " " + name
	}
	return kind + " " + namespace + "/" + name
}

// restGetter gives the Helm SDK the agent's in-memory rest.Config (Helm otherwise reads a
// kubeconfig file itself).
type restGetter struct {
	cfg       *rest.Config
	namespace string
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(g.cfg)
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	m := restmapper.NewDeferredDiscoveryRESTMapper(dc)
	return restmapper.NewShortcutExpander(m, dc, nil), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.namespace}})
}
