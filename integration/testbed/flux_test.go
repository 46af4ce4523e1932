package testbed_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// A small repository: plain manifests under apps/ (a ConfigMap and a
// HelmRelease) and the chart that HelmRelease installs under charts/demo.
var labTree = map[string]string{
	"apps/greeting.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
  namespace: default
data:
  text: hello v1
`,
	"apps/helmrelease.yaml": `apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: demo
  namespace: flux-system
spec:
  interval: 10m
  chart:
    spec:
      chart: ./charts/demo
      reconcileStrategy: Revision
      sourceRef:
        kind: GitRepository
        name: lab
  values:
    message: from helm
`,
	"charts/demo/Chart.yaml": `apiVersion: v2
name: demo
version: 0.1.0
`,
	"charts/demo/values.yaml": "message: default\n",
	"charts/demo/templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-message
data:
  message: {{ .Values.message | quote }}
`,
}

func TestFluxReconcilesFromGit(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "flux", ControlPlanes: 1, Workers: -1})
	ctx := context.Background()
	testbed.StartFluxT(t, c)
	logResources(t, c)

	src := t.TempDir()
	for name, body := range labTree {
		path := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := testbed.GitServerT(t)
	first, err := git.CreateRepo("lab", src)
	if err != nil {
		t.Fatal(err)
	}

	sync := `apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: lab
  namespace: flux-system
spec:
  interval: 10m
  url: ` + git.RepoURL("lab") + `
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: lab
`
	if err := c.Apply(ctx, []byte(sync)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitCondition(ctx, testbed.GitRepositoryGVR, "flux-system", "lab", "Ready", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitCondition(ctx, testbed.KustomizationGVR, "flux-system", "apps", "Ready", time.Minute); err != nil {
		t.Fatal(err)
	}
	var applied string
	if err := c.WaitFor(ctx, "commit "+first+" applied", time.Minute, func(ctx context.Context) (bool, error) {
		ks, err := c.Get(ctx, testbed.KustomizationGVR, "flux-system", "apps")
		if err != nil {
			return false, nil
		}
		applied, _, _ = unstructured.NestedString(ks.Object, "status", "lastAppliedRevision")
		return strings.HasSuffix(applied, first), nil
	}); err != nil {
		t.Errorf("Kustomization applied %q, want commit %s: %v", applied, first, err)
	}
	if got := configMapValue(t, c, "default", "greeting", "text"); got != "hello v1" {
		t.Errorf("greeting = %q", got)
	}

	// A pushed commit is applied (after `flux reconcile source git lab`).
	second, err := git.Commit("lab", "greeting v2", func(wt string) error {
		return os.WriteFile(filepath.Join(wt, "apps/greeting.yaml"), []byte(strings.Replace(labTree["apps/greeting.yaml"], "hello v1", "hello v2", 1)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	requestReconcile(t, c, "flux-system", "lab")
	if err := c.WaitFor(ctx, "commit "+second+" applied", time.Minute, func(ctx context.Context) (bool, error) {
		ks, err := c.Get(ctx, testbed.KustomizationGVR, "flux-system", "apps")
		if err != nil {
			return false, nil
		}
		rev, _, _ := unstructured.NestedString(ks.Object, "status", "lastAppliedRevision")
		return strings.HasSuffix(rev, second), nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := configMapValue(t, c, "default", "greeting", "text"); got != "hello v2" {
		t.Errorf("greeting after push = %q", got)
	}

	// The HelmRelease (applied by the Kustomization) is installed by the
	// real helm-controller from the chart in the Git repository.
	if err := c.WaitCondition(ctx, testbed.HelmReleaseGVR, "flux-system", "demo", "Ready", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := configMapValue(t, c, "flux-system", "demo-message", "message"); got != "from helm" {
		t.Errorf("chart ConfigMap message = %q", got)
	}
	if _, err := c.Client.CoreV1().Secrets("flux-system").Get(ctx, "sh.helm.release.v1.demo.v1", metav1.GetOptions{}); err != nil {
		t.Errorf("Helm release storage: %v", err)
	}

	// helm-controller crashes (killed behind the test bed's back, as an OOM kill would): like
	// a kubelet, the bed starts it again, and the restarted controller applies a change.
	killed, err := c.Kill("helm-controller")
	if err != nil {
		t.Fatal(err)
	}
	third, err := git.Commit("lab", "demo: new message", func(wt string) error {
		return os.WriteFile(filepath.Join(wt, "apps/helmrelease.yaml"), []byte(strings.Replace(labTree["apps/helmrelease.yaml"], "from helm", "after a crash", 1)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	requestReconcile(t, c, "flux-system", "lab")
	if err := c.WaitFor(ctx, "the restarted helm-controller to apply commit "+third, 2*time.Minute, func(ctx context.Context) (bool, error) {
		cm, err := c.Client.CoreV1().ConfigMaps("flux-system").Get(ctx, "demo-message", metav1.GetOptions{})
		return err == nil && cm.Data["message"] == "after a crash", nil
	}); err != nil {
		t.Fatal(err)
	}
	if pid := c.PID("helm-controller"); pid == 0 || pid == killed {
		t.Errorf("helm-controller pid after the crash = %d, killed %d: want a new process", pid, killed)
	}

	// The pod standing for source-controller serves the real controller's log, as
	// `kubectl logs` would (kwok's kubelet server reads the process log; see podlogs.go).
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "source-controller-0", Namespace: "flux-system", Labels: map[string]string{"app": "source-controller"}},
		Spec:       corev1.PodSpec{NodeName: "controlplane-1", Containers: []corev1.Container{{Name: "manager", Image: "ghcr.io/fluxcd/source-controller"}}},
	}
	if _, err := c.Client.CoreV1().Pods("flux-system").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var logs string
	if err := c.WaitFor(ctx, "source-controller pod log", time.Minute, func(ctx context.Context) (bool, error) {
		data, err := c.Client.CoreV1().Pods("flux-system").GetLogs(pod.Name, &corev1.PodLogOptions{Container: "manager", TailLines: ptr.To(int64(500))}).DoRaw(ctx)
		logs = string(data)
		return err == nil && strings.Contains(logs, "GitRepository"), nil
	}); err != nil {
		t.Fatalf("%v; last answer: %.300s", err, logs)
	}
	logResources(t, c)
}

func configMapValue(t *testing.T, c *testbed.Cluster, namespace, name, key string) string {
	t.Helper()
	cm, err := c.Client.CoreV1().ConfigMaps(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap %s/%s: %v", namespace, name, err)
	}
	return cm.Data[key]
}

// requestReconcile does what `flux reconcile source git` does: set the
// reconcile.fluxcd.io/requestedAt annotation.
func requestReconcile(t *testing.T, c *testbed.Cluster, namespace, name string) {
	t.Helper()
	patch := `{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":"` + time.Now().Format(time.RFC3339Nano) + `"}}}`
	if _, err := c.Dynamic.Resource(testbed.GitRepositoryGVR).Namespace(namespace).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
