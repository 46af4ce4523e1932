// Package kube is bootcore's one way to a cluster's API, shaped after fluxcd/pkg/ssa: a client
// bundle (New), server-side apply and its dry run through ssa.ResourceManager (Apply, Diff), a
// wait on fluxcd/cli-utils' kstatus watcher that applies bootcore's own readiness checks and
// ends early on what Flux gave up on (Wait), the readiness checks themselves as pure functions
// of objects (ready.go), the kinds bootcore reads (gvk.go), what counts as the API server being
// briefly away (Transient), and the recent events that explain an object. The agent and
// `bootcore status` both talk to clusters through it.
package kube

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Client is one cluster's API: the typed and dynamic clients, one REST mapper that re-reads
// discovery when a kind is unknown (a CRD installed since), and, on first use, the
// controller-runtime client fluxcd/pkg/ssa applies with. All share one HTTP client.
type Client struct {
	Config *rest.Config
	// Clientset is the concrete type: go-talos-support's collectors and Helm want it.
	Clientset *kubernetes.Clientset
	Dynamic   dynamic.Interface
	// Metadata reads objects' metadata only: a CRD is megabytes, its annotations are bytes.
	Metadata metadata.Interface
	Mapper   meta.RESTMapper

	fieldManager string
	http         *http.Client

	once sync.Once
	rm   *ssa.ResourceManager
	err  error
}

// New connects to the cluster of cfg; writes are made as fieldManager.
func New(cfg *rest.Config, fieldManager string) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	// client-go's default 5 QPS would turn a hand-over's reads into throttling waits.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	md, err := metadata.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, err
	}
	return &Client{Config: cfg, Clientset: cs, Dynamic: dyn, Metadata: md, Mapper: mapper, fieldManager: fieldManager, http: hc}, nil
}

// Resource maps a kind to its dynamic resource, in namespace when the kind is namespaced (the
// default namespace when none is given, as kubectl and Talos apply it). Without a version, the
// API server's preferred one.
func (c *Client) Resource(gvk schema.GroupVersionKind, namespace string) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	var versions []string
	if gvk.Version != "" {
		versions = []string{gvk.Version}
	}
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), versions...)
	if err != nil {
		return nil, nil, err
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(m.Resource), m, nil
	}
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	return c.Dynamic.Resource(m.Resource).Namespace(namespace), m, nil
}

// Get reads one object.
func (c *Client) Get(ctx context.Context, ref Ref) (*unstructured.Unstructured, error) {
	ri, _, err := c.Resource(ref.GVK, ref.Namespace)
	if err != nil {
		return nil, err
	}
	return ri.Get(ctx, ref.Name, metav1.GetOptions{})
}

// GetMetadata reads one object's metadata only.
func (c *Client) GetMetadata(ctx context.Context, ref Ref) (*metav1.PartialObjectMetadata, error) {
	ri, err := c.metadataResource(ref)
	if err != nil {
		return nil, err
	}
	return ri.Get(ctx, ref.Name, metav1.GetOptions{})
}

// metadataResource is Resource for the metadata client: requests through it get only the
// objects' metadata back.
func (c *Client) metadataResource(ref Ref) (metadata.ResourceInterface, error) {
	_, m, err := c.Resource(ref.GVK, ref.Namespace)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return c.Metadata.Resource(m.Resource), nil
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return c.Metadata.Resource(m.Resource).Namespace(ns), nil
}

// List lists the objects of a kind in namespace; "" lists every namespace.
func (c *Client) List(ctx context.Context, gvk schema.GroupVersionKind, namespace string) (*unstructured.UnstructuredList, error) {
	ri, m, err := c.Resource(gvk, namespace)
	if err != nil {
		return nil, err
	}
	if namespace == "" && m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = c.Dynamic.Resource(m.Resource)
	}
	return ri.List(ctx, metav1.ListOptions{})
}

// resources is the ssa.ResourceManager, made on first use: `bootcore status` never writes.
func (c *Client) resources() (*ssa.ResourceManager, error) {
	c.once.Do(func() {
		var cc client.Client
		cc, c.err = client.New(c.Config, client.Options{HTTPClient: c.http, Mapper: c.Mapper})
		if c.err != nil {
			c.err = fmt.Errorf("kubernetes client: %w", c.err)
			return
		}
		poller := polling.NewStatusPoller(cc, c.Mapper, polling.Options{})
		c.rm = ssa.NewResourceManager(cc, poller, ssa.Owner{Field: c.fieldManager, Group: "bootcore.dev"})
	})
	return c.rm, c.err
}

// HelmGetter gives the Helm SDK this client's config, mapper and discovery, with namespace as
// the default namespace (Helm otherwise reads a kubeconfig file itself).
func (c *Client) HelmGetter(namespace string) genericclioptions.RESTClientGetter {
	return &helmGetter{c: c, namespace: namespace}
}

type helmGetter struct {
	c         *Client
	namespace string
}

func (g *helmGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.c.Config), nil }

func (g *helmGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return memory.NewMemCacheClient(g.c.Clientset.Discovery()), nil
}

func (g *helmGetter) ToRESTMapper() (meta.RESTMapper, error) { return g.c.Mapper, nil }

func (g *helmGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.namespace}})
}
