package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bootcore-dev/bootcore/integration/chartmirror"
	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// A HelmRelease that helm-controller gave up on (install failed, no retries left: Stalled
// RetriesExceeded) ends the wait within a minute with helm-controller's message, instead of
// holding the hand-over for its whole timeout. The release is the published CoreDNS chart
// with a replica count the API server refuses, installed by the real helm-controller.
func TestWaitTargetsEndsOnStalledHelmRelease(t *testing.T) {
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

	k, err := newKube(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := &state{k: k, rep: NewReporter(os.Stderr, true), opts: Options{PollInterval: time.Second, ProgressEvery: time.Minute}}
	hr := target{GVK: schema.GroupVersionKind{Group: "helm.toolkit.fluxcd.io", Version: "v2", Kind: "HelmRelease"}, Namespace: "flux-system", Name: "coredns", Ready: fluxReady}
	start := time.Now()
	err = s.waitTargets(ctx, PhaseHandover, []target{hr})
	took := time.Since(start)
	var nr *NotReadyError
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
