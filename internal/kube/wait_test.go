package kube_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/integration/chartmirror"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/kube"
)

// A wait notices an object turning Ready through the kstatus watcher's informers, within
// moments of the change, on a real API server; a check that reads another object (here a flag
// in a second ConfigMap, as a Kustomization reads its source) is re-evaluated when that one
// changes.
func TestWaitSeesChangesAsTheyHappen(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "waitwatch", ControlPlanes: 1, Workers: 0})
	k, err := kube.New(c.Config, "bootcore-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flag := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "flag", Namespace: "default"}, Data: map[string]string{"ready": "no"}}
	gate := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gate", Namespace: "kube-system"}, Data: map[string]string{"open": "no"}}
	for _, cm := range []*corev1.ConfigMap{flag, gate} {
		if _, err := c.Client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gateRef := kube.Ref{GVK: kube.ConfigMap, Namespace: "kube-system", Name: "gate"}
	ready := func(u *unstructured.Unstructured, seen kube.Lookup) (bool, string) {
		v, _, _ := unstructured.NestedString(u.Object, "data", "ready")
		g := seen(gateRef)
		open := ""
		if g != nil {
			open, _, _ = unstructured.NestedString(g.Object, "data", "open")
		}
		return v == "yes" && open == "yes", "ready=" + v + " open=" + open
	}
	target := kube.Target{Ref: kube.Ref{GVK: kube.ConfigMap, Namespace: "default", Name: "flag"}, Ready: ready, Needs: []kube.Ref{gateRef}}
	waiting := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- k.Wait(ctx, []kube.Target{target}, kube.WaitOptions{
			ProgressEvery: time.Hour,
			OnProgress:    func([]kube.State) { once.Do(func() { close(waiting) }) },
		})
	}()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("wait ended before the object was Ready: %v", err)
	}
	flag.Data["ready"] = "yes"
	if _, err := c.Client.CoreV1().ConfigMaps("default").Update(ctx, flag, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("wait ended with the gate still closed: %v", err)
	case <-time.After(time.Second):
		// not a synchronisation: the wait must still be waiting a second later
	}
	gate.Data["open"] = "yes"
	flipped := time.Now()
	if _, err := c.Client.CoreV1().ConfigMaps("kube-system").Update(ctx, gate, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Ready noticed %s after the needed object changed", time.Since(flipped))
	case <-time.After(30 * time.Second):
		t.Fatal("the wait did not notice the needed object's change within 30 s")
	}
}

// A wait outlives an API server restart: the watch is started again and sees the change made
// after the restart.
func TestWaitSurvivesAPIServerRestart(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "waitrestart", ControlPlanes: 1, Workers: 0})
	k, err := kube.New(c.Config, "bootcore-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "flag", Namespace: "default"}, Data: map[string]string{"ready": "no"}}
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := func(u *unstructured.Unstructured, _ kube.Lookup) (bool, string) {
		v, _, _ := unstructured.NestedString(u.Object, "data", "ready")
		return v == "yes", "ready=" + v
	}
	done := make(chan error, 1)
	go func() {
		done <- k.Wait(ctx, []kube.Target{{Ref: kube.Ref{GVK: kube.ConfigMap, Namespace: "default", Name: "flag"}, Ready: ready}}, kube.WaitOptions{})
	}()
	if err := c.RestartAPIServer(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	cm.Data["ready"] = "yes"
	if err := c.WaitFor(ctx, "the flag to be set", time.Minute, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the wait did not see the change made after the API server restarted")
	}
}

// A HelmRelease that helm-controller gave up on (install failed, no retries left: Stalled
// RetriesExceeded) ends the wait within a minute with helm-controller's message, instead of
// holding the hand-over for its whole timeout. The release is the published CoreDNS chart
// with a replica count the API server refuses, installed by the real helm-controller.
func TestWaitEndsOnStalledHelmRelease(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "stalled", ControlPlanes: 1, Workers: 0})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.StartFlux(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := chartmirror.Start("127.0.0.1:0", filepath.Join("..", "..", "integration", "testdata", "upstream-charts"), t.TempDir(), chartmirror.Upstreams)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	objs := strings.ReplaceAll(`
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: coredns, namespace: flux-system}
spec: {url: REPO, interval: 10m}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: coredns, namespace: flux-system}
spec:
  interval: 10m
  chart:
    spec:
      chart: coredns
      version: 1.46.2
      sourceRef: {kind: HelmRepository, name: coredns}
  values:
    replicaCount: -1
`, "REPO", chartmirror.MirrorURL(m.Addr, "https://coredns.github.io/helm"))
	if err := c.Apply(ctx, []byte(objs)); err != nil {
		t.Fatal(err)
	}
	k, err := kube.New(c.Config, "bootcore-test")
	if err != nil {
		t.Fatal(err)
	}
	hr := kube.Target{Ref: kube.Ref{GVK: kube.HelmRelease, Namespace: "flux-system", Name: "coredns"}, Ready: kube.Flux}
	start := time.Now()
	err = k.Wait(ctx, []kube.Target{hr}, kube.WaitOptions{})
	took := time.Since(start)
	var nr *kube.NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("wait returned %v, want a NotReadyError", err)
	}
	if ctx.Err() != nil || took > time.Minute {
		t.Fatalf("the wait took %s (context: %v), want under a minute", took, ctx.Err())
	}
	for _, want := range []string{"HelmRelease flux-system/coredns stalled", "RetriesExceeded", "replicas"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	t.Logf("ended after %s: %v", took, nr.What)
}
