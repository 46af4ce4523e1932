package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// The README's walkthrough against the detached lab, as a user runs it: `make lab` returns,
// `kubectl -n kube-system delete ds cilium` (the story's AC7 step), a reconcile requested as
// `flux reconcile hr cilium` does, `bootcore status` green again, and `make lab-down` leaves no
// process and no pid file. The detached lab must outlive its starter and keep logging: it
// used to write through a pipe whose reader (make lab) had exited, so its first log line after
// "lab: ready" killed it with SIGPIPE.
func TestLabWalkthrough(t *testing.T) {
	if _, err := testbed.CheckBinaries("etcd", "kube-apiserver", "kwok", "helm-controller", "flux-operator"); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bootcore, labBin, state := filepath.Join(dir, "bootcore"), filepath.Join(dir, "lab"), filepath.Join(dir, "state")
	for _, b := range [][]string{
		{"-tags", "kustomize_disable_go_plugin_support", "-o", bootcore, "./cmd/bootcore"},
		{"-o", labBin, "./integration/cmd/lab"},
	} {
		build := exec.Command("go", append([]string{"build"}, b...)...)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", b, err, out)
		}
	}
	labDown := func() (string, error) {
		// The Makefile's lab-down, on this lab.
		down := exec.Command("make", "--no-print-directory", "lab-down", "LAB_BIN="+labBin, "LAB_STATE="+state)
		down.Dir = root
		out, err := down.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(state, "pid")); err == nil {
			out, err := labDown()
			t.Logf("cleanup: %s %v", out, err)
		}
	})

	// make lab's last step (the same command line).
	up := exec.Command(labBin, "up", "-detach", "-agent", bootcore, "-state", state)
	up.Dir = root
	var upOut bytes.Buffer
	up.Stdout, up.Stderr = &upOut, &upOut
	start := time.Now()
	if err := up.Run(); err != nil {
		t.Fatalf("lab up -detach: %v\n%s", err, upOut.String())
	}
	t.Logf("lab up -detach returned after %s", time.Since(start).Round(time.Second))
	out := upOut.String()
	m := regexp.MustCompile(`running in the background \(pid (\d+),`).FindStringSubmatch(out)
	kc := regexp.MustCompile(`export KUBECONFIG=(\S+)\s+# cluster infra`).FindStringSubmatch(out)
	if m == nil || kc == nil || !strings.Contains(out, readyLine) {
		t.Fatalf("lab up -detach output lacks the ready line, pid or the infra KUBECONFIG:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if strings.Contains(out, "agent FAILED") {
		t.Fatalf("an agent failed:\n%s", out)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kc[1])
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	ds, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fg := metav1.DeletePropagationForeground
	if err := client.AppsV1().DaemonSets("kube-system").Delete(ctx, "cilium", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	status := func(args ...string) (int, string) {
		cmd := exec.CommandContext(ctx, bootcore, append([]string{"status", "--cluster", "infra", "--repo", filepath.Join(state, "repo"), "--kubeconfig", kc[1]}, args...)...)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String()
	}
	// Foreground: the DaemonSet is gone once its pods are, and the nodes turn NotReady (which
	// the lab logs).
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("DaemonSet cilium not gone: %v", err)
	}
	if code, table := status(); code != 1 || !regexp.MustCompile(`DaemonSet kube-system/cilium\s+false\s+not found`).MatchString(table) {
		t.Fatalf("status after deleting ds/cilium: exit %d, want 1 naming the DaemonSet\n%s", code, table)
	}

	token := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, token)
	if _, err := dyn.Resource(testbed.HelmReleaseGVR).Namespace("kube-system").Patch(ctx, "cilium", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	code, table := status("--watch", "--timeout", "5m")
	if code != 0 {
		t.Fatalf("status after the reconcile: exit %d\n%s", code, table)
	}
	ds2, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	if err != nil || ds2.UID == ds.UID {
		t.Fatalf("DaemonSet cilium not re-created by helm-controller (UID %s -> %v, %v)", ds.UID, ds2, err)
	}

	// Still the lab that make lab started, and it kept logging to its file.
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the detached lab (pid %d) is gone: %v\nlab.log:\n%s", pid, err, readFile(t, filepath.Join(state, "lab.log")))
	}
	logText := readFile(t, filepath.Join(state, "lab.log"))
	_, after, _ := strings.Cut(logText, readyLine+"\n")
	if strings.TrimSpace(after) == "" {
		t.Errorf("lab.log has nothing after %q, though nodes changed readiness:\n%s", readyLine, logText)
	}

	downOut, err := labDown()
	if err != nil || !strings.Contains(downOut, "lab: stopped") {
		t.Fatalf("make lab-down: %v\n%s", err, downOut)
	}
	if _, err := os.Stat(filepath.Join(state, "pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left after make lab-down: %v", err)
	}
	if left := processesUnder(t, state); len(left) > 0 {
		t.Errorf("processes left after make lab-down: %s", strings.Join(left, "; "))
	}
	if alive(pid) {
		t.Errorf("lab pid %d still runs after make lab-down", pid)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// alive: the process exists and is not a zombie waiting for its parent.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// processesUnder lists the live processes whose command line names dir: every test-bed process
// the lab starts runs with its files under the lab's state directory.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) || !alive(pid) {
			continue
		}
		left = append(left, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	}
	return left
}
