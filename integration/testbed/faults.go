package testbed

// Fault injection for the reliability tests: a process of the cluster is killed (SIGKILL, as
// a crash or an OOM kill would) and later started again with the same arguments, data
// directory and ports. Additive only: nothing here changes how clusters start or stop.

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Down is a process of a cluster that Crash killed; Start runs it again.
type Down struct {
	c       *Cluster
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	pod     bool      // supervised as a pod's container (Cluster.supervise)
	At      time.Time // when it was killed
}

// Crash SIGKILLs the cluster's process name (its whole process group) and waits until it has
// exited. The process is no longer one of the cluster's while it is down, so the harness's
// waits do not fail on its exit; Stop does not touch it. Names: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok, source-controller, kustomize-controller,
// helm-controller, flux-operator.
func (c *Cluster) Crash(name string) (*Down, error) {
	c.mu.Lock()
	i := slices.IndexFunc(c.procs, func(p *process) bool { return p.name == name })
	if i < 0 || c.stopped {
		c.mu.Unlock()
		return nil, fmt.Errorf("cluster %s has no running %s", c.Name, name)
	}
	p := c.procs[i]
	c.procs = slices.Delete(c.procs, i, i+1)
	c.mu.Unlock()

	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.cmd.Process.Pid)
	}
	c.logf("testbed: %s: killed %s (pid %d)", c.Name, name, p.cmd.Process.Pid)
	// cmd.Env is os.Environ() plus the process's own variables; passing it again keeps
	// the latter (later entries win).
	return &Down{c: c, name: name, bin: p.cmd.Path, args: p.cmd.Args[1:], env: p.cmd.Env, logPath: p.logPath, pod: p.pod, At: time.Now()}, nil
}

// Start runs the killed process again with the same arguments and returns once it serves
// again: kube-apiserver /readyz, etcd /health, a controller's /readyz on its --health-addr.
func (d *Down) Start(ctx context.Context) error {
	c := d.c
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return fmt.Errorf("cluster %s stopped", c.Name)
	}
	p, err := startProcess(d.name, d.bin, d.args, d.env, d.logPath)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	p.pod = d.pod
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	if d.pod {
		c.supervise(p)
	}
	c.logf("testbed: %s: restarted %s (pid %d) after %s down", c.Name, d.name, p.cmd.Process.Pid, time.Since(d.At).Round(100*time.Millisecond))

	var url string
	for _, a := range d.args {
		if v, ok := strings.CutPrefix(a, "--health-addr="); ok {
			url = "http://" + v + "/readyz"
		}
		if v, ok := strings.CutPrefix(a, "--listen-client-urls="); ok {
			url = v + "/health"
		}
	}
	switch {
	case d.name == "kube-apiserver":
		return c.waitFor(ctx, "kube-apiserver /readyz after restart", 90*time.Second, func(ctx context.Context) (bool, error) {
			body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err == nil && string(body) == "ok", nil
		})
	case url != "":
		return c.waitFor(ctx, d.name+" "+url+" after restart", 60*time.Second, func(ctx context.Context) (bool, error) {
			resp, err := http.Get(url)
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	}
	return nil
}

// Restart kills process name and starts it again once downFor has passed (the length of the
// outage clients see), returning when it serves again.
func (c *Cluster) Restart(ctx context.Context, name string, downFor time.Duration) error {
	d, err := c.Crash(name)
	if err != nil {
		return err
	}
	select {
	case <-time.After(downFor):
	case <-ctx.Done():
	}
	return d.Start(context.WithoutCancel(ctx))
}

// RestartAPIServer kills kube-apiserver and starts it again after downFor.
func (c *Cluster) RestartAPIServer(ctx context.Context, downFor time.Duration) error {
	return c.Restart(ctx, "kube-apiserver", downFor)
}

// RestartEtcd kills etcd and starts it again (same data directory) after downFor.
func (c *Cluster) RestartEtcd(ctx context.Context, downFor time.Duration) error {
	return c.Restart(ctx, "etcd", downFor)
}

// StopController kills a Flux controller or the flux-operator (a crashed controller pod);
// Start on the result brings it back.
func (c *Cluster) StopController(name string) (*Down, error) {
	if !slices.Contains(append(slices.Clone(fluxBinaries), "flux-operator"), name) {
		return nil, fmt.Errorf("%s is not a Flux controller", name)
	}
	return c.Crash(name)
}

// Kill SIGKILLs the cluster's running process name as an OOM kill or a crash would, without
// taking it out of the cluster: a process that stands for a pod's container is restarted by
// the test bed as the kubelet would (Cluster.supervise); any other makes the harness's waits
// fail. It returns the killed process's pid.
func (c *Cluster) Kill(name string) (int, error) {
	c.mu.Lock()
	i := slices.IndexFunc(c.procs, func(p *process) bool { return p.name == name })
	if i < 0 || c.stopped {
		c.mu.Unlock()
		return 0, fmt.Errorf("cluster %s has no running %s", c.Name, name)
	}
	p := c.procs[i]
	c.mu.Unlock()
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return 0, err
	}
	c.logf("testbed: %s: killed %s (pid %d) behind the test bed's back", c.Name, name, pid)
	return pid, nil
}

// PID is the pid of the cluster's running process name (0 when there is none).
func (c *Cluster) PID(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.name == name {
			if done, _ := p.exited(); !done {
				return p.cmd.Process.Pid
			}
		}
	}
	return 0
}

// LogTail returns the last lines of process name's log (for a failing test's output, which
// outlives the run directory on CI).
func (c *Cluster) LogTail(name string, lines int) string {
	p := &process{logPath: filepath.Join(c.RunDir, name+".log")}
	return p.logTail(lines)
}
