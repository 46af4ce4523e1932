package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The hand-over marker: a ConfigMap Flux does not manage (it is not in Git), in the namespace
// Flux never prunes.
const (
	MarkerNamespace = "flux-system"
	MarkerName      = "bootcore-handover"
	FieldManager    = "bootcore-agent"
	managedByLabel  = "app.kubernetes.io/managed-by"
	phaseKeyPrefix  = "phase."
)

// Marker is what the record phase writes and later runs read.
type Marker struct {
	Cluster    string
	ClusterUID string // kube-system namespace UID
	// Versions: bootcore, Kubernetes, the Flux install (chart versions or manifests), Flux itself.
	Versions map[string]string
	// GitRevision is the GitRepository flux-system artifact revision at hand-over.
	GitRevision string
	// FluxInstall is "helm" or "manifests".
	FluxInstall string
	// Phases maps each phase name to when it finished.
	Phases       map[string]time.Time
	HandedOverAt time.Time
}

// ConfigMap renders the marker.
func (m *Marker) ConfigMap() *corev1.ConfigMap {
	data := map[string]string{
		"cluster":      m.Cluster,
		"clusterUID":   m.ClusterUID,
		"gitRevision":  m.GitRevision,
		"fluxInstall":  m.FluxInstall,
		"handedOverAt": m.HandedOverAt.UTC().Format(time.RFC3339),
	}
	for k, v := range m.Versions {
		data["version."+k] = v
	}
	for k, t := range m.Phases {
		data[phaseKeyPrefix+k] = t.UTC().Format(time.RFC3339)
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name: MarkerName, Namespace: MarkerNamespace,
			Labels: map[string]string{managedByLabel: "bootcore"},
			Annotations: map[string]string{
				"bootcore.dev/description": "Written by bootcore agent when it handed this cluster over to Flux. Delete it (or run bootcore agent --force) to run the hand-over again.",
			},
		},
		Data: data,
	}
}

// parseMarker reads a marker ConfigMap; a malformed one is an error naming the key.
func parseMarker(cm *corev1.ConfigMap) (*Marker, error) {
	m := &Marker{
		Cluster:     cm.Data["cluster"],
		ClusterUID:  cm.Data["clusterUID"],
		GitRevision: cm.Data["gitRevision"],
		FluxInstall: cm.Data["fluxInstall"],
		Versions:    map[string]string{},
		Phases:      map[string]time.Time{},
	}
	if m.Cluster == "" || m.ClusterUID == "" {
		return nil, fmt.Errorf("hand-over marker %s/%s has no cluster or clusterUID", MarkerNamespace, MarkerName)
	}
	if v := cm.Data["handedOverAt"]; v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("hand-over marker %s/%s: handedOverAt: %w", MarkerNamespace, MarkerName, err)
		}
		m.HandedOverAt = t
	}
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "version."):
			m.Versions[strings.TrimPrefix(k, "version.")] = cm.Data[k]
		case strings.HasPrefix(k, phaseKeyPrefix):
			t, err := time.Parse(time.RFC3339, cm.Data[k])
			if err != nil {
				return nil, fmt.Errorf("hand-over marker %s/%s: %s: %w", MarkerNamespace, MarkerName, k, err)
			}
			m.Phases[strings.TrimPrefix(k, phaseKeyPrefix)] = t
		}
	}
	return m, nil
}

// readMarker returns the marker, or nil when there is none (or no flux-system namespace yet).
func readMarker(ctx context.Context, c kubernetes.Interface) (*Marker, error) {
	cm, err := c.CoreV1().ConfigMaps(MarkerNamespace).Get(ctx, MarkerName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading hand-over marker: %w", err)
	}
	return parseMarker(cm)
}

// clusterUID is the kube-system namespace's UID: it identifies a cluster across addresses
// and kubeconfigs, and changes when a cluster is rebuilt at the same address.
func clusterUID(ctx context.Context, c kubernetes.Interface) (string, error) {
	ns, err := c.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading namespace kube-system: %w", err)
	}
	return string(ns.UID), nil
}
