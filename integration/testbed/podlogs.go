package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Pod logs. The Flux controllers run as processes on loopback, while their Deployments' pods
// are kwok pods without containers. So that `kubectl logs` (and a support bundle) reads the
// real controller's log from a pod, as in a real cluster, every process log is also kept in
// the CRI format a kubelet writes (<name>.cri.log), kwok runs its kubelet server on loopback,
// and for each pod whose app label names a process of this cluster a kwok Logs object points
// the pod's containers at that file.

// criLogPath is the CRI-format copy of a process log.
func criLogPath(logPath string) string {
	return strings.TrimSuffix(logPath, ".log") + ".cri.log"
}

// criWriter turns output into CRI log lines: "<RFC3339Nano time> stderr F <line>".
type criWriter struct {
	mu      sync.Mutex
	w       io.Writer
	pending []byte
}

func (c *criWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, p...)
	for {
		i := bytes.IndexByte(c.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := c.pending[:i]
		if _, err := io.WriteString(c.w, time.Now().UTC().Format(time.RFC3339Nano)+" stderr F "+string(line)+"\n"); err != nil {
			return len(p), err
		}
		c.pending = c.pending[i+1:]
	}
}

var kwokLogs = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}

// podLogNamespaces are where the processes' pods live: Flux and the flux-operator.
var podLogNamespaces = []string{"flux-system"}

// runPodLogs keeps a kwok Logs object for every pod that stands for a process of this cluster.
func runPodLogs(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, runDir string, logf func(string, ...any)) {
	var wg sync.WaitGroup
	for _, ns := range podLogNamespaces {
		factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
		inf := factory.Core().V1().Pods().Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if pod, ok := obj.(*corev1.Pod); ok {
					linkPodLog(ctx, dyn, runDir, pod, logf)
				}
			},
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			factory.Start(ctx.Done())
			<-ctx.Done()
			factory.Shutdown()
		}()
	}
	wg.Wait()
}

// linkPodLog points the pod's containers at the CRI log of the process its app label names.
func linkPodLog(ctx context.Context, dyn dynamic.Interface, runDir string, pod *corev1.Pod, logf func(string, ...any)) {
	var app, file string
	for _, label := range []string{"app", "app.kubernetes.io/name", "app.kubernetes.io/component"} {
		name := pod.Labels[label]
		if name == "" || strings.ContainsAny(name, `/\`) {
			continue
		}
		if _, err := os.Stat(criLogPath(filepath.Join(runDir, name+".log"))); err == nil {
			app, file = name, criLogPath(filepath.Join(runDir, name+".log"))
			break
		}
	}
	if app == "" {
		return
	}
	var containers []any
	for _, c := range pod.Spec.Containers {
		containers = append(containers, c.Name)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Logs",
		"metadata":   map[string]any{"name": pod.Name, "namespace": pod.Namespace},
		"spec": map[string]any{"logs": []any{map[string]any{
			"containers": containers, "logsFile": file, "follow": false,
		}}},
	}}
	// The CRD is served before kwok starts (installKwokLogsCRD).
	if _, err := dyn.Resource(kwokLogs).Namespace(pod.Namespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
		logf("testbed: pod %s/%s: kwok Logs for %s: %v", pod.Namespace, pod.Name, app, err)
	}
}

// installKwokLogsCRD installs kwok's Logs CRD (kwok itself only watches it) and waits until
// it is served, so kwok's informer and runPodLogs find it.
func (c *Cluster) installKwokLogsCRD(ctx context.Context) error {
	path := filepath.Join(c.testbin, "crds", "kwok", "kwok.x-k8s.io_logs.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kwok Logs CRD: %w: run `make testbin`", err)
	}
	if err := c.Apply(ctx, data); err != nil {
		return fmt.Errorf("kwok Logs CRD: %w", err)
	}
	return c.waitFor(ctx, "kwok Logs CRD served", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(kwokLogs).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
}
