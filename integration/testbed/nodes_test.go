package testbed_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// ciliumStandIn is a DaemonSet shaped like Cilium's agent where it matters
// here: kube-system/cilium, k8s-app=cilium, tolerates every taint.
const ciliumStandIn = `
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cilium
  namespace: kube-system
spec:
  selector:
    matchLabels: {k8s-app: cilium}
  template:
    metadata:
      labels: {k8s-app: cilium}
    spec:
      hostNetwork: true
      tolerations:
      - operator: Exists
      containers:
      - name: cilium-agent
        image: quay.io/cilium/cilium:v1.19.6
`

const workloads = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
  namespace: default
spec:
  selector:
    matchLabels: {app: node-agent}
  template:
    metadata:
      labels: {app: node-agent}
    spec:
      containers:
      - name: agent
        image: busybox
`

func TestNodesNotReadyUntilCilium(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "nodes"})
	ctx := context.Background()
	logResources(t, c)

	nodes, err := c.Nodes(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var cps []string
	for _, n := range nodes {
		if _, ok := n.Labels[testbed.LabelControlPlane]; ok {
			cps = append(cps, n.Name)
		}
		ready := readyOf(&n)
		if ready.Status != corev1.ConditionFalse || ready.Reason != "KubeletNotReady" || !strings.Contains(ready.Message, "cni plugin not initialized") {
			t.Errorf("node %s: want NotReady without CNI, got %s %s %q", n.Name, ready.Status, ready.Reason, ready.Message)
		}
	}
	sort.Strings(cps)
	if len(nodes) != 5 || fmt.Sprint(cps) != "[controlplane-1 controlplane-2 controlplane-3]" {
		t.Fatalf("want 3 control-plane + 2 worker nodes, got %d nodes, control planes %v", len(nodes), cps)
	}

	// Without a CNI, ordinary pods cannot be scheduled: the kubelet's
	// not-ready taint keeps them Pending.
	if err := c.Apply(ctx, []byte(workloads)); err != nil {
		t.Fatal(err)
	}
	var seen string // what the last poll saw, for the failure message
	if err := c.WaitFor(ctx, "web pods unschedulable", 30*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			seen = err.Error()
			return false, nil
		}
		seen = fmt.Sprintf("%d web pods", len(pods.Items))
		ok := len(pods.Items) == 3
		for _, p := range pods.Items {
			seen += fmt.Sprintf("; %s node=%q conditions=%v", p.Name, p.Spec.NodeName, p.Status.Conditions)
			if p.Spec.NodeName != "" || !hasCondition(p.Status.Conditions, corev1.PodScheduled, corev1.ConditionFalse, "Unschedulable") {
				ok = false
			}
		}
		return ok, nil
	}); err != nil {
		if nodes, lerr := c.Nodes(ctx, ""); lerr == nil {
			for _, n := range nodes {
				seen += fmt.Sprintf("; node %s taints=%v", n.Name, n.Spec.Taints)
			}
		}
		t.Fatalf("%v; last seen: %s", err, seen)
	}
	if err := c.WaitNodesReady(ctx, "", false, time.Second); err != nil {
		t.Fatalf("nodes became Ready without a CNI: %v", err)
	}

	// The CNI arrives: its pods tolerate everything, run on every node, and
	// each node turns Ready once its cilium pod is Ready.
	start := time.Now()
	if err := c.Apply(ctx, []byte(ciliumStandIn)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDaemonSetRolledOut(ctx, "kube-system", "cilium", time.Minute); err != nil {
		t.Fatal(err)
	}
	ds, _ := c.Client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	if ds.Status.DesiredNumberScheduled != 5 {
		t.Errorf("cilium scheduled on %d nodes, want 5", ds.Status.DesiredNumberScheduled)
	}
	if err := c.WaitNodesReady(ctx, "", true, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("nodes Ready %s after cilium was applied", time.Since(start).Round(10*time.Millisecond))

	// Then ordinary workloads roll out; node-agent (no tolerations) only on workers.
	if err := c.WaitDeploymentRolledOut(ctx, "default", "web", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	// A worker's not-ready taint goes a moment after the node turns Ready, so the DaemonSet may
	// first count one worker: wait for both, then check where its pods run.
	seen = ""
	if err := c.WaitFor(ctx, "node-agent Ready on both workers", time.Minute, func(ctx context.Context) (bool, error) {
		ds, err := c.Client.AppsV1().DaemonSets("default").Get(ctx, "node-agent", metav1.GetOptions{})
		if err != nil {
			seen = err.Error()
			return false, nil
		}
		st := ds.Status
		seen = fmt.Sprintf("desired %d ready %d updated %d", st.DesiredNumberScheduled, st.NumberReady, st.UpdatedNumberScheduled)
		return st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled == 2 && st.NumberReady == 2 && st.UpdatedNumberScheduled == 2, nil
	}); err != nil {
		t.Fatalf("%v; last seen: %s", err, seen)
	}
	agentPods, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=node-agent"})
	if err != nil {
		t.Fatal(err)
	}
	var agentNodes []string
	for _, p := range agentPods.Items {
		agentNodes = append(agentNodes, p.Spec.NodeName)
	}
	sort.Strings(agentNodes)
	if fmt.Sprint(agentNodes) != "[worker-1 worker-2]" {
		t.Errorf("node-agent pods on %v, want the 2 workers", agentNodes)
	}

	// The node lifecycle controller marks a pod not ready when it lags behind its node turning
	// Ready; as a kubelet, the test bed puts the pod's Ready condition back.
	name := markPodNotReady(ctx, t, c, "default", "app=web")
	if err := c.WaitFor(ctx, "pod "+name+" Ready again", 30*time.Second, func(ctx context.Context) (bool, error) {
		pod, err := c.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && hasCondition(pod.Status.Conditions, corev1.PodReady, corev1.ConditionTrue, ""), nil
	}); err != nil {
		t.Fatal(err)
	}

	// Without the CNI the nodes report NotReady again.
	if err := c.Client.AppsV1().DaemonSets("kube-system").Delete(ctx, "cilium", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNodesReady(ctx, "", false, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestTwoClustersSideBySide(t *testing.T) {
	t.Parallel()
	// Start both at once: port allocation and process handling must not clash.
	cs := testbed.StartManyT(t,
		testbed.Options{Name: "infra", ControlPlanes: 1, Workers: 1},
		testbed.Options{Name: "apps", ControlPlanes: 1, Workers: 1})
	a, b := cs[0], cs[1]
	if a.Server == b.Server {
		t.Fatalf("both clusters at %s", a.Server)
	}
	ctx := context.Background()
	cm := func(c *testbed.Cluster) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: whoami, namespace: default}\ndata: {cluster: %s}\n", c.Name)
	}
	for _, c := range []*testbed.Cluster{a, b} {
		if err := c.Apply(ctx, []byte(cm(c))); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*testbed.Cluster{a, b} {
		got, err := c.Client.CoreV1().ConfigMaps("default").Get(ctx, "whoami", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["cluster"] != c.Name {
			t.Errorf("cluster %s sees ConfigMap of %s", c.Name, got.Data["cluster"])
		}
		if err := c.Apply(ctx, []byte(ciliumStandIn)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*testbed.Cluster{a, b} {
		if err := c.WaitNodesReady(ctx, "", true, time.Minute); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
}

func readyOf(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func hasCondition(conds []corev1.PodCondition, typ corev1.PodConditionType, status corev1.ConditionStatus, reason string) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == status && c.Reason == reason
		}
	}
	return false
}

// logResources records what a cluster costs (for the test-bed report).
func logResources(t *testing.T, c *testbed.Cluster) {
	var total int64
	var parts []string
	rss := c.RSS()
	names := make([]string, 0, len(rss))
	for n := range rss {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		total += rss[n]
		parts = append(parts, fmt.Sprintf("%s %d MiB", n, rss[n]>>20))
	}
	t.Logf("cluster %s: started in %s; RSS %d MiB (%s)", c.Name, c.StartupDuration().Round(100*time.Millisecond), total>>20, strings.Join(parts, ", "))
}

// markPodNotReady does what the node lifecycle controller's MarkPodsNotReady does to one pod:
// its Ready condition goes False, ContainersReady stays True.
func markPodNotReady(ctx context.Context, t *testing.T, c *testbed.Cluster, namespace, selector string) string {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods %s: %v (%d found)", selector, err, len(pods.Items))
	}
	pod := pods.Items[0]
	for i, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
			pod.Status.Conditions[i].LastTransitionTime = metav1.Now()
		}
	}
	if _, err := c.Client.CoreV1().Pods(namespace).UpdateStatus(ctx, &pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return pod.Name
}
