package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
)

// DecodeYAML splits multi-document YAML into objects, skipping empty documents.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// Apply server-side applies every object of a multi-document YAML (field
// manager "testbed", forced), in order. Namespaced objects without a
// namespace go to "default". It is a test helper, not the Talos emulation.
func (c *Cluster) Apply(ctx context.Context, data []byte) error {
	objs, err := DecodeYAML(data)
	if err != nil {
		return err
	}
	return c.ApplyObjects(ctx, objs...)
}

// ApplyObjects is Apply for decoded objects.
func (c *Cluster) ApplyObjects(ctx context.Context, objs ...*unstructured.Unstructured) error {
	// A fresh mapper per call: CRDs applied in an earlier call are known.
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		ri := c.Dynamic.Resource(mapping.Resource)
		var applied *unstructured.Unstructured
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace("default")
			}
			applied, err = ri.Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "testbed", Force: true})
		} else {
			applied, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "testbed", Force: true})
		}
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		if gvk.Kind == "CustomResourceDefinition" {
			if err := c.WaitCRDEstablished(ctx, applied.GetName(), 30*time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// WaitCRDEstablished waits for a CRD's Established condition.
func (c *Cluster) WaitCRDEstablished(ctx context.Context, name string, timeout time.Duration) error {
	return c.WaitCondition(ctx, crdGVR, "", name, "Established", timeout)
}

// WaitCondition waits until the object has condition condType=True and, if
// the condition carries observedGeneration, it matches metadata.generation
// (so a Ready from before the last change does not count).
func (c *Cluster) WaitCondition(ctx context.Context, gvr schema.GroupVersionResource, namespace, name, condType string, timeout time.Duration) error {
	var last string
	err := c.waitFor(ctx, fmt.Sprintf("%s %s/%s %s", gvr.Resource, namespace, name, condType), timeout, func(ctx context.Context) (bool, error) {
		obj, err := c.Dynamic.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, raw := range conds {
			cond, _ := raw.(map[string]any)
			if cond["type"] != condType {
				continue
			}
			last = fmt.Sprintf("%v: %v %v", cond["status"], cond["reason"], cond["message"])
			if gen, ok := cond["observedGeneration"].(int64); ok && gen != obj.GetGeneration() {
				return false, nil
			}
			return cond["status"] == "True", nil
		}
		return false, nil
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w (last seen: %s)", err, last)
	}
	return err
}

// WaitDeploymentRolledOut waits like `kubectl rollout status deployment`.
func (c *Cluster) WaitDeploymentRolledOut(ctx context.Context, namespace, name string, timeout time.Duration) error {
	var last string
	err := c.waitFor(ctx, "deployment "+namespace+"/"+name, timeout, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s := d.Status
		last = fmt.Sprintf("updated %d available %d of %d", s.UpdatedReplicas, s.AvailableReplicas, want)
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want, nil
	})
	if err != nil {
		return fmt.Errorf("%w (last seen: %s)", err, last)
	}
	return nil
}

// WaitDaemonSetRolledOut waits like `kubectl rollout status daemonset`, and
// for at least one scheduled pod.
func (c *Cluster) WaitDaemonSetRolledOut(ctx context.Context, namespace, name string, timeout time.Duration) error {
	var last string
	err := c.waitFor(ctx, "daemonset "+namespace+"/"+name, timeout, func(ctx context.Context) (bool, error) {
		ds, err := c.Client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("ready %d updated %d available %d misscheduled %d of %d (generation %d observed %d)", ds.Status.NumberReady, ds.Status.UpdatedNumberScheduled, ds.Status.NumberAvailable, ds.Status.NumberMisscheduled, ds.Status.DesiredNumberScheduled, ds.Generation, ds.Status.ObservedGeneration)
		return daemonSetDone(ds), nil
	})
	if err != nil {
		return fmt.Errorf("%w (last seen: %s%s)", err, last, c.podsSummary(namespace, name))
	}
	return nil
}

// podsSummary describes the pods a DaemonSet owns, for a failed wait.
func (c *Cluster) podsSummary(namespace, owner string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pods, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "; pods: " + err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		for _, ref := range p.OwnerReferences {
			if ref.Name == owner {
				fmt.Fprintf(&b, "; pod %s node=%q phase=%s ready=%v deleting=%v", p.Name, p.Spec.NodeName, p.Status.Phase, podReady(&p), p.DeletionTimestamp != nil)
			}
		}
	}
	return b.String()
}

func daemonSetDone(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled > 0 &&
		s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberReady == s.DesiredNumberScheduled
}

// Nodes lists nodes matching a label selector ("" for all).
func (c *Cluster) Nodes(ctx context.Context, selector string) ([]corev1.Node, error) {
	list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// WaitNodesReady waits until every node matching selector has Ready=ready.
func (c *Cluster) WaitNodesReady(ctx context.Context, selector string, ready bool, timeout time.Duration) error {
	if _, err := labels.Parse(selector); err != nil {
		return err
	}
	var last string
	err := c.waitFor(ctx, fmt.Sprintf("nodes %q Ready=%v", selector, ready), timeout, func(ctx context.Context) (bool, error) {
		nodes, err := c.Nodes(ctx, selector)
		if err != nil || len(nodes) == 0 {
			return false, nil
		}
		for _, n := range nodes {
			if NodeReady(&n) != ready {
				last = "node " + n.Name + " not yet"
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w (%s)", err, last)
	}
	return err
}

// Get fetches one object as unstructured.
func (c *Cluster) Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	return c.Dynamic.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
}

// WaitGone waits until the object does not exist.
func (c *Cluster) WaitGone(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string, timeout time.Duration) error {
	return c.waitFor(ctx, fmt.Sprintf("%s %s/%s to be gone", gvr.Resource, namespace, name), timeout, func(ctx context.Context) (bool, error) {
		_, err := c.Get(ctx, gvr, namespace, name)
		return apierrors.IsNotFound(err), nil
	})
}

// WaitFor polls cond every 100ms until it returns true or the timeout passes;
// it fails early if a process of the cluster exits.
func (c *Cluster) WaitFor(ctx context.Context, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) error {
	return c.waitFor(ctx, what, timeout, cond)
}
