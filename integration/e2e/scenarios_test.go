package e2e

// The story's P0 scenarios (BOOT.CORE-*), on both lab clusters: infra (Talos v1.13 contract)
// and apps (v1.14). Each lab cluster is its own test-bed cluster, booted from the lab tree
// through the Talos EMULATION and handed over by `bootcore agent`; the scenarios then run
// one after the other on it (the destructive ones last), each named after its ID and logging
// the evidence the story asks for (mostly `bootcore status` output).
// UNIT-001, UNIT-002 (phase-0 purity) and E2E-008 are unit tests in internal/gen
// (scenarios_test.go); UNIT-002's "each CRD Established after boot" half is here.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/internal/render"
	"github.com/bootcore-dev/bootcore/internal/status"
	"github.com/bootcore-dev/bootcore/talos"
)

func TestBOOT_CORE_Scenarios_Infra(t *testing.T) { scenarios(t, "infra", "v1.13.9") }
func TestBOOT_CORE_Scenarios_Apps(t *testing.T)  { scenarios(t, "apps", "v1.14.1") }

// scBed is one handed-over lab cluster the scenarios share.
type scBed struct {
	name string
	c    *testbed.Cluster
	l    *lab
	// repo is what `bootcore status --repo` reads: the Git server's working clone, which the
	// scenarios commit to (so cluster-settings there is what Flux applies).
	repo string
}

func scenarios(t *testing.T, name, talosVersion string) {
	t.Parallel()
	start := time.Now()
	c := testbed.StartT(t, testbed.Options{Name: name})
	l := newLab(t, map[string]*testbed.Cluster{name: c})
	b := &scBed{name: name, c: c, l: l, repo: l.git.Worktree("lab")}

	// Before the boot the control-plane nodes are NotReady for want of a CNI (E2E-001).
	before := scNodeConditions(t, c)
	bootTalos(t, c, l, name)
	bootCilium := scCiliumObjects(t, c) // what Talos created from gen's phase-1 manifest (INT-003)
	startFlux(t, c)
	r := runAgent(t, l, c.KubeconfigPath, name)
	defer dumpOnFailure(t, r)
	if r.code != 0 {
		t.Fatalf("agent exit %d: %s", r.code, r.result().Message)
	}
	t.Logf("cluster %s booted and handed over in %s", name, time.Since(start).Round(time.Second))

	steps := []struct {
		id string
		fn func(t *testing.T)
	}{
		{"BOOT.CORE-UNIT-002_phase0_CRDs_Established", func(t *testing.T) { b.crdsEstablished(t, talosVersion) }},
		{"BOOT.CORE-INT-003_one_source_of_truth", func(t *testing.T) { b.oneSourceOfTruth(t, bootCilium) }},
		{"BOOT.CORE-E2E-001_nodes_and_CNI", func(t *testing.T) { b.nodesAndCNI(t, before) }},
		{"BOOT.CORE-E2E-003_cert-manager_and_External_Secrets", b.coreWorkloads},
		{"BOOT.CORE-E2E-004_Flux_operational", b.fluxOperational},
		{"BOOT.CORE-E2E-005_handover_commit_applied", b.commitApplied},
		{"BOOT.CORE-E2E-002_CoreDNS_replicas_from_cluster-settings", b.corednsReplicas},
		{"BOOT.CORE-E2E-007_bootstrap_secret_missing", b.secretMissing},
		{"BOOT.CORE-E2E-006_Cilium_under_GitOps", b.ciliumRecreated},
	}
	for _, s := range steps {
		stepStart := time.Now()
		t.Run(s.id, s.fn)
		t.Logf("%s took %s", s.id, time.Since(stepStart).Round(100*time.Millisecond))
	}
	t.Logf("cluster %s: all scenarios in %s", name, time.Since(start).Round(time.Second))
}

// ---- helpers ----

// status runs `bootcore status` and returns its exit code and output.
func (b *scBed) status(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bootcoreBin, append([]string{"status", "--cluster", b.name, "--repo", b.repo, "--kubeconfig", b.c.KubeconfigPath}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bootcore status: %v", err)
	}
	if errOut.Len() > 0 {
		t.Logf("bootcore status stderr: %s", errOut.String())
	}
	return code, out.String()
}

// statusJSON runs `bootcore status -o json` once and decodes the report.
func (b *scBed) statusJSON(t *testing.T) (int, *status.Report) {
	t.Helper()
	code, out := b.status(t, "-o", "json")
	var r status.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status -o json printed %q: %v", out, err)
	}
	return code, &r
}

// table logs `bootcore status` (the table) as evidence and returns its exit code.
func (b *scBed) table(t *testing.T, why string) int {
	t.Helper()
	code, out := b.status(t)
	t.Logf("%s: bootcore status --cluster %s (exit %d)\n%s", why, b.name, code, out)
	return code
}

// waitReady runs `bootcore status --watch` until every check is Ready, as a user would after
// a change; it fails the test with the last table when --timeout passes first.
func (b *scBed) waitReady(t *testing.T, why string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	code, out := b.status(t, "--watch", "--interval", "500ms", "--timeout", timeout.String())
	tables := strings.Split(out, "\n--- ")
	last := tables[len(tables)-1]
	if code != 0 {
		t.Fatalf("%s: bootcore status --watch exit %d after %s; last evaluation:\n%s", why, code, time.Since(start).Round(time.Second), last)
	}
	t.Logf("%s: bootcore status --watch exit 0 after %s (%d evaluations printed); last:\n%s", why, time.Since(start).Round(100*time.Millisecond), len(tables), last)
}

func check(r *status.Report, name string) (status.Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return status.Check{}, false
}

func (b *scBed) wantReady(t *testing.T, r *status.Report, names ...string) {
	t.Helper()
	for _, n := range names {
		c, ok := check(r, n)
		switch {
		case !ok:
			t.Errorf("status has no check %q", n)
		case !c.Ready:
			t.Errorf("%s not Ready: %s", n, c.Message)
		}
	}
}

// requestReconcile sets reconcile.fluxcd.io/requestedAt, as `flux reconcile` does, and returns
// the token to compare with status.lastHandledReconcileAt.
func (b *scBed) requestReconcile(t *testing.T, gvr schema.GroupVersionResource, ns, name string) string {
	t.Helper()
	token := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, token)
	if _, err := b.c.Dynamic.Resource(gvr).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("requesting a reconcile of %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return token
}

// commit changes the lab repository on the Git server and makes source-controller fetch it
// now; it returns the new commit once the GitRepository's artifact is at it.
func (b *scBed) commit(t *testing.T, msg string, change func(wt string) error) string {
	t.Helper()
	head, err := b.l.git.Commit("lab", msg, change)
	if err != nil {
		t.Fatal(err)
	}
	b.requestReconcile(t, testbed.GitRepositoryGVR, "flux-system", "flux-system")
	err = b.c.WaitFor(context.Background(), "GitRepository flux-system at "+head, 2*time.Minute, func(ctx context.Context) (bool, error) {
		u, err := b.c.Get(ctx, testbed.GitRepositoryGVR, "flux-system", "flux-system")
		if err != nil {
			return false, nil
		}
		rev, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "revision")
		return strings.HasSuffix(rev, "sha1:"+head), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return head
}

func editFile(path, old, new string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Contains(data, []byte(old)) {
		return fmt.Errorf("%s does not contain %q", path, old)
	}
	return os.WriteFile(path, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644)
}

// scNodeConditions maps each control-plane node to its Ready condition.
func scNodeConditions(t *testing.T, c *testbed.Cluster) map[string]corev1.NodeCondition {
	t.Helper()
	nodes, err := c.Nodes(context.Background(), testbed.LabelControlPlane)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.NodeCondition{}
	for _, n := range nodes {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				out[n.Name] = cond
			}
		}
	}
	return out
}

// scObject is what INT-003 compares: identity, generation and everything but metadata and
// status (spec, data, rules, subjects, ...).
type scObject struct {
	UID        types.UID
	Generation int64
	Content    map[string]any
	// Writers are the field managers of the object's managedFields, with their operation and
	// time: a write by helm-controller (or anyone but Talos and the agent) shows up here.
	Writers map[string]string
}

var scCiliumKinds = []schema.GroupVersionResource{
	gvrDaemonSet, gvrDeployment, gvrConfigMap,
	{Version: "v1", Resource: "serviceaccounts"}, {Version: "v1", Resource: "services"}, {Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "namespaces"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
}

// scCiliumObjects lists the objects of the Cilium release (label helm.toolkit.fluxcd.io/name:
// gen puts it on the boot-time objects, helm-controller on what it renders).
func scCiliumObjects(t *testing.T, c *testbed.Cluster) map[string]scObject {
	t.Helper()
	out := map[string]scObject{}
	for _, gvr := range scCiliumKinds {
		list, err := c.Dynamic.Resource(gvr).List(context.Background(), metav1.ListOptions{LabelSelector: "helm.toolkit.fluxcd.io/name=cilium"})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			content := map[string]any{}
			for k, v := range o.Object {
				if k != "metadata" && k != "status" && k != "apiVersion" && k != "kind" {
					content[k] = v
				}
			}
			writers := map[string]string{}
			for _, mf := range o.GetManagedFields() {
				when := ""
				if mf.Time != nil {
					when = mf.Time.UTC().Format(time.RFC3339)
				}
				writers[mf.Manager+" "+string(mf.Operation)+" "+mf.Subresource] = when
			}
			out[fmt.Sprintf("%s %s/%s", gvr.Resource, o.GetNamespace(), o.GetName())] = scObject{UID: o.GetUID(), Generation: o.GetGeneration(), Content: content, Writers: writers}
		}
	}
	return out
}

// foreignWriters are the field managers other than Talos's (the boot apply) and the agent's
// that wrote the object itself (controllers writing the status subresource do not count), and
// other than helm-controller's server-side Apply: helm-controller (Helm v4) installs with
// server-side apply and takes ownership of every existing object, so its adoption always adds
// its field manager (a write: resourceVersion and managedFields change) even when no value
// changes. What must not happen is a value change (checked on the content) or an Update, which
// is how a three-way-merge patch of a differing object shows up.
func foreignWriters(writers map[string]string) []string {
	var out []string
	for w := range writers {
		f := strings.Fields(w)
		if len(f) > 2 {
			continue // a subresource, e.g. status
		}
		if m := f[0]; m != "talos" && m != agent.FieldManager && w != "helm-controller Apply " {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// scDiff lists the paths whose values differ between two decoded objects.
func scDiff(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		for _, k := range keys(mergeKeys(am, bm)) {
			out = append(out, scDiff(path+"."+k, am[k], bm[k])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return []string{fmt.Sprintf("%s: %s -> %s", path, x, y)}
}

func mergeKeys(a, b map[string]any) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// ---- scenarios ----

// UNIT-002, second half: every CRD of the phase-0 bundle Talos applied is Established.
func (b *scBed) crdsEstablished(t *testing.T, talosVersion string) {
	patch, err := os.ReadFile(filepath.Join(b.l.repo, "generated", b.name, "controlplane.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := talos.MachineConfig(talos.Options{ClusterName: b.name, Endpoint: b.c.Server, TalosVersion: talosVersion, KubernetesVersion: "1.35.4"}, talos.RoleControlPlane, patch)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range talos.InlineManifests(cfg) {
		if m.Name != talos.CRDManifest {
			continue
		}
		objs, err := render.Split(string(m.Contents))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			names = append(names, o.GetName())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no CRD in inline manifest %s", talos.CRDManifest)
	}
	for _, n := range names {
		u, err := b.c.Get(context.Background(), gvrCRD, "", n)
		if err != nil {
			t.Errorf("CRD %s: %v", n, err)
			continue
		}
		if ok, msg := condTrue(u, "Established"); !ok {
			t.Errorf("CRD %s not Established: %s", n, msg)
		}
	}
	t.Logf("%d CRDs of phase 0 Established: %s", len(names), strings.Join(names, ", "))
}

// INT-003, on the published Cilium chart: helm-controller's first reconcile (the adoption at
// hand-over) changed no value of any object Talos created at boot: same UID and content (spec,
// data, rules), no rollout, and no writer in their managedFields but Talos, the agent (which only
// removes Talos's owning-inventory annotation) and helm-controller's server-side Apply (see
// foreignWriters: Helm v4 takes ownership of every object by applying it, which is a write
// without a value change). gen's Helm v3 render agrees with what helm-controller (Helm v4)
// renders. The only difference is what gen's boot-only value report lists: hubble.tls.auto
// off (with the server certificate from the Secret the auto method names), whose chart default
// makes helm-controller add the two TLS Secrets the boot render leaves out.
func (b *scBed) oneSourceOfTruth(t *testing.T, boot map[string]scObject) {
	ctx := context.Background()
	hr, err := b.c.Get(ctx, testbed.HelmReleaseGVR, "kube-system", "cilium")
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := condTrue(hr, "Ready"); !ok {
		t.Fatalf("HelmRelease kube-system/cilium not Ready: %s", msg)
	}
	_, msg := condTrue(hr, "Ready")
	t.Logf("HelmRelease kube-system/cilium: Ready %s", msg)
	now := scCiliumObjects(t, b.c)
	var same []string
	for key, was := range boot {
		is, ok := now[key]
		switch {
		case !ok:
			t.Errorf("%s: created at boot, gone after the hand-over", key)
		case is.UID != was.UID:
			t.Errorf("%s: re-created by the hand-over (UID %s -> %s)", key, was.UID, is.UID)
		case !reflect.DeepEqual(is.Content, was.Content):
			t.Errorf("%s changed at hand-over: %s", key, strings.Join(scDiff("", was.Content, is.Content), "; "))
		case len(foreignWriters(is.Writers)) > 0:
			t.Errorf("%s written at hand-over by %v", key, foreignWriters(is.Writers))
		case is.Generation != was.Generation && !strings.HasPrefix(key, "deployments "):
			// A Deployment's generation also counts annotation changes (kube-apiserver copies
			// them to ReplicaSets), and the agent removes Talos's owning-inventory annotation.
			t.Errorf("%s: generation %d -> %d at hand-over", key, was.Generation, is.Generation)
		default:
			same = append(same, key)
		}
	}
	sort.Strings(same)
	// Nothing rolled: the operator still runs the ReplicaSet it booted with.
	rs, err := b.c.Client.AppsV1().ReplicaSets("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "io.cilium/app=operator"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Items) != 1 {
		t.Errorf("cilium-operator has %d ReplicaSets: the hand-over rolled it", len(rs.Items))
	}
	var added []string
	for key := range now {
		if _, ok := boot[key]; !ok {
			added = append(added, key)
		}
	}
	sort.Strings(added)
	t.Logf("%d boot-time Cilium objects unchanged by helm-controller's first reconcile: %s", len(same), strings.Join(same, ", "))

	out, err := gen.Run(ctx, gen.Options{Repo: b.l.repo, Clusters: []string{b.name}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	overrides := out.Clusters[0].BootOnlyValues
	t.Logf("gen's boot-only values: %v; objects helm-controller added: %v", overrides, added)
	if got, want := strings.Join(overrides, "; "), "hubble.tls.auto.enabled: true -> false; hubble.tls.server.existingSecret: \"\" -> hubble-server-certs"; got != want {
		t.Errorf("boot-only values = %q, want %q", got, want)
	}
	if got := strings.Join(added, " "); got != "secrets kube-system/cilium-ca secrets kube-system/hubble-server-certs" {
		t.Errorf("objects added at hand-over = %v, want exactly the Secrets hubble.tls.auto.enabled gates", added)
	}
}

// E2E-001: control-plane nodes were NotReady for want of a CNI before the boot, became Ready
// only once the Cilium pod on them was, and Cilium's DaemonSet and operator are rolled out.
func (b *scBed) nodesAndCNI(t *testing.T, before map[string]corev1.NodeCondition) {
	ctx := context.Background()
	for n, cond := range before {
		if cond.Status == corev1.ConditionTrue || !strings.Contains(cond.Message, "cni plugin not initialized") {
			t.Errorf("before boot, node %s: Ready=%s %s", n, cond.Status, cond.Message)
		}
	}
	pods, err := b.c.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=cilium"})
	if err != nil {
		t.Fatal(err)
	}
	podReady := map[string]time.Time{}
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				podReady[p.Spec.NodeName] = cond.LastTransitionTime.Time
			}
		}
	}
	for n, cond := range scNodeConditions(t, b.c) {
		ciliumAt, ok := podReady[n]
		switch {
		case cond.Status != corev1.ConditionTrue:
			t.Errorf("node %s: Ready=%s %s", n, cond.Status, cond.Message)
		case !ok:
			t.Errorf("node %s is Ready without a Ready cilium pod", n)
		case cond.LastTransitionTime.Time.Before(ciliumAt.Truncate(time.Second)):
			t.Errorf("node %s Ready at %s, before its cilium pod (%s)", n, cond.LastTransitionTime, ciliumAt)
		default:
			t.Logf("node %s: NotReady (%s) before boot; cilium pod Ready %s; node Ready %s", n, before[n].Reason, ciliumAt.UTC().Format(time.RFC3339), cond.LastTransitionTime.UTC().Format(time.RFC3339))
		}
	}
	_, r := b.statusJSON(t)
	b.wantReady(t, r, "Nodes "+kube.ControlPlaneLabel, "DaemonSet kube-system/cilium", "Deployment kube-system/cilium-operator", "Service kube-system/kube-dns (cluster DNS)")
	b.table(t, "E2E-001")
}

// E2E-003: cert-manager controller and webhook, External Secrets Available in their namespaces.
func (b *scBed) coreWorkloads(t *testing.T) {
	_, r := b.statusJSON(t)
	b.wantReady(t, r, "Deployment cert-manager/cert-manager", "Deployment cert-manager/cert-manager-webhook", "Deployment external-secrets/external-secrets")
	for _, n := range []string{"Deployment cert-manager/cert-manager", "Deployment cert-manager/cert-manager-webhook", "Deployment external-secrets/external-secrets"} {
		c, _ := check(r, n)
		t.Logf("%s Ready=%v: %s", n, c.Ready, c.Message)
	}
}

// E2E-004: flux-operator, FluxInstance, GitRepository flux-system and every Kustomization Ready.
func (b *scBed) fluxOperational(t *testing.T) {
	_, r := b.statusJSON(t)
	b.wantReady(t, r, "Deployment flux-system/flux-operator", "FluxInstance flux-system/flux", "GitRepository flux-system/flux-system")
	list, err := b.c.Dynamic.Resource(testbed.KustomizationGVR).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) < 9 {
		t.Errorf("%d Kustomizations, want the lab's 9", len(list.Items))
	}
	for _, ks := range list.Items {
		n := kube.Describe("Kustomization", ks.GetNamespace(), ks.GetName())
		b.wantReady(t, r, n)
		c, _ := check(r, n)
		t.Logf("%s Ready=%v: %s", n, c.Ready, c.Message)
	}
}

// E2E-005: a commit pushed after the hand-over is applied by Flux, and status exits 0.
func (b *scBed) commitApplied(t *testing.T) {
	dir := filepath.Join("kubernetes", "workloads", b.name)
	head := b.commit(t, "E2E-005: a change after the hand-over", func(wt string) error {
		cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: e2e-005\n  namespace: smoke\ndata:\n  cluster: ${CLUSTER_NAME}\n"
		if err := os.WriteFile(filepath.Join(wt, dir, "e2e-005.yaml"), []byte(cm), 0o644); err != nil {
			return err
		}
		return editFile(filepath.Join(wt, dir, "kustomization.yaml"), "  - smoke.yaml\n", "  - smoke.yaml\n  - e2e-005.yaml\n")
	})
	ctx := context.Background()
	err := b.c.WaitFor(ctx, "ConfigMap smoke/e2e-005 from commit "+head, 3*time.Minute, func(ctx context.Context) (bool, error) {
		cm, err := b.c.Client.CoreV1().ConfigMaps("smoke").Get(ctx, "e2e-005", metav1.GetOptions{})
		return err == nil && cm.Data["cluster"] == b.name, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.waitReady(t, "E2E-005", 3*time.Minute)
	ks, err := b.c.Get(ctx, testbed.KustomizationGVR, "flux-system", "workloads")
	if err != nil {
		t.Fatal(err)
	}
	applied, _, _ := unstructured.NestedString(ks.Object, "status", "lastAppliedRevision")
	if !strings.HasSuffix(applied, "sha1:"+head) {
		t.Errorf("Kustomization flux-system/workloads applied %s, not commit %s", applied, head)
	}
	t.Logf("commit %s applied by Kustomization flux-system/workloads (lastAppliedRevision %s): ConfigMap smoke/e2e-005 with cluster=%s", head, applied, b.name)
}

// E2E-002: CoreDNS runs the replica count of cluster-settings; changing it in Git changes it.
func (b *scBed) corednsReplicas(t *testing.T) {
	ctx := context.Background()
	const name = "Deployment kube-system/coredns"
	_, r := b.statusJSON(t)
	c, _ := check(r, name)
	if !c.Ready || !strings.Contains(c.Message, "2/2 replicas ready, expected 2 (COREDNS_REPLICAS in cluster-settings)") {
		t.Errorf("before: %s Ready=%v: %s", name, c.Ready, c.Message)
	}
	t.Logf("before: %s: %s", name, c.Message)
	settings := filepath.Join("kubernetes", "clusters", b.name, "cluster-settings.yaml")
	head := b.commit(t, "E2E-002: three CoreDNS replicas", func(wt string) error {
		return editFile(filepath.Join(wt, settings), `COREDNS_REPLICAS: "2"`, `COREDNS_REPLICAS: "3"`)
	})
	err := b.c.WaitFor(ctx, "ConfigMap flux-system/cluster-settings COREDNS_REPLICAS=3", 3*time.Minute, func(ctx context.Context) (bool, error) {
		cm, err := b.c.Client.CoreV1().ConfigMaps("flux-system").Get(ctx, "cluster-settings", metav1.GetOptions{})
		return err == nil && cm.Data["COREDNS_REPLICAS"] == "3", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The coredns Kustomization reconciles on the new revision too, possibly before the
	// flux-system one applied the new settings: ask for one more run, as `flux reconcile ks` does.
	b.requestReconcile(t, testbed.KustomizationGVR, "flux-system", "coredns")
	err = b.c.WaitFor(ctx, "Deployment kube-system/coredns with 3 ready replicas", 3*time.Minute, func(ctx context.Context) (bool, error) {
		d, err := b.c.Client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 3 && d.Status.ReadyReplicas == 3, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.waitReady(t, "E2E-002", 3*time.Minute)
	_, r = b.statusJSON(t)
	c, _ = check(r, name)
	if !c.Ready || !strings.Contains(c.Message, "3/3 replicas ready, expected 3") {
		t.Errorf("after commit %s: %s Ready=%v: %s", head, name, c.Ready, c.Message)
	}
	t.Logf("after commit %s: %s: %s", head, name, c.Message)
}

// E2E-007: without the bootstrap Secret the External Secrets store is not Ready and status
// says so, naming the Secret; restored, everything recovers.
func (b *scBed) secretMissing(t *testing.T) {
	ctx := context.Background()
	secrets := b.c.Client.CoreV1().Secrets("external-secrets")
	saved, err := secrets.Get(ctx, "onepassword-connect", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := secrets.Delete(ctx, "onepassword-connect", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = b.c.WaitFor(ctx, "ClusterSecretStore onepassword not Ready", time.Minute, func(ctx context.Context) (bool, error) {
		u, err := b.c.Get(ctx, testbed.ClusterSecretStoreGVR, "", "onepassword")
		if err != nil {
			return false, nil
		}
		cond, ok := kube.Condition(u, "Ready")
		return ok && cond["status"] == "False", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code, r := b.statusJSON(t)
	if code != 1 {
		t.Errorf("status exit %d without the Secret, want 1", code)
	}
	store, ok := check(r, "ClusterSecretStore onepassword")
	if !ok || store.Ready || !strings.Contains(store.Message, "Secret external-secrets/onepassword-connect") || !strings.Contains(store.Message, "not found") {
		t.Errorf("store check: %+v", store)
	}
	if sec, _ := check(r, "Secret external-secrets/onepassword-connect"); sec.Ready {
		t.Errorf("bootstrap Secret check Ready without the Secret: %s", sec.Message)
	}
	if strings.Contains(fmt.Sprint(r), b.l.canary) {
		t.Error("status printed the secret canary")
	}
	b.table(t, "E2E-007 without the Secret")

	restored := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: saved.Name, Namespace: saved.Namespace, Labels: saved.Labels}, Type: saved.Type, Data: saved.Data}
	if _, err := secrets.Create(ctx, restored, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b.waitReady(t, "E2E-007 restored", 2*time.Minute)
}

// E2E-006 (AC7): deleting the boot-time Cilium DaemonSet and operator Deployment (the
// "uninstall" of the imperative install) makes helm-controller re-create them (drift
// detection, on its next reconcile: requested here as `flux reconcile hr` does), and Talos's
// inventory does not claim the new ones.
func (b *scBed) ciliumRecreated(t *testing.T) {
	ctx := context.Background()
	apps := b.c.Client.AppsV1()
	ds, err := apps.DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	op, err := apps.Deployments("kube-system").Get(ctx, "cilium-operator", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := apps.DaemonSets("kube-system").Delete(ctx, "cilium", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := apps.Deployments("kube-system").Delete(ctx, "cilium-operator", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{gvrDaemonSet, "cilium"}, {gvrDeployment, "cilium-operator"}} {
		if err := b.c.WaitGone(ctx, w.gvr, "kube-system", w.name, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	code, r := b.statusJSON(t)
	if c, _ := check(r, "DaemonSet kube-system/cilium"); code == 0 || c.Ready || c.Message != "not found" {
		t.Errorf("status after deleting DaemonSet cilium: exit %d, %+v", code, c)
	}
	b.table(t, "E2E-006 after deleting DaemonSet cilium and Deployment cilium-operator")

	b.requestReconcile(t, testbed.HelmReleaseGVR, "kube-system", "cilium")
	if err := b.c.WaitDaemonSetRolledOut(ctx, "kube-system", "cilium", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.c.WaitDeploymentRolledOut(ctx, "kube-system", "cilium-operator", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	ds2, err := apps.DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	op2, err := apps.Deployments("kube-system").Get(ctx, "cilium-operator", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds2.UID == ds.UID || op2.UID == op.UID {
		t.Errorf("not re-created: DaemonSet UID %s -> %s, Deployment UID %s -> %s", ds.UID, ds2.UID, op.UID, op2.UID)
	}
	for _, m := range []metav1.ObjectMeta{ds2.ObjectMeta, op2.ObjectMeta} {
		if m.Labels["helm.toolkit.fluxcd.io/name"] != "cilium" {
			t.Errorf("%s re-created without helm-controller's labels: %v", m.Name, m.Labels)
		}
		if m.Annotations[talosemu.InventoryAnnotation] != "" {
			t.Errorf("%s carries %s", m.Name, talosemu.InventoryAnnotation)
		}
	}
	inv, err := b.c.Client.CoreV1().ConfigMaps(talosemu.InventoryNamespace).Get(ctx, talosemu.InventoryName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	for key := range inv.Data {
		if strings.Contains(key, "cilium") {
			t.Errorf("Talos inventory claims %s", key)
		}
	}
	t.Logf("helm-controller re-created DaemonSet cilium (UID %s -> %s) and Deployment cilium-operator (UID %s -> %s); Talos inventory holds %d entries, none of them", ds.UID, ds2.UID, op.UID, op2.UID, len(inv.Data))
	b.waitReady(t, "E2E-006 re-created", 3*time.Minute)
}
