package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/runlock"
)

// handOverAndRerun is the full run from the emulated Talos boot to the hand-over, then the
// run-once check: a second run, with credentials that cannot write, exits 0 in seconds and no
// agent-managed object changes.
func handOverAndRerun(t *testing.T, name, mode string) {
	// Every test runs its own clusters; most of a hand-over is waiting for Flux's
	// reconcile intervals, so they run side by side.
	t.Parallel()
	c := testbed.StartT(t, testbed.Options{Name: name})
	l := newLab(t, map[string]*testbed.Cluster{name: c})
	r := bootWhileAgentRuns(t, c, l, name, "--flux-install", mode)
	defer dumpOnFailure(t, r)
	if r.code != 0 {
		t.Fatalf("agent exit %d: %s", r.code, r.result().Message)
	}
	// Every phase ran or found its outcome in place, in order. The agent started before the
	// nodes booted, so it waited for them (naming the NotReady ones and why). wait-cni may
	// find Cilium already rolled out: a node is Ready only once its Cilium pod is.
	// The phases that write run between lock and unlock.
	want := slices.Concat([]string{agent.PhaseConnect, agent.PhaseLock}, agent.PhaseNames[1:], []string{agent.PhaseUnlock})
	if got := r.phasesSeen(); !slices.Equal(got, want) {
		t.Errorf("phases seen %v, want %v", got, want)
	}
	for _, p := range []string{agent.PhaseWaitControlPlane, agent.PhasePrerequisites, agent.PhaseInstallFlux, agent.PhaseHandover, agent.PhaseReleaseTalos, agent.PhaseRecord} {
		if !slices.Contains(r.phasesRun(), p) {
			t.Errorf("phase %s did not run (phases run: %v)", p, r.phasesRun())
		}
	}
	assertHandedOver(t, c, l, name)
	if strings.Contains(r.stdout+r.stderr, l.canary) {
		t.Error("the agent printed the secret canary")
	}
	for _, want := range []string{"control-plane nodes not Ready: controlplane-1 (Ready=False KubeletNotReady: container runtime network not ready",
		`"type":"ready","phase":"wait-control-plane"`, `"object":"GitRepository flux-system/flux-system"`, "talosctl patch machineconfig --nodes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	ro, err := c.ReadOnlyKubeconfig(context.Background(), "bootcore-readonly")
	if err != nil {
		t.Fatal(err)
	}
	before := agentObjectVersions(t, c)
	again := runAgent(t, l, ro, name, "--flux-install", mode)
	defer dumpOnFailure(t, again)
	if again.code != 0 || !strings.Contains(again.result().Message, "already handed over") {
		t.Fatalf("re-run: exit %d: %s", again.code, again.result().Message)
	}
	if len(again.phasesRun()) != 1 || again.phasesRun()[0] != agent.PhaseConnect {
		t.Errorf("re-run started phases %v, want only connect", again.phasesRun())
	}
	if again.elapsed > 15*time.Second {
		t.Errorf("re-run took %s", again.elapsed)
	}
	if after := agentObjectVersions(t, c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("re-run changed objects:\nbefore %v\nafter  %v", before, after)
	}

	// A dry run on the handed-over cluster has nothing to do either.
	dry := runAgent(t, l, ro, name, "--flux-install", mode, "--dry-run")
	defer dumpOnFailure(t, dry)
	if dry.code != 0 || !strings.Contains(dry.result().Message, "already handed over") {
		t.Errorf("dry run: exit %d: %s", dry.code, dry.result().Message)
	}

	rebootBeforeThePatch(t, c, l, name, mode)
}

// rebootBeforeThePatch: a kubeconfig-only hand-over leaves bootcore's manifests in the machine
// configs until the user applies the post-handover patch the agent printed. A control-plane
// reboot before that puts the boot objects back into Talos's inventory (Talos backfills
// existing objects), where upgrade-k8s would revert or prune them: bootcore status fails,
// naming them and the patch. After the patch and an agent run, status is clean, and reboots
// and upgrade-k8s leave what Flux owns alone.
func rebootBeforeThePatch(t *testing.T, c *testbed.Cluster, l *lab, name, mode string) {
	t.Helper()
	ctx := context.Background()
	reboot := func(extra ...string) {
		t.Helper()
		cfg, err := l.TalosConfig(c, name, extra...)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := c.Nodes(ctx, testbed.LabelControlPlane)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if _, err := (&talosemu.Node{Name: n.Name, Config: c.Config, Logf: t.Logf}).Boot(ctx, cfg, 2*time.Minute); err != nil {
				t.Fatalf("reboot of %s: %v", n.Name, err)
			}
		}
	}
	const inventoryCheck = "ConfigMap kube-system/talos-bootstrap-manifests-inventory (Talos inventory)"
	patch := filepath.Join("generated", name, "post-handover.yaml")

	reboot()
	st := runStatusFor(t, l, c, name)
	chk, ok := st.check(inventoryCheck)
	if st.code == 0 || !ok || chk.Ready {
		t.Fatalf("status after a reboot with bootcore's manifests still in the config: exit %d, %s: %+v\n%s", st.code, inventoryCheck, chk, st.out)
	}
	for _, want := range []string{"objects Flux manages: ClusterRole cilium,", "upgrade-k8s", "--patch @" + patch, "bootcore agent again"} {
		if !strings.Contains(chk.Message, want) {
			t.Errorf("status inventory message lacks %q: %s", want, chk.Message)
		}
	}

	// The user applies the patch (every control-plane node reboots with it) and runs the agent.
	reboot(patch)
	r := runAgent(t, l, c.KubeconfigPath, name, "--flux-install", mode)
	defer dumpOnFailure(t, r)
	if r.code != 0 || !slices.Contains(r.phasesRun(), agent.PhaseReleaseTalos) {
		t.Fatalf("agent after the patch: exit %d, phases run %v: %s", r.code, r.phasesRun(), r.result().Message)
	}
	before := bootObjectGenerations(t, c)
	cfg, err := l.TalosConfig(c, name, patch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := talosemu.UpgradeK8sSync(ctx, c.Config, cfg); err != nil {
		t.Fatal(err)
	}
	if after := bootObjectGenerations(t, c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("upgrade-k8s after the patch changed what Flux owns:\nbefore %v\nafter  %v", before, after)
	}
	if st := runStatusFor(t, l, c, name); st.code != 0 {
		t.Errorf("status after the patch and the agent: exit %d\n%s", st.code, st.out)
	}
	assertHandedOver(t, c, l, name)
}

// Both clusters (infra: Talos v1.13 contract, cluster.inlineManifests; apps: v1.14,
// KubeInlineManifestConfig documents) in the air-gapped manifests mode here, with the agent
// started before the nodes boot; the default helm mode hands both over in the scenarios
// (scenarios_test.go), so each mode runs on each cluster.
func TestAgentManifestsInfra(t *testing.T) { handOverAndRerun(t, "infra", agent.InstallManifests) }
func TestAgentManifestsApps(t *testing.T)  { handOverAndRerun(t, "apps", agent.InstallManifests) }

// A dry run before the hand-over writes nothing and says what it would do.
func TestAgentDryRun(t *testing.T) {
	t.Parallel()
	c, l := bootedCluster(t, "infra")
	// Server-side dry-run requests need write permission, so this run uses the admin
	// kubeconfig and compares resource versions.
	before := agentObjectVersions(t, c)
	r := runAgent(t, l, c.KubeconfigPath, "infra", "--dry-run")
	defer dumpOnFailure(t, r)
	if r.code != 0 {
		t.Fatalf("dry run: exit %d: %s", r.code, r.result().Message)
	}
	if after := agentObjectVersions(t, c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("dry run changed objects:\nbefore %v\nafter  %v", before, after)
	}
	for _, want := range []string{"Secret external-secrets/onepassword-connect would be created", "Helm release flux-system/flux-operator", "would be installed", "would remove"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, l.canary) {
		t.Error("dry run printed the secret canary")
	}
}

// Killed at every phase boundary, each re-run finishes the job; the end state is the same as
// an uninterrupted run's (on a twin cluster).
func TestAgentKilledAtEachPhaseBoundary(t *testing.T) {
	t.Parallel()
	clusters := testbed.StartManyT(t, testbed.Options{Name: "infra"}, testbed.Options{Name: "infra"})
	twin, killed := clusters[0], clusters[1]
	prepare := func(c *testbed.Cluster) *lab {
		l := newLab(t, map[string]*testbed.Cluster{"infra": c})
		bootTalos(t, c, l, "infra")
		startFlux(t, c)
		return l
	}
	lt, lk := prepare(twin), prepare(killed)

	// The uninterrupted run on the twin goes on meanwhile.
	refDone := make(chan agentRun, 1)
	go func() { refDone <- runAgent(t, lt, twin.KubeconfigPath, "infra") }()

	// Kill right after phase i finished (or was found done), for every boundary in turn.
	for i, phase := range agent.PhaseNames[:len(agent.PhaseNames)-1] {
		cmd := agentCmd(t, lk, killed.KubeconfigPath, "infra")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		reached := false
		for sc.Scan() {
			var e agent.Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			if e.Phase == phase && (e.Type == agent.EventDone || e.Type == agent.EventSkip) {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				reached = true
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		if !reached {
			t.Fatalf("run %d never finished phase %s:\n%s", i+1, phase, stderr.String())
		}
		t.Logf("killed the agent after phase %s", phase)
	}
	final := runAgent(t, lk, killed.KubeconfigPath, "infra")
	defer dumpOnFailure(t, final)
	if final.code != 0 {
		t.Fatalf("final run: exit %d: %s", final.code, final.result().Message)
	}
	assertHandedOver(t, killed, lk, "infra")
	ref := <-refDone
	defer dumpOnFailure(t, ref)
	if ref.code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", ref.code, ref.result().Message)
	}
	want, got := objectSet(t, twin), objectSet(t, killed)
	if !slices.Equal(want, got) {
		t.Errorf("object sets differ:\nuninterrupted only: %v\nkilled-and-resumed only: %v", minus(want, got), minus(got, want))
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// Two agents at once: one hands over, the other waits for the lock and then finds nothing to
// do. With a short --lock-wait, a second agent gives up with a message naming the holder.
func TestAgentTwoAtOnce(t *testing.T) {
	t.Parallel()
	c, l := bootedCluster(t, "infra")
	results := make(chan agentRun, 2)
	for range 2 {
		// The waiting agent must outlast a whole hand-over (install-flux and handover timeouts).
		go func() { results <- runAgent(t, l, c.KubeconfigPath, "infra", "--lock-wait", "14m") }()
	}
	a, b := <-results, <-results
	defer dumpOnFailure(t, a)
	defer dumpOnFailure(t, b)
	if a.code != 0 || b.code != 0 {
		t.Fatalf("exit codes %d and %d: %s / %s", a.code, b.code, a.result().Message, b.result().Message)
	}
	worked, waited := a, b
	if len(a.phasesRun()) < len(b.phasesRun()) {
		worked, waited = b, a
	}
	if len(worked.phasesRun()) < 4 {
		t.Errorf("neither agent did the hand-over: %v / %v", a.phasesRun(), b.phasesRun())
	}
	if !strings.Contains(waited.stdout, "waiting for the agent lock") || !strings.Contains(waited.result().Message, "already handed over") {
		t.Errorf("the second agent did not wait for the lock and then find the hand-over done:\n%s", waited.stdout)
	}
	assertHandedOver(t, c, l, "infra")

	// A holder that is alive (its Lease renewed, not expired) keeps the lock: with
	// --lock-wait 2s the next agent gives up, naming it, and exits 4.
	// (The agents released the Lease: it is there, with no holder.)
	now := metav1.NewMicroTime(time.Now())
	leases := c.Client.CoordinationV1().Leases(runlock.DefaultNamespace)
	lease, err := leases.Get(context.Background(), runlock.DefaultName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != "" {
		t.Errorf("the agents left the lock held by %s", h)
	}
	lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other-host/4242/abcdef"), LeaseDurationSeconds: ptr.To(int32(3600)),
		AcquireTime: &now, RenewTime: &now}
	if _, err := leases.Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	late := runAgent(t, l, c.KubeconfigPath, "infra", "--force", "--lock-wait", "2s")
	defer dumpOnFailure(t, late)
	if late.code != agent.ExitLocked || !strings.Contains(late.result().Message, "another bootcore agent (other-host/4242/abcdef") {
		t.Errorf("late agent: exit %d: %s", late.code, late.result().Message)
	}
	if slices.ContainsFunc(late.events, func(e agent.Event) bool {
		return e.Type == agent.EventStart && e.Phase != agent.PhaseConnect && e.Phase != agent.PhaseLock
	}) {
		t.Error("the agent that did not get the lock started a phase")
	}
}

// The guard: a kubeconfig of the apps cluster for --cluster infra is refused before anything
// is written, as is a cluster whose hand-over marker records another identity.
func TestAgentWrongCluster(t *testing.T) {
	t.Parallel()
	clusters := testbed.StartManyT(t, testbed.Options{Name: "infra", ControlPlanes: 1, Workers: -1}, testbed.Options{Name: "apps", ControlPlanes: 1, Workers: -1})
	infra, apps := clusters[0], clusters[1]
	l := newLab(t, map[string]*testbed.Cluster{"infra": infra, "apps": apps})
	ctx := context.Background()

	before := agentObjectVersions(t, apps)
	r := runAgent(t, l, apps.KubeconfigPath, "infra")
	defer dumpOnFailure(t, r)
	if r.code != agent.ExitWrongCluster || !strings.Contains(r.result().Message, "cluster infra's endpoint") {
		t.Errorf("apps kubeconfig for infra: exit %d: %s", r.code, r.result().Message)
	}
	if after := agentObjectVersions(t, apps); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused run changed objects:\nbefore %v\nafter  %v", before, after)
	}
	for _, ns := range []string{"flux-system", "external-secrets", "cert-manager"} {
		if _, err := apps.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			t.Errorf("namespace %s was created on apps", ns)
		}
	}

	// Same address, other identity: a marker recording another kube-system UID (a rebuilt
	// cluster, or a marker copied from elsewhere) is refused too.
	if err := apps.Namespace(ctx, agent.MarkerNamespace); err != nil {
		t.Fatal(err)
	}
	m := &agent.Marker{Cluster: "apps", ClusterUID: "not-this-cluster", HandedOverAt: time.Now()}
	if _, err := apps.Client.CoreV1().ConfigMaps(agent.MarkerNamespace).Create(ctx, m.ConfigMap(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before = agentObjectVersions(t, apps)
	r = runAgent(t, l, apps.KubeconfigPath, "apps")
	defer dumpOnFailure(t, r)
	if r.code != agent.ExitWrongCluster || !strings.Contains(r.result().Message, "kube-system namespace UID") {
		t.Errorf("foreign marker: exit %d: %s", r.code, r.result().Message)
	}
	if after := agentObjectVersions(t, apps); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused run changed objects:\nbefore %v\nafter  %v", before, after)
	}
}

// With the Git server down, the hand-over times out naming the GitRepository's condition, and
// the support bundle holds the Flux objects and no secret value.
func TestAgentGitServerDown(t *testing.T) {
	t.Parallel()
	c, l := bootedCluster(t, "infra")
	if err := l.git.Close(); err != nil {
		t.Fatal(err)
	}
	// The FluxInstance is Ready only once its sync source is, so with Git down the wait ends in
	// install-flux (helm mode); either way the report names the GitRepository's condition. On
	// the bed Flux reaches Git through the cluster's network gate, which answers a refused
	// connection with 502 (a pod would see "connection refused").
	r := runAgent(t, l, c.KubeconfigPath, "infra", "--install-flux-timeout", "45s", "--handover-timeout", "45s")
	defer dumpOnFailure(t, r)
	res := r.result()
	if r.code != agent.ExitFailed {
		t.Fatalf("exit %d: %s", r.code, res.Message)
	}
	for _, want := range []string{"timed out after 45s", "GitRepository flux-system/flux-system", "condition Ready=False", "status code: 502"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("result lacks %q:\n%s", want, res.Message)
		}
	}
	if res.Bundle == "" {
		t.Fatal("no support bundle")
	}
	var names []string
	sourceLog, operatorLog := false, false
	for _, f := range readBundle(t, res.Bundle) {
		names = append(names, f.name)
		data := f.data
		if bytes.Contains(data, []byte(l.canary)) {
			t.Errorf("bundle file %s contains the secret canary", f.name)
		}
		if f.name == "bootcore/flux/gitrepositories.yaml" && !bytes.Contains(data, []byte("flux-system")) {
			t.Errorf("%s does not list GitRepository flux-system", f.name)
		}
		// The controllers' own logs, read through the pods' log API as in a real cluster (the
		// test bed serves each controller process's log as its pod's log).
		if strings.HasPrefix(f.name, "bootcore/logs/flux-system/source-controller-") && bytes.Contains(data, []byte(`"GitRepository"`)) &&
			bytes.Contains(data, []byte("status code: 502")) {
			sourceLog = true
		}
		if strings.HasPrefix(f.name, "bootcore/logs/flux-system/flux-operator-") && bytes.Contains(data, []byte("FluxInstance")) {
			operatorLog = true
		}
		if f.name == "bootcore/secrets.txt" && !bytes.Contains(data, []byte("external-secrets/onepassword-connect type=Opaque keys=1password-credentials.json,token")) {
			t.Errorf("secrets.txt does not list the bootstrap Secret by keys:\n%s", data)
		}
	}
	if !sourceLog || !operatorLog {
		t.Errorf("bundle lacks controller logs: source-controller's naming the GitRepository failure %v, flux-operator's naming the FluxInstance %v (entries %v)", sourceLog, operatorLog, names)
	}
	for _, want := range []string{"kubernetesResources/nodes.yaml", "kubernetesResources/systemPods.yaml", "bootcore/failure.txt", "bootcore/events.jsonl", "bootcore/flux/gitrepositories.yaml", "bootcore/flux/kustomizations.yaml", "bootcore/cluster-events.yaml"} {
		if !slices.Contains(names, want) {
			t.Errorf("bundle lacks %s (has %v)", want, names)
		}
	}
	if _, err := os.Stat(res.Bundle); err != nil {
		t.Error(err)
	}
}
