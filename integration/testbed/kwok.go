package testbed

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kwokNodeAnnotation marks the nodes kwok manages (kwok's own convention).
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// Node roles as Talos labels and taints them.
const (
	LabelControlPlane = "node-role.kubernetes.io/control-plane"
	LabelRole         = "bootcore.dev/testbed-role" // "controlplane" or "worker", for tests
)

//go:embed kwokstages/node-initialize-notready.yaml
var nodeInitializeNotReady []byte

//go:embed kwokstages/pod-status-resync.yaml
var podStatusResync []byte

// writeKwokStages writes kwok's --config: our node-initialize stage (nodes
// start NotReady) and pod-status-resync stage (a kubelet's status sync) plus,
// unchanged, the stages `make testbin` copied from the kwok module:
// node/heartbeat-with-lease and pod/fast. kwok's node/fast initialize stage is
// replaced, not used, because it forces Ready=True.
func writeKwokStages(testbin, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	files, err := filepath.Glob(filepath.Join(testbin, "kwok-stages", "*.yaml"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	var buf bytes.Buffer
	buf.Write(nodeInitializeNotReady)
	buf.WriteString("\n---\n")
	buf.Write(podStatusResync)
	found := 0
	for _, f := range files {
		base := filepath.Base(f)
		if base == "node-fast-node-initialize.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&buf, "\n---\n# from kwok module: %s\n", base)
		buf.Write(data)
		found++
	}
	if found == 0 {
		return "", fmt.Errorf("no kwok stage configs in %s/kwok-stages: run `make testbin`", testbin)
	}
	path := filepath.Join(dir, "stages.yaml")
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

// createNodes registers kwok nodes the way Talos' kubelet registers them:
// control-plane nodes labelled and tainted node-role.kubernetes.io/control-plane,
// and every node with the not-ready:NoSchedule taint the kubelet registers
// with (so nothing but tolerating pods lands before the node is Ready).
func (c *Cluster) createNodes(ctx context.Context, controlPlanes, workers int) error {
	for i := 1; i <= controlPlanes; i++ {
		if err := c.createNode(ctx, fmt.Sprintf("controlplane-%d", i), true); err != nil {
			return err
		}
	}
	for i := 1; i <= workers; i++ {
		if err := c.createNode(ctx, fmt.Sprintf("worker-%d", i), false); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) createNode(ctx context.Context, name string, controlPlane bool) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
				LabelRole:                "worker",
			},
		},
		Spec: corev1.NodeSpec{
			Taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}},
		},
		// A kubelet registers its node with its status already set. A node created without a
		// Ready condition loses the not-ready taint to the node lifecycle controller (taints
		// follow conditions), and that removal can land after kwok has reported NotReady,
		// opening a window in which ordinary pods are scheduled onto a NotReady node.
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: reasonNotReady, Message: messageNoCNI,
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}}},
	}
	if controlPlane {
		node.Labels[LabelControlPlane] = ""
		node.Labels[LabelRole] = "controlplane"
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: LabelControlPlane, Effect: corev1.TaintEffectNoSchedule})
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return nil
}

// readyCondition returns the node's Ready condition, or nil.
func readyCondition(node *corev1.Node) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// hasNotReadyTaint reports whether the node carries the kubelet's not-ready:NoSchedule taint.
func hasNotReadyTaint(node *corev1.Node) bool {
	for _, t := range node.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule {
			return true
		}
	}
	return false
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(node *corev1.Node) bool {
	c := readyCondition(node)
	return c != nil && c.Status == corev1.ConditionTrue
}
