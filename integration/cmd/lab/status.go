package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// printStatus prints the story's validation steps as a table (bootcore status, once it
// exists, does this for real clusters).
func printStatus(ctx context.Context, out io.Writer, c *testbed.Cluster) {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "  OBJECT\tREADY\tDETAIL")
	nodes, _ := c.Nodes(ctx, testbed.LabelControlPlane)
	ready := 0
	for i := range nodes {
		if testbed.NodeReady(&nodes[i]) {
			ready++
		}
	}
	fmt.Fprintf(w, "  control-plane nodes\t%v\t%d/%d Ready\n", ready == len(nodes) && ready > 0, ready, len(nodes))
	workloads := []struct{ kind, ns, name string }{
		{"DaemonSet", "kube-system", "cilium"}, {"Deployment", "kube-system", "cilium-operator"},
		{"Deployment", "kube-system", "coredns"}, {"Deployment", "cert-manager", "cert-manager"},
		{"Deployment", "cert-manager", "cert-manager-webhook"}, {"Deployment", "external-secrets", "external-secrets"},
		{"Deployment", "flux-system", "flux-operator"},
	}
	for _, wl := range workloads {
		ok, detail := rollout(ctx, c, wl.kind, wl.ns, wl.name)
		fmt.Fprintf(w, "  %s %s/%s\t%v\t%s\n", wl.kind, wl.ns, wl.name, ok, detail)
	}
	for _, src := range []struct {
		what string
		list func() ([]unstructured.Unstructured, error)
	}{
		{"GitRepository", func() ([]unstructured.Unstructured, error) {
			l, err := c.Dynamic.Resource(testbed.GitRepositoryGVR).Namespace("flux-system").List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return l.Items, nil
		}},
		{"Kustomization", func() ([]unstructured.Unstructured, error) {
			l, err := c.Dynamic.Resource(testbed.KustomizationGVR).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return l.Items, nil
		}},
	} {
		items, err := src.list()
		if err != nil {
			fmt.Fprintf(w, "  %s\tfalse\t%v\n", src.what, err)
			continue
		}
		for _, it := range items {
			ok, msg := readyCondition(&it)
			rev, _, _ := unstructured.NestedString(it.Object, "status", "lastAppliedRevision")
			if rev == "" {
				rev, _, _ = unstructured.NestedString(it.Object, "status", "artifact", "revision")
			}
			fmt.Fprintf(w, "  %s %s/%s\t%v\t%s %s\n", src.what, it.GetNamespace(), it.GetName(), ok, rev, msg)
		}
	}
	_, err := c.Client.CoreV1().ConfigMaps("flux-system").Get(ctx, "bootcore-handover", metav1.GetOptions{})
	fmt.Fprintf(w, "  hand-over marker flux-system/bootcore-handover\t%v\t\n", err == nil)
}

func rollout(ctx context.Context, c *testbed.Cluster, kind, ns, name string) (bool, string) {
	switch kind {
	case "DaemonSet":
		ds, err := c.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return ds.Status.DesiredNumberScheduled > 0 && ds.Status.NumberReady == ds.Status.DesiredNumberScheduled,
			fmt.Sprintf("%d/%d ready", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
	default:
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return available(d), fmt.Sprintf("%d/%d available", d.Status.AvailableReplicas, ptr(d.Spec.Replicas))
	}
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == "True" && d.Status.AvailableReplicas == ptr(d.Spec.Replicas)
		}
	}
	return false
}

func ptr(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func readyCondition(u *unstructured.Unstructured) (bool, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			msg, _ := m["message"].(string)
			return m["status"] == "True", msg
		}
	}
	return false, "no Ready condition yet"
}
