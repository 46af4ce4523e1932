package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/bootcore-dev/bootcore/talos"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/role"
	"k8s.io/client-go/tools/clientcmd"

	standin "github.com/bootcore-dev/bootcore/integration/talosapi"
	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/talosapi"
)

var bootcoreManifests = talos.Manifests

// talosLab is a booted lab cluster with a Talos API stand-in per control-plane node and a
// talosconfig for them: what a user holds right after talosctl bootstrap.
type talosLab struct {
	c           *testbed.Cluster
	l           *lab
	talos       *standin.Cluster
	talosconfig string
	// work is the agent's working directory, home its $HOME, bundles its --bundle-dir.
	work, home, bundles string
	// clientKey is the admin kubeconfig's client key, which must never leave memory.
	clientKey []byte
}

func newTalosLab(t *testing.T, name string) *talosLab {
	t.Helper()
	c, l := bootedCluster(t, name)
	tl := &talosLab{c: c, l: l, talosconfig: filepath.Join(t.TempDir(), "talosconfig"),
		work: t.TempDir(), home: t.TempDir(), bundles: t.TempDir()}
	var err error
	tl.talos, err = l.StartTalosAPI(context.Background(), c, name, tl.talosconfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.talos.Stop)
	kc, err := clientcmd.LoadFromFile(c.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range kc.AuthInfos {
		tl.clientKey = ai.ClientKeyData
	}
	if len(tl.clientKey) == 0 {
		t.Fatal("the test-bed kubeconfig has no client key")
	}
	return tl
}

// run runs `bootcore agent` with the talosconfig only: no --kubeconfig, no $KUBECONFIG, an
// empty $HOME (no ~/.kube/config), in an empty working directory.
func (tl *talosLab) run(t *testing.T, name string, extra ...string) agentRun {
	t.Helper()
	args := []string{"agent", "--cluster", name, "--repo", tl.l.repo, "--talosconfig", tl.talosconfig, "-o", "json",
		"--bundle-dir", tl.bundles, "--cache-dir", filepath.Join(tl.home, "cache"), "--lock-ttl", "8s", "--poll-interval", "200ms",
		"--install-flux-timeout", "5m", "--handover-timeout", "8m"}
	cmd := exec.Command(bootcoreBin, append(args, extra...)...)
	cmd.Dir = tl.work
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KUBECONFIG=") && !strings.HasPrefix(e, "TALOSCONFIG=") && !strings.HasPrefix(e, "HOME=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(append(cmd.Env, tl.l.env...), "HOME="+tl.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := agentRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("bootcore agent: %v", err)
	}
	r.events = parseEvents(t, r.stdout)
	t.Logf("bootcore agent --talosconfig %s: exit %d in %s; phases run %v", strings.Join(extra, " "), r.code, r.elapsed.Round(100*time.Millisecond), r.phasesRun())
	return r
}

// assertNoKeyLeak checks that the kubeconfig's client key is in no output, and that no file
// under the agent's working directory, $HOME or bundle directory (zip members included)
// holds it: the kubeconfig stays in memory.
func (tl *talosLab) assertNoKeyLeak(t *testing.T, r agentRun) {
	t.Helper()
	secrets := [][]byte{tl.clientKey, []byte(base64.StdEncoding.EncodeToString(tl.clientKey))}
	// The PEM body's first line is enough to spot the key however it is wrapped.
	if lines := strings.Split(string(tl.clientKey), "\n"); len(lines) > 1 {
		secrets = append(secrets, []byte(lines[1]))
	}
	check := func(where string, data []byte) {
		for _, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("%s holds the kubeconfig's client key", where)
				return
			}
		}
		if bytes.Contains(data, []byte("client-key-data")) {
			t.Errorf("%s holds a kubeconfig", where)
		}
	}
	check("the agent's output", []byte(r.stdout+r.stderr))
	for _, dir := range []string{tl.work, tl.home, tl.bundles} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			check(p, data)
			if strings.HasSuffix(p, ".zip") {
				zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					return err
				}
				for _, f := range zr.File {
					rc, err := f.Open()
					if err != nil {
						return err
					}
					member, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						return err
					}
					check(p+":"+f.Name, member)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// assertReleased checks that node carries a valid config without any of bootcore's manifests.
func assertReleased(t *testing.T, n *standin.Node) {
	t.Helper()
	if left := talosapi.Present(n.Config(), bootcoreManifests); len(left) > 0 {
		t.Errorf("node %s still has inline manifest(s) %v", n.Address, left)
	}
	if err := n.Validate(context.Background()); err != nil {
		t.Errorf("node %s: config invalid: %v", n.Address, err)
	}
}

// Starting from only a talosconfig: the agent fetches the kubeconfig from the Talos API,
// hands the cluster over, and drops bootcore's inline manifests from every control-plane
// node through the Talos API. A second run applies nothing. Nothing writes the kubeconfig
// unless --write-kubeconfig asks for it. Cluster infra: the v1alpha1 contract, where the
// post-handover patch fails when applied twice.
func TestAgentTalosconfigOnly(t *testing.T) {
	t.Parallel()
	tl := newTalosLab(t, "infra")
	r := tl.run(t, "infra")
	defer dumpOnFailure(t, r)
	if r.code != 0 {
		t.Fatalf("agent exit %d: %s", r.code, r.result().Message)
	}
	assertHandedOver(t, tl.c, tl.l, "infra")
	for _, n := range tl.talos.Nodes {
		assertReleased(t, n)
		if n.Applied() != 1 {
			t.Errorf("node %s: %d configs applied, want 1", n.Address, n.Applied())
		}
		if !strings.Contains(r.stdout, "node "+n.Address+": applied ") {
			t.Errorf("output does not report the config applied on node %s", n.Address)
		}
	}
	if strings.Contains(r.stdout, "talosctl patch machineconfig") {
		t.Error("with a Talos client the agent still printed the talosctl command")
	}
	if !strings.Contains(r.stdout, "the kubeconfig from the Talos API (talosconfig "+tl.talosconfig) {
		t.Error("connect does not say the kubeconfig came from the Talos API")
	}
	tl.assertNoKeyLeak(t, r)

	// Run-once: the second run finds every node released and applies nothing.
	again := tl.run(t, "infra")
	defer dumpOnFailure(t, again)
	if again.code != 0 || !strings.Contains(again.result().Message, "already handed over") {
		t.Fatalf("re-run: exit %d: %s", again.code, again.result().Message)
	}
	for _, n := range tl.talos.Nodes {
		if n.Requests() != 1 {
			t.Errorf("re-run: node %s received %d ApplyConfiguration calls in all, want the first run's 1", n.Address, n.Requests())
		}
	}
	tl.assertNoKeyLeak(t, again)
	tl.rebootAndUpgrade(t, "infra")

	// --write-kubeconfig writes exactly the kubeconfig Talos handed out, mode 0600.
	out := filepath.Join(t.TempDir(), "infra.kubeconfig")
	written := tl.run(t, "infra", "--write-kubeconfig", out)
	defer dumpOnFailure(t, written)
	if written.code != 0 {
		t.Fatalf("--write-kubeconfig run: exit %d: %s", written.code, written.result().Message)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(tl.c.KubeconfigPath)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) || st.Mode().Perm() != 0o600 {
		t.Errorf("--write-kubeconfig: mode %v, same content as the cluster's admin kubeconfig: %v", st.Mode().Perm(), bytes.Equal(got, want))
	}

	// A talosconfig whose certificate lacks os:admin: connect fails naming the node and the
	// Talos API's PermissionDenied.
	if err := tl.talos.WriteTalosconfig(tl.talosconfig, role.Reader); err != nil {
		t.Fatal(err)
	}
	denied := tl.run(t, "infra")
	defer dumpOnFailure(t, denied)
	msg := denied.result().Message
	t.Logf("os:reader talosconfig: %s", msg)
	if denied.code != agent.ExitFailed || !strings.Contains(msg, "phase connect") || !strings.Contains(msg, "node "+tl.talos.Nodes[0].Address) || !strings.Contains(msg, "PermissionDenied") {
		t.Errorf("os:reader talosconfig: exit %d: %s", denied.code, msg)
	}
}

// A node that rejects the config stops release-talos with an error naming the node and the
// Talos API's error: the node before it is done, the one after untouched. Once the node
// accepts again, a re-run finishes. Cluster apps: the 1.14 multi-document contract.
func TestAgentTalosNodeRejects(t *testing.T) {
	t.Parallel()
	tl := newTalosLab(t, "apps")
	nodes := tl.talos.Nodes
	nodes[1].Reject("stand-in set to reject this node's configs")
	r := tl.run(t, "apps")
	defer dumpOnFailure(t, r)
	res := r.result()
	t.Logf("rejecting node: %s", res.Message)
	if r.code != agent.ExitFailed {
		t.Fatalf("exit %d, want %d: %s", r.code, agent.ExitFailed, res.Message)
	}
	for _, want := range []string{"phase release-talos", "node " + nodes[1].Address, "InvalidArgument", "stand-in set to reject this node's configs"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("result lacks %q:\n%s", want, res.Message)
		}
	}
	assertReleased(t, nodes[0])
	if nodes[1].Applied() != 0 || nodes[2].Requests() != 0 {
		t.Errorf("rejecting node applied %d configs; the node after it received %d calls", nodes[1].Applied(), nodes[2].Requests())
	}
	for _, n := range nodes[1:] {
		if left := talosapi.Present(n.Config(), bootcoreManifests); len(left) != len(bootcoreManifests) {
			t.Errorf("node %s: manifests %v, want all of bootcore's untouched", n.Address, left)
		}
	}
	if res.Bundle == "" {
		t.Error("no support bundle")
	} else {
		// With a Talos client the bundle holds go-talos-support's node collectors too (the
		// stand-in serves Version, so each node's summary is there).
		summaries := 0
		for _, f := range readBundle(t, res.Bundle) {
			if strings.HasPrefix(f.name, "talos/") && strings.HasSuffix(f.name, "/summary") &&
				bytes.Contains(f.data, []byte("Server:")) && bytes.Contains(f.data, []byte("v1.14.1")) {
				summaries++
			}
		}
		if summaries != len(nodes) {
			t.Errorf("bundle holds the Talos summary of %d nodes, want %d", summaries, len(nodes))
		}
	}
	tl.assertNoKeyLeak(t, r)

	nodes[1].Reject("")
	again := tl.run(t, "apps")
	defer dumpOnFailure(t, again)
	if again.code != 0 {
		t.Fatalf("re-run: exit %d: %s", again.code, again.result().Message)
	}
	assertHandedOver(t, tl.c, tl.l, "apps")
	for i, n := range nodes {
		assertReleased(t, n)
		if n.Applied() != 1 {
			t.Errorf("node %d (%s): %d configs applied in both runs, want 1", i, n.Address, n.Applied())
		}
	}
	if !strings.Contains(again.stdout, "node "+nodes[0].Address+": the machine config has none of bootcore's inline manifests") {
		t.Error("the re-run does not report the released node as skipped")
	}
	tl.assertNoKeyLeak(t, again)
	tl.rebootAndUpgrade(t, "apps")
}

// rebootAndUpgrade is what a cluster lives through after the hand-over: every control-plane
// node reboots (Talos re-applies its manifests from the node's current config), then
// `talosctl upgrade-k8s` syncs them (force-apply and prune under AdoptIfNoInventory). With
// the hand-over done through the Talos API, nothing bootcore booted is reverted or pruned (same
// UID, same generation) and Talos's inventory holds only its own objects.
func (tl *talosLab) rebootAndUpgrade(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	before := bootObjectGenerations(t, tl.c)
	for _, n := range tl.talos.Nodes {
		if _, err := (&talosemu.Node{Name: n.Address, Config: tl.c.Config, Logf: t.Logf}).Boot(ctx, n.Config(), 2*time.Minute); err != nil {
			t.Fatalf("reboot of node %s: %v", n.Address, err)
		}
	}
	if errs := tl.talos.ConfigErrors(); len(errs) > 0 {
		t.Errorf("manifest apply after the config changes: %v", errs)
	}
	changes, err := talosemu.UpgradeK8sSync(ctx, tl.c.Config, tl.talos.Nodes[0].Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upgrade-k8s after the hand-over: %d manifest objects synced (Talos's own)", len(changes))
	if after := bootObjectGenerations(t, tl.c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("reboot + upgrade-k8s changed what Flux owns:\nbefore %v\nafter  %v", before, after)
	}
	assertHandedOver(t, tl.c, tl.l, name)
}
