// Command lab runs the lab: test-bed clusters (real control planes with kwok nodes that stay
// NotReady until Cilium runs) booted from `bootcore gen`'s patches through the Talos boot
// EMULATION, a Git server serving the lab tree, the Flux controllers and the flux-operator as
// processes, and `bootcore agent` handing each cluster over to Flux. One cluster (-talos-api,
// default infra) gets a Talos API STAND-IN per control-plane node (integration/talosapi), and
// its agent is given only a talosconfig: it fetches the kubeconfig and applies the
// post-handover patch through the Talos API. The others' agents get the kubeconfig.
//
//	lab up [-clusters infra,apps] [-talos-api infra] [-agent bin/bootcore] [-state DIR] [-detach]
//	lab down [-state DIR]
//
// `up -detach` returns once everything is up and keeps the lab running in the background;
// `down` stops exactly the processes the lab started. Without -detach, Ctrl-C stops it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bootcore-dev/bootcore/integration/labenv"
	"github.com/bootcore-dev/bootcore/integration/talosapi"
	"github.com/bootcore-dev/bootcore/integration/testbed"
)

const readyLine = "lab: ready"

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: lab up [-clusters infra,apps] [-talos-api infra] [-agent BIN] [-state DIR] [-detach] | lab down [-state DIR]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("lab "+os.Args[1], flag.ExitOnError)
	clusters := fs.String("clusters", "infra,apps", "comma-separated lab clusters")
	talosAPI := fs.String("talos-api", "infra", "cluster whose agent reaches it through Talos API stand-ins with a talosconfig only (empty: none)")
	agentBin := fs.String("agent", "", "bootcore binary: run `bootcore agent` on every cluster after the boot")
	state := fs.String("state", "integration/.run/lab", "directory for the lab's logs, pid and lock")
	detach := fs.Bool("detach", false, "return when the lab is up; keep it running in the background")
	_ = fs.Parse(os.Args[2:])
	// Git and the clusters get this path from other working directories: make it absolute.
	if abs, err := filepath.Abs(*state); err == nil {
		*state = abs
	}

	var err error
	switch {
	case os.Args[1] == "down":
		err = down(*state)
	case *detach:
		err = upDetached(*state)
	default:
		err = up(strings.Split(*clusters, ","), *talosAPI, *agentBin, *state, labOutput())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

// progressFD is the file descriptor on which a detached lab's starter reads its output until
// "lab: ready"; the lab's stdout and stderr are its log file.
const progressFD = 3

// upDetached starts `lab up` (without -detach) as a background process whose stdout and
// stderr are state/lab.log itself, relays its output until it reports ready, and returns.
// The lab never writes to a pipe after that: its starter (make lab) has exited by then, and a
// write to a pipe without a reader would kill it with SIGPIPE.
func upDetached(state string) error {
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(state, "lab.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	var args []string
	for _, a := range os.Args[1:] {
		if a != "-detach" && a != "--detach" {
			args = append(args, a)
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{pw} // progressFD
	cmd.Env = append(os.Environ(), "BOOTCORE_LAB_PROGRESS_FD="+strconv.Itoa(progressFD))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // survives the make that started it
	if err := cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	pw.Close()
	// The lab closes its end at "lab: ready" (or when it exits): EOF either way.
	ready := false
	relayed := map[string]bool{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		fmt.Println(sc.Text())
		relayed[sc.Text()] = true
		ready = ready || sc.Text() == readyLine
	}
	if ready {
		pid := cmd.Process.Pid // Release sets it to -1
		_ = cmd.Process.Release()
		fmt.Printf("lab: running in the background (pid %d, log %s); stop it with make lab-down\n", pid, logPath)
		return nil
	}
	err = cmd.Wait()
	// Its stderr (the error) went to the log only.
	if data, rerr := os.ReadFile(logPath); rerr == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if !relayed[l] {
				fmt.Fprintln(os.Stderr, l)
			}
		}
	}
	return fmt.Errorf("exited before it was ready (%v); see %s", err, logPath)
}

// labOutput is the lab's output: stdout (the log file when detached) and, until the ready
// line, the starter's progress pipe.
func labOutput() io.Writer {
	if os.Getenv("BOOTCORE_LAB_PROGRESS_FD") != strconv.Itoa(progressFD) {
		return os.Stdout
	}
	os.Unsetenv("BOOTCORE_LAB_PROGRESS_FD")
	// Inherited without close-on-exec: without this every process the lab starts would hold
	// the pipe open, and the starter would not see EOF when the lab fails.
	syscall.CloseOnExec(progressFD)
	return &progressWriter{out: os.Stdout, progress: os.NewFile(progressFD, "progress")}
}

type progressWriter struct {
	mu       sync.Mutex
	out      io.Writer
	progress *os.File
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.progress != nil {
		// A starter that died early is no reason to stop: fd 3 gets EPIPE, not SIGPIPE.
		_, _ = w.progress.Write(p)
		if bytes.Contains(p, []byte(readyLine+"\n")) {
			w.progress.Close()
			w.progress = nil
		}
	}
	return w.out.Write(p)
}

func up(names []string, talosAPI, agentBin, state string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	// The lock is held for the lab's lifetime: `down` waits on it to know everything stopped.
	lock, err := os.OpenFile(filepath.Join(state, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("a lab is already running (make lab-down stops it)")
	}
	defer lock.Close()
	if err := os.WriteFile(filepath.Join(state, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(state, "pid"))

	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	runDir := filepath.Join(state, "clusters")
	if err := os.RemoveAll(runDir); err != nil { // old etcd data would not match new certificates
		return err
	}

	clusters := map[string]*testbed.Cluster{}
	var mu sync.Mutex
	defer func() {
		logf("lab: stopping")
		for _, c := range clusters {
			if err := c.Stop(); err != nil {
				logf("lab: %v", err)
			}
		}
	}()
	if err := each(names, func(name string) error {
		c, err := testbed.Start(ctx, testbed.Options{Name: name, RunDir: filepath.Join(runDir, name), Logf: logf})
		if err != nil {
			return err
		}
		mu.Lock()
		clusters[name] = c
		mu.Unlock()
		return nil
	}); err != nil {
		return err
	}

	if err := os.RemoveAll(filepath.Join(state, "git")); err != nil { // an earlier lab's repository
		return err
	}
	git, err := testbed.StartGitServer(filepath.Join(state, "git"))
	if err != nil {
		return err
	}
	defer git.Close()
	repo := filepath.Join(state, "repo")
	if err := os.RemoveAll(repo); err != nil {
		return err
	}
	lab, err := labenv.Prepare(ctx, root, repo, git, clusters, "lab-token")
	if err != nil {
		return err
	}
	logf("lab: gen rendered the lab tree into %s; git repository %s", filepath.Join(repo, "generated"), git.RepoURL("lab"))

	results := map[string]string{}
	talosconfigs := map[string]string{}
	var (
		resultsMu sync.Mutex
		standins  []*talosapi.Cluster // serve as long as the lab runs
	)
	defer func() {
		for _, tc := range standins {
			tc.Stop()
		}
	}()
	err = each(names, func(name string) error {
		c := clusters[name]
		if err := lab.BootTalos(ctx, c, name, 3*time.Minute); err != nil {
			return fmt.Errorf("%s: Talos boot emulation: %w", name, err)
		}
		logf("lab: %s booted from %s (Talos emulation)", name, filepath.Join("generated", name, "controlplane.yaml"))
		// External Secrets' controller (a pod of the chart's Deployment in a real cluster) runs
		// against a 1Password Connect stand-in that accepts the token Prepare gave the agent.
		if _, err := c.StartLabExternalSecrets(ctx, "lab-token"); err != nil {
			return fmt.Errorf("%s: External Secrets: %w", name, err)
		}
		// How the agent reaches the cluster: a kubeconfig, or only a talosconfig.
		access := []string{"--kubeconfig", c.KubeconfigPath}
		if name == talosAPI {
			talosconfig := filepath.Join(state, "talosconfig-"+name)
			tc, err := lab.StartTalosAPI(ctx, c, name, talosconfig)
			if err != nil {
				return err
			}
			resultsMu.Lock()
			standins = append(standins, tc)
			talosconfigs[name] = talosconfig
			resultsMu.Unlock()
			logf("lab: %s: Talos API stand-ins at %s (talosconfig %s)", name, strings.Join(tc.Addresses(), ","), talosconfig)
			access = []string{"--talosconfig", talosconfig}
		}
		if _, err := c.StartFlux(ctx); err != nil {
			return err
		}
		if err := c.StartFluxOperator(ctx); err != nil {
			return err
		}
		result := "agent not run (no -agent binary given)"
		if agentBin != "" {
			result = runAgent(ctx, agentBin, lab, name, state, access)
		}
		resultsMu.Lock()
		results[name] = result
		resultsMu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		c := clusters[name]
		fmt.Fprintf(out, "\ncluster %s: %s\n", name, results[name])
		printStatus(ctx, out, c, lab.Repo)
		fmt.Fprintf(out, "export KUBECONFIG=%s   # cluster %s\n", c.KubeconfigPath, name)
		if tc := talosconfigs[name]; tc != "" {
			fmt.Fprintf(out, "export TALOSCONFIG=%s   # cluster %s: Talos API stand-ins\n", tc, name)
		}
	}
	fmt.Fprintln(out, readyLine)
	<-ctx.Done()
	return nil
}

// runAgent runs `bootcore agent` for one cluster and returns a one-line result; its full
// output goes to state/agent-<cluster>.log.
func runAgent(ctx context.Context, bin string, lab *labenv.Lab, name, state string, access []string) string {
	logPath := filepath.Join(state, "agent-"+name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	args := append([]string{"agent", "--cluster", name, "--repo", lab.Repo}, access...)
	cmd := exec.CommandContext(ctx, bin, append(args, "--bundle-dir", state, "--cache-dir", filepath.Join(state, "cache"))...)
	// Only the flags say how to reach the cluster.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KUBECONFIG=") && !strings.HasPrefix(e, "TALOSCONFIG=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, lab.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	start := time.Now()
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return fmt.Sprintf("handed over to Flux by bootcore agent in %s (log %s)", time.Since(start).Round(time.Second), logPath)
	case errors.As(err, &ee):
		return fmt.Sprintf("bootcore agent FAILED with exit %d (log %s)", ee.ExitCode(), logPath)
	default:
		return fmt.Sprintf("bootcore agent did not run: %v", err)
	}
}

// down stops a detached lab and waits until every process it started is gone.
func down(state string) error {
	data, err := os.ReadFile(filepath.Join(state, "pid"))
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("lab: not running")
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("%s/pid: %w", state, err)
	}
	// The lab holds the lock for its lifetime: free, the pid file is stale (a lab killed
	// before it could clean up), and the pid may belong to another process by now.
	lock, err := os.OpenFile(filepath.Join(state, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		if err := os.Remove(filepath.Join(state, "pid")); err != nil {
			return err
		}
		fmt.Printf("lab: not running (removed the stale pid file of pid %d)\n", pid)
		return nil
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("lab pid %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	// The lab has stopped every process it started before it exits; its pidfd becomes
	// readable when it has exited.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int((2 * time.Minute).Milliseconds()))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("lab (pid %d) did not stop within 2 minutes", pid)
		}
		fmt.Println("lab: stopped")
		return nil
	}
}

func each(names []string, fn func(string) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Go(func() { errs[i] = fn(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
