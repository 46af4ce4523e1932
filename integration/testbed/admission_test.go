package testbed_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// The bed's API server admits pods as Talos configures it by default (PodSecurity, enforce
// baseline, kube-system exempt): a privileged pod, as a CNI agent is, is refused in a namespace
// of its own and accepted in kube-system.
func TestPodSecurityAsTalosConfiguresIt(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "admission", ControlPlanes: 1, Workers: -1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Namespace(ctx, "cni-system"); err != nil {
		t.Fatal(err)
	}
	pod := func(ns string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
			Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{
				Name: "agent", Image: "quay.io/cilium/cilium:v1.19.6",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			}}},
		}
	}
	_, err := c.Client.CoreV1().Pods("cni-system").Create(ctx, pod("cni-system"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "baseline:latest"`) {
		t.Errorf("privileged pod in cni-system: %v, want Forbidden by PodSecurity baseline", err)
	}
	if _, err := c.Client.CoreV1().Pods("kube-system").Create(ctx, pod("kube-system"), metav1.CreateOptions{}); err != nil {
		t.Errorf("privileged pod in kube-system (exempt on Talos): %v", err)
	}
}
