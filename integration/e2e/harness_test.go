// Package e2e runs `bootcore agent` (the built binary) against test-bed clusters booted from
// the lab tree by the Talos emulation, with the real Flux controllers and the flux-operator
// running as processes. See integration/README.md for the test bed.
package e2e

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bootcore-dev/bootcore/integration/labenv"
	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/runlock"
)

var bootcoreBin string

func TestMain(m *testing.M) {
	code := func() int {
		root, err := repoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		dir, err := os.MkdirTemp("", "bootcore-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bootcoreBin = filepath.Join(dir, "bootcore")
		// The tag the Makefile builds bootcore with (see BUILD_TAGS there).
		build := exec.Command("go", "build", "-tags", "kustomize_disable_go_plugin_support", "-o", bootcoreBin, "./cmd/bootcore")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building bootcore: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "cmd", "bootcore")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no bootcore checkout above %s", dir)
		}
		dir = parent
	}
}

// The Git URL placeholder the lab tree uses (see its gotk-sync.yaml and cluster-settings).
// lab is a copy of the lab tree pointed at test-bed clusters and a Git server (labenv).
type lab struct {
	*labenv.Lab
	repo   string
	git    *testbed.GitServer
	canary string
	env    []string
}

// newLab prepares the lab tree for clusters with labenv (endpoints, Git URL, agent section
// with a canary token, bootcore gen, pushed to the Git server).
func newLab(t *testing.T, clusters map[string]*testbed.Cluster) *lab {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	git := testbed.GitServerT(t)
	canary := fmt.Sprintf("canary-%d-7c1e", time.Now().UnixNano())
	l, err := labenv.Prepare(context.Background(), root, filepath.Join(t.TempDir(), "lab"), git, clusters, canary)
	if err != nil {
		t.Fatal(err)
	}
	return &lab{Lab: l, repo: l.Repo, git: git, canary: canary, env: append(l.Env, "HOME="+t.TempDir())}
}

// bootTalos boots the emulated control-plane nodes of cluster name from the lab's generated
// patch, concurrently as Talos nodes do, then runs External Secrets on the booted CRDs.
func bootTalos(t *testing.T, c *testbed.Cluster, l *lab, name string) {
	t.Helper()
	if err := l.BootTalos(context.Background(), c, name, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	// The real External Secrets controller (in a cluster: the pod of its Deployment) on the CRDs
	// phase 0 just booted, with a 1Password Connect stand-in that accepts the lab's token.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.StartLabExternalSecrets(ctx, l.canary); err != nil {
		t.Fatal(err)
	}
}

// startFlux runs the Flux controllers and the flux-operator on c.
func startFlux(t *testing.T, c *testbed.Cluster) {
	t.Helper()
	testbed.StartFluxT(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.StartFluxOperator(ctx); err != nil {
		t.Fatal(err)
	}
}

// bootedCluster is one test-bed cluster booted from the lab with Flux running, ready for the agent.
func bootedCluster(t *testing.T, name string) (*testbed.Cluster, *lab) {
	t.Helper()
	start := time.Now()
	c := testbed.StartT(t, testbed.Options{Name: name})
	l := newLab(t, map[string]*testbed.Cluster{name: c})
	bootTalos(t, c, l, name)
	startFlux(t, c)
	t.Logf("cluster %s booted with Flux running in %s", name, time.Since(start).Round(100*time.Millisecond))
	return c, l
}

// bootWhileAgentRuns starts the agent first, as it runs right after talosctl bootstrap, then
// boots the emulated Talos nodes (the agent waits for them and the CNI), then starts Flux's
// controllers and the flux-operator (in a real cluster: pods of the Deployments the agent and
// the operator install). It returns the agent's run.
func bootWhileAgentRuns(t *testing.T, c *testbed.Cluster, l *lab, name string, extra ...string) agentRun {
	t.Helper()
	done := make(chan agentRun, 1)
	waiting := make(chan struct{})
	var once sync.Once
	go func() {
		done <- runAgentWatching(t, l, c.KubeconfigPath, name, func(e agent.Event) {
			if e.Phase == agent.PhaseWaitControlPlane || e.Type == agent.EventResult {
				once.Do(func() { close(waiting) })
			}
		}, extra...)
	}()
	// Boot once the agent waits for the control plane, so it sees the nodes NotReady.
	<-waiting
	bootTalos(t, c, l, name)
	startFlux(t, c)
	return <-done
}

// agentRun is one finished agent process.
type agentRun struct {
	code    int
	events  []agent.Event
	stdout  string
	stderr  string
	elapsed time.Duration
}

func (r agentRun) result() agent.Event {
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Type == agent.EventResult {
			return r.events[i]
		}
	}
	return agent.Event{}
}

// phasesRun lists the phases that started (not skipped) in this run.
func (r agentRun) phasesRun() []string {
	var out []string
	for _, e := range r.events {
		if e.Type == agent.EventStart {
			out = append(out, e.Phase)
		}
	}
	return out
}

// phasesSeen lists the phases that ran or were found done, in order.
func (r agentRun) phasesSeen() []string {
	var out []string
	for _, e := range r.events {
		if e.Type == agent.EventStart || e.Type == agent.EventSkip {
			out = append(out, e.Phase)
		}
	}
	return out
}

// agentCmd prepares `bootcore agent` for cluster name with JSON output and short test timings.
func agentCmd(t *testing.T, l *lab, kubeconfig, name string, extra ...string) *exec.Cmd {
	t.Helper()
	args := []string{"agent", "--cluster", name, "--repo", l.repo, "--kubeconfig", kubeconfig, "-o", "json",
		"--bundle-dir", t.TempDir(), "--cache-dir", t.TempDir(), "--lock-ttl", "8s", "--poll-interval", "200ms",
		"--install-flux-timeout", "5m", "--handover-timeout", "8m"}
	cmd := exec.Command(bootcoreBin, append(args, extra...)...)
	cmd.Env = append(os.Environ(), l.env...)
	return cmd
}

func runAgent(t *testing.T, l *lab, kubeconfig, name string, extra ...string) agentRun {
	t.Helper()
	return runAgentWatching(t, l, kubeconfig, name, nil, extra...)
}

// runAgentWatching runs the agent and calls onEvent with each event as it is printed.
func runAgentWatching(t *testing.T, l *lab, kubeconfig, name string, onEvent func(agent.Event), extra ...string) agentRun {
	t.Helper()
	cmd := agentCmd(t, l, kubeconfig, name, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Errorf("bootcore agent: %v", err)
		return agentRun{code: -1}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		// Errorf, not Fatal: this also runs on goroutines other than the test's.
		t.Errorf("bootcore agent: %v", err)
		return agentRun{code: -1}
	}
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		stdout.Write(sc.Bytes())
		stdout.WriteByte('\n')
		var e agent.Event
		if onEvent != nil && json.Unmarshal(sc.Bytes(), &e) == nil {
			onEvent(e)
		}
	}
	err = cmd.Wait()
	r := agentRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Errorf("bootcore agent: %v", err)
		r.code = -1
	}
	r.events = parseEvents(t, r.stdout)
	t.Logf("bootcore agent %s: exit %d in %s; phases run %v", strings.Join(extra, " "), r.code, r.elapsed.Round(100*time.Millisecond), r.phasesRun())
	return r
}

func parseEvents(t *testing.T, stdout string) []agent.Event {
	t.Helper()
	var out []agent.Event
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e agent.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Errorf("-o json printed a line that is not an event: %q", sc.Text())
			continue
		}
		out = append(out, e)
	}
	return out
}

func dumpOnFailure(t *testing.T, r agentRun) {
	t.Helper()
	if t.Failed() {
		t.Logf("agent stdout:\n%s\nagent stderr:\n%s", r.stdout, r.stderr)
	}
}

var (
	gvrConfigMap     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrFluxInstance  = schema.GroupVersionResource{Group: "fluxcd.controlplane.io", Version: "v1", Resource: "fluxinstances"}
	gvrDeployment    = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrDaemonSet     = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	gvrCRD           = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	gvrHelmRepo      = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmrepositories"}
	managedObjectGVR = []schema.GroupVersionResource{
		{Version: "v1", Resource: "namespaces"}, {Version: "v1", Resource: "serviceaccounts"}, {Version: "v1", Resource: "services"},
		gvrConfigMap, gvrDeployment, gvrDaemonSet, gvrCRD, gvrFluxInstance,
		testbed.GitRepositoryGVR, testbed.KustomizationGVR, testbed.HelmReleaseGVR,
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	}
)

// condTrue reports whether the object's condition typ is True for its current generation.
func condTrue(u *unstructured.Unstructured, typ string) (bool, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, raw := range conds {
		c, _ := raw.(map[string]any)
		if c["type"] != typ {
			continue
		}
		msg := fmt.Sprintf("%v %v: %v", c["status"], c["reason"], c["message"])
		if g, ok := c["observedGeneration"].(int64); ok && g != u.GetGeneration() {
			return false, "stale: " + msg
		}
		return c["status"] == "True", msg
	}
	return false, "no " + typ + " condition"
}

// fluxNotReadyAfter polls every Kustomization and HelmRelease until all are Ready, and
// returns the ones still not Ready when the deadline passes.
func fluxNotReadyAfter(ctx context.Context, t *testing.T, c *testbed.Cluster, deadline time.Duration) []string {
	t.Helper()
	var notReady []string
	_ = wait.PollUntilContextTimeout(ctx, time.Second, deadline, true, func(ctx context.Context) (bool, error) {
		notReady = nil
		for _, gvr := range []schema.GroupVersionResource{testbed.KustomizationGVR, testbed.HelmReleaseGVR} {
			list, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
			if err != nil {
				notReady = append(notReady, fmt.Sprintf("listing %s: %v", gvr.Resource, err))
				continue
			}
			if len(list.Items) < 3 {
				notReady = append(notReady, fmt.Sprintf("only %d %s", len(list.Items), gvr.Resource))
			}
			for i := range list.Items {
				if ok, msg := condTrue(&list.Items[i], "Ready"); !ok {
					notReady = append(notReady, fmt.Sprintf("%s %s/%s: %s", gvr.Resource, list.Items[i].GetNamespace(), list.Items[i].GetName(), msg))
				}
			}
		}
		return len(notReady) == 0, nil
	})
	return notReady
}

// assertHandedOver checks every hand-over criterion independently of the agent.
func assertHandedOver(t *testing.T, c *testbed.Cluster, l *lab, name string) {
	t.Helper()
	ctx := context.Background()
	ks, err := c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marker, err := c.Client.CoreV1().ConfigMaps(agent.MarkerNamespace).Get(ctx, agent.MarkerName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("hand-over marker: %v", err)
	}
	if marker.Data["cluster"] != name || marker.Data["clusterUID"] != string(ks.UID) {
		t.Errorf("marker names cluster %q UID %q, want %s %s", marker.Data["cluster"], marker.Data["clusterUID"], name, ks.UID)
	}
	for _, p := range agent.PhaseNames[1:] {
		if marker.Data["phase."+p] == "" {
			t.Errorf("marker has no time for phase %s: %v", p, marker.Data)
		}
	}

	repo, err := c.Get(ctx, testbed.GitRepositoryGVR, "flux-system", "flux-system")
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := condTrue(repo, "Ready"); !ok {
		t.Errorf("GitRepository flux-system not Ready: %s", msg)
	}
	rev, _, _ := unstructured.NestedString(repo.Object, "status", "artifact", "revision")
	head, err := l.gitHead()
	if err != nil {
		t.Fatal(err)
	}
	// The revision's spelling depends on who last wrote the GitRepository's ref (branch:
	// main from Git or the manifests sync; name: refs/heads/main from the FluxInstance), so
	// compare commits.
	if !strings.HasSuffix(rev, "sha1:"+head) || !strings.HasSuffix(marker.Data["gitRevision"], "sha1:"+head) {
		t.Errorf("GitRepository revision %q, marker %q, branch head %s", rev, marker.Data["gitRevision"], head)
	}
	// Every Kustomization and HelmRelease converges to Ready. Not all at one instant: when the
	// FluxInstance takes over the GitRepository its artifact revision is re-spelled, every
	// Kustomization reconciles again, and one whose dependency is mid-reconcile reports
	// DependencyNotReady until its next retry.
	if notReady := fluxNotReadyAfter(ctx, t, c, 3*time.Minute); len(notReady) > 0 {
		t.Errorf("not Ready within 3m:\n%s", strings.Join(notReady, "\n"))
	}
	fi, err := c.Get(ctx, gvrFluxInstance, "flux-system", "flux")
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := condTrue(fi, "Ready"); !ok {
		t.Errorf("FluxInstance flux not Ready: %s", msg)
	}
	dns, err := c.Client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dns.Spec.Replicas != 2 || dns.Status.AvailableReplicas != 2 {
		t.Errorf("coredns: %d replicas, %d available; cluster-settings says 2", *dns.Spec.Replicas, dns.Status.AvailableReplicas)
	}
	for _, d := range []string{"cert-manager/cert-manager", "cert-manager/cert-manager-webhook", "external-secrets/external-secrets", "flux-system/flux-operator"} {
		ns, n, _ := strings.Cut(d, "/")
		if err := c.WaitDeploymentRolledOut(ctx, ns, n, time.Second); err != nil {
			t.Errorf("Deployment %s: %v", d, err)
		}
	}
	sec, err := c.Client.CoreV1().Secrets("external-secrets").Get(ctx, "onepassword-connect", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["token"]) != l.canary || string(sec.Data["1password-credentials.json"]) != `{"verifier":{"salt":"abc"}}` {
		t.Errorf("Secret onepassword-connect has keys %v with other values than the inputs", keys(sec.Data))
	}

	// Talos no longer owns anything bootcore booted: its inventory holds exactly Talos's own
	// manifests (bootstrap RBAC and token; CoreDNS, kube-proxy and Flannel are off in the lab),
	// and only those carry its annotation.
	cfg, err := l.TalosConfig(c, name)
	if err != nil {
		t.Fatal(err)
	}
	own, err := talosemu.OwnInventoryKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Client.CoreV1().ConfigMaps(talosemu.InventoryNamespace).Get(ctx, talosemu.InventoryName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range inv.Data {
		if !own[k] {
			t.Errorf("Talos inventory still lists %s", k)
		}
	}
	for k := range own {
		if _, ok := inv.Data[k]; !ok {
			t.Errorf("Talos inventory lost its own %s", k)
		}
	}
	for _, gvr := range []schema.GroupVersionResource{gvrCRD, gvrDaemonSet, gvrDeployment, gvrConfigMap} {
		list, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			if o.GetAnnotations()[talosemu.InventoryAnnotation] == "" {
				continue
			}
			if ref, err := object.RuntimeToObjMeta(o); err != nil || !own[ref.String()] {
				t.Errorf("%s %s/%s still carries %s", gvr.Resource, o.GetNamespace(), o.GetName(), talosemu.InventoryAnnotation)
			}
		}
	}

	// Cilium belongs to helm-controller: its release is deployed, its objects carry the
	// release's metadata, and its HelmRelease never reported an ownership error.
	hr, err := c.Get(ctx, testbed.HelmReleaseGVR, "kube-system", "cilium")
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := condTrue(hr, "Ready"); !ok {
		t.Errorf("HelmRelease cilium: %s", msg)
	}
	rels, err := c.Client.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=cilium,status=deployed"})
	if err != nil || len(rels.Items) != 1 {
		t.Errorf("deployed Helm release kube-system/cilium: %d (%v)", len(rels.Items), err)
	}
	ds, err := c.Client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Annotations["meta.helm.sh/release-name"] != "cilium" || ds.Labels["helm.toolkit.fluxcd.io/name"] != "cilium" {
		t.Errorf("DaemonSet cilium: annotations %v labels %v", ds.Annotations, ds.Labels)
	}
	events, err := c.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, "invalid ownership metadata") || strings.Contains(e.Message, "cannot be imported into the current release") {
			t.Errorf("ownership error: %s %s/%s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.Message)
		}
	}
}

func (l *lab) gitHead() (string, error) {
	out, err := exec.Command("git", "-C", l.git.Worktree("lab"), "rev-parse", "HEAD").Output()
	return strings.TrimSpace(string(out)), err
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// objectSet lists the objects of the kinds the hand-over produces, by kind, namespace, name and owner metadata (ownerMeta),
// plus each Helm release's name and status (release Secrets are numbered by revision,
// which differs with the path taken). Events, pods, leases and the like are not compared.
func objectSet(t *testing.T, c *testbed.Cluster) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, gvr := range managedObjectGVR {
		list, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			// Test-bed and kube-controller-manager objects are not the hand-over's.
			if strings.HasPrefix(o.GetName(), "system:") || strings.HasPrefix(o.GetName(), "kube-root-ca") || o.GetName() == "bootcore-readonly" {
				continue
			}
			out = append(out, fmt.Sprintf("%s %s/%s [%s]", gvr.Resource, o.GetNamespace(), o.GetName(), ownerMeta(&o)))
		}
	}
	secrets, err := c.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Type == "helm.sh/release.v1" {
			if s.Labels["status"] == "deployed" {
				out = append(out, fmt.Sprintf("helm-release %s/%s deployed", s.Namespace, s.Labels["name"]))
			}
			continue
		}
		out = append(out, fmt.Sprintf("secrets %s/%s [%s]", s.Namespace, s.Name, ownerMeta(&s)))
	}
	sort.Strings(out)
	return out
}

// ownerMeta is what says who owns an object: owner references, Helm's and Talos's inventory
// annotations, Helm's and Flux's labels.
func ownerMeta(m metav1.Object) string {
	var parts []string
	for _, r := range m.GetOwnerReferences() {
		parts = append(parts, "ownerRef="+r.Kind+"/"+r.Name)
	}
	for _, k := range []string{"meta.helm.sh/release-name", "meta.helm.sh/release-namespace", "config.k8s.io/owning-inventory"} {
		if v := m.GetAnnotations()[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	for _, k := range []string{"app.kubernetes.io/managed-by", "helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace",
		"kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace"} {
		if v := m.GetLabels()[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// versions maps each agent-managed object to its resourceVersion, to prove a run wrote nothing.
func agentObjectVersions(t *testing.T, c *testbed.Cluster) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	add := func(what string, rv string, err error) {
		switch {
		case apierrors.IsNotFound(err):
			out[what] = "absent"
		case err != nil:
			t.Fatal(err)
		default:
			out[what] = rv
		}
	}
	cm, err := c.Client.CoreV1().ConfigMaps(agent.MarkerNamespace).Get(ctx, agent.MarkerName, metav1.GetOptions{})
	add("marker", cm.ResourceVersion, err)
	inv, err := c.Client.CoreV1().ConfigMaps(talosemu.InventoryNamespace).Get(ctx, talosemu.InventoryName, metav1.GetOptions{})
	add("inventory", inv.ResourceVersion, err)
	lease, err := c.Client.CoordinationV1().Leases(runlock.DefaultNamespace).Get(ctx, runlock.DefaultName, metav1.GetOptions{})
	add("lease", lease.ResourceVersion, err)
	for _, ns := range []string{"flux-system", "external-secrets", "cert-manager"} {
		n, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		add("namespace "+ns, n.ResourceVersion, err)
	}
	secrets, err := c.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Type == "helm.sh/release.v1" || s.Labels["app.kubernetes.io/managed-by"] == "bootcore" {
			out["secret "+s.Namespace+"/"+s.Name] = s.ResourceVersion
		}
	}
	for _, gvr := range []schema.GroupVersionResource{gvrCRD, gvrDaemonSet} {
		list, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			out[gvr.Resource+" "+o.GetNamespace()+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	return out
}

// bundleFile is one entry of a support bundle.
type bundleFile struct {
	name string
	data []byte
}

// readBundle returns every entry of the support bundle at path.
func readBundle(t *testing.T, path string) []bundleFile {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out []bundleFile
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("bundle entry %s: %v", f.Name, err)
		}
		out = append(out, bundleFile{name: f.Name, data: data})
	}
	return out
}

// bootObjectGenerations are the UID and generation of what bootcore booted and Flux now owns
// (the CNI, cluster DNS, a CRD of each phase-0 bundle): a revert changes the generation, a
// prune the UID.
func bootObjectGenerations(t *testing.T, c *testbed.Cluster) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, ref := range []struct {
		gvr             schema.GroupVersionResource
		namespace, name string
	}{
		{gvrDaemonSet, "kube-system", "cilium"},
		{gvrDeployment, "kube-system", "cilium-operator"},
		{gvrDeployment, "kube-system", "coredns"},
		{gvrCRD, "", "certificates.cert-manager.io"},
		{gvrCRD, "", "externalsecrets.external-secrets.io"},
		{gvrCRD, "", "fluxinstances.fluxcd.controlplane.io"},
	} {
		key := ref.gvr.Resource + " " + ref.namespace + "/" + ref.name
		obj, err := c.Get(ctx, ref.gvr, ref.namespace, ref.name)
		if err != nil {
			out[key] = err.Error()
			continue
		}
		out[key] = fmt.Sprintf("uid=%s generation=%d", obj.GetUID(), obj.GetGeneration())
	}
	return out
}
