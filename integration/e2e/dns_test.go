package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/agent"
)

// Flux's controllers resolve their Git and chart hosts through cluster DNS, so the agent must
// not install Flux before CoreDNS answers behind kube-dns. Booted by bootcore with the CNI,
// CoreDNS rolls out like any boot workload; here its pods are gone (scaled to zero, as a
// Corefile that crash-loops would leave it), so the Deployment is "rolled out" but kube-dns
// has no ready endpoint: the agent fails in wait-cni naming cluster DNS and installs nothing.
func TestAgentWaitsForClusterDNS(t *testing.T) {
	t.Parallel()
	c := testbed.StartT(t, testbed.Options{Name: "infra"})
	l := newLab(t, map[string]*testbed.Cluster{"infra": c})
	bootTalos(t, c, l, "infra")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.WaitDeploymentRolledOut(ctx, "kube-system", "coredns", time.Minute); err != nil {
		t.Fatal(err)
	}
	zero := []byte(`{"spec":{"replicas":0}}`)
	if _, err := c.Client.AppsV1().Deployments("kube-system").Patch(ctx, "coredns", types.MergePatchType, zero, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	r := runAgent(t, l, c.KubeconfigPath, "infra", "--wait-cni-timeout", "20s")
	defer dumpOnFailure(t, r)
	if r.code != agent.ExitFailed {
		t.Fatalf("agent exit %d, want %d: %s", r.code, agent.ExitFailed, r.result().Message)
	}
	msg := r.result().Message
	for _, want := range []string{"phase wait-cni", "cluster DNS: Service kube-system/kube-dns has no ready endpoint"} {
		if !strings.Contains(msg, want) {
			t.Errorf("result lacks %q: %s", want, msg)
		}
	}
	if slices.Contains(r.phasesRun(), agent.PhaseInstallFlux) {
		t.Errorf("install-flux ran without cluster DNS (phases run: %v)", r.phasesRun())
	}
	if _, err := c.Client.AppsV1().Deployments("flux-system").Get(ctx, "flux-operator", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("flux-operator Deployment: %v, want not found", err)
	}

	// The bed holds Flux to the same rule: a source applied while kube-dns has no endpoint
	// cannot fetch (the controllers' network gate refuses it), and fetches once CoreDNS is back.
	// (The controllers start here, as pods of the Deployments an agent would have installed.)
	testbed.StartFluxT(t, c)
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Namespace(ctx, "flux-system"); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, []byte(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: before-dns
  namespace: flux-system
spec:
  interval: 10s
  url: `+l.GitURL+`
  ref:
    branch: main
`)); err != nil {
		t.Fatal(err)
	}
	msg = ""
	if err := c.WaitFor(ctx, "GitRepository before-dns failing to fetch", time.Minute, func(ctx context.Context) (bool, error) {
		repo, err := c.Get(ctx, testbed.GitRepositoryGVR, "flux-system", "before-dns")
		if err != nil {
			return false, nil
		}
		ok, m := condTrue(repo, "Ready")
		msg = m
		if ok {
			return false, fmt.Errorf("fetched without cluster DNS: %s", m)
		}
		return strings.Contains(m, "502"), nil
	}); err != nil {
		t.Fatalf("%v (Ready: %s)", err, msg)
	}
	two := []byte(`{"spec":{"replicas":2}}`)
	if _, err := c.Client.AppsV1().Deployments("kube-system").Patch(ctx, "coredns", types.MergePatchType, two, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitCondition(ctx, testbed.GitRepositoryGVR, "flux-system", "before-dns", "Ready", time.Minute); err != nil {
		t.Errorf("with CoreDNS back: %v", err)
	}
}
