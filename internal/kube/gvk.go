package kube

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The kinds bootcore reads and writes.
var (
	Namespace      = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	Secret         = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
	ConfigMap      = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	Service        = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	Pod            = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	Deployment     = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	DaemonSet      = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	CRD            = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	GitRepository  = schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: "v1", Kind: "GitRepository"}
	HelmRepository = schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: "v1", Kind: "HelmRepository"}
	OCIRepository  = schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: "v1", Kind: "OCIRepository"}
	HelmChart      = schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: "v1", Kind: "HelmChart"}
	Kustomization  = schema.GroupVersionKind{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Kind: "Kustomization"}
	HelmRelease    = schema.GroupVersionKind{Group: "helm.toolkit.fluxcd.io", Version: "v2", Kind: "HelmRelease"}
	FluxInstance   = schema.GroupVersionKind{Group: "fluxcd.controlplane.io", Version: "v1", Kind: "FluxInstance"}
	FluxReport     = schema.GroupVersionKind{Group: "fluxcd.controlplane.io", Version: "v1", Kind: "FluxReport"}
	// External Secrets' stores, at whichever version the installed release serves.
	ClusterSecretStore = schema.GroupVersionKind{Group: "external-secrets.io", Kind: "ClusterSecretStore"}
	SecretStore        = schema.GroupVersionKind{Group: "external-secrets.io", Kind: "SecretStore"}
)

// FluxKinds are the kinds of Flux's own objects.
var FluxKinds = []schema.GroupVersionKind{GitRepository, HelmRepository, OCIRepository, HelmChart, Kustomization, HelmRelease, FluxInstance, FluxReport}

// Ref names one object of a kind.
type Ref struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

// RefOf names u.
func RefOf(u *unstructured.Unstructured) Ref {
	return Ref{GVK: u.GroupVersionKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// String names the object the way kubectl users read it: "Kind namespace/name".
func (r Ref) String() string { return Describe(r.GVK.Kind, r.Namespace, r.Name) }

// Describe names an object by kind, namespace and name.
func Describe(kind, namespace, name string) string {
	if namespace == "" {
		return kind + " " + name
	}
	return kind + " " + namespace + "/" + name
}

// DescribeObject names u.
func DescribeObject(u *unstructured.Unstructured) string {
	return Describe(u.GetKind(), u.GetNamespace(), u.GetName())
}
