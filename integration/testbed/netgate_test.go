package testbed_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// clusterDNS is kube-system/kube-dns with one backing Deployment, as a DNS chart makes them
// (the endpoint slice controller marks the kwok pod's endpoint ready).
const clusterDNS = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      tolerations:
      - operator: Exists
      containers:
      - name: coredns
        image: registry.k8s.io/coredns/coredns:v1.12.1
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
spec:
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
`

// Flux's controllers behind the gate reach the Git server only once the cluster has a pod
// network and cluster DNS, as pods on Talos do: before, the GitRepository fails to fetch and
// the gate names what is missing; after, it fetches without anything else changing.
func TestNetGateAdmitsFluxOnlyWithPodNetworkAndDNS(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "gate", ControlPlanes: 1, Workers: -1})
	ctx := context.Background()
	gate, err := c.StartNetGate("")
	if err != nil {
		t.Fatal(err)
	}
	c.SetNetwork(gate.Env(""))
	testbed.StartFluxT(t, c)

	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "greeting.yaml"), []byte(labTree["apps/greeting.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	git := testbed.GitServerT(t)
	if _, err := git.CreateRepo("lab", src); err != nil {
		t.Fatal(err)
	}
	url := testbed.SiteURL(git.RepoURL("lab"), "git")
	if !strings.Contains(url, "git."+testbed.SiteDomain) {
		t.Fatalf("site URL %s", url)
	}
	if err := c.Apply(ctx, []byte(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: lab
  namespace: flux-system
spec:
  interval: 10m
  url: `+url+`
  ref:
    branch: main
`)); err != nil {
		t.Fatal(err)
	}

	// No CNI: the fetch fails (the gate answers 502) and the gate says why.
	failedFetch := func(want string) {
		t.Helper()
		var msg string
		if err := c.WaitFor(ctx, "GitRepository lab failing to fetch", time.Minute, func(ctx context.Context) (bool, error) {
			repo, err := c.Get(ctx, testbed.GitRepositoryGVR, "flux-system", "lab")
			if err != nil {
				return false, nil
			}
			msg = readyMessage(repo)
			return strings.Contains(msg, "502"), nil
		}); err != nil {
			t.Fatalf("%v (Ready message %q)", err, msg)
		}
		if err := gate.Open(ctx); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("gate: %v, want %q", err, want)
		}
	}
	failedFetch("no pod network")

	// A CNI makes the node Ready; without cluster DNS the fetch still fails.
	if err := c.Apply(ctx, []byte(ciliumStandIn)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNodesReady(ctx, "", true, time.Minute); err != nil {
		t.Fatal(err)
	}
	requestReconcile(t, c, "flux-system", "lab")
	failedFetch("no cluster DNS: Service kube-system/kube-dns has no ready endpoint")

	// Cluster DNS: the same GitRepository fetches.
	if err := c.Apply(ctx, []byte(clusterDNS)); err != nil {
		t.Fatal(err)
	}
	requestReconcile(t, c, "flux-system", "lab")
	if err := c.WaitCondition(ctx, testbed.GitRepositoryGVR, "flux-system", "lab", "Ready", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := gate.Open(ctx); err != nil {
		t.Errorf("gate still closed: %v", err)
	}
}

func readyMessage(u *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, raw := range conds {
		if c, _ := raw.(map[string]any); c["type"] == "Ready" {
			m, _ := c["message"].(string)
			return m
		}
	}
	return ""
}
