package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is one binary started by the test bed. Each runs in its own process
// group so that Stop signals exactly what the test bed started (and any
// children of it) and nothing else on the machine.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // exit status, valid after done is closed
	// pod: the process stands for a container of a pod (a Flux controller, the
	// flux-operator, External Secrets). Like the kubelet with restartPolicy Always, the test
	// bed restarts it when it exits (Cluster.supervise), so its exit does not end a wait.
	pod bool
}

func startProcess(name, bin string, args, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "### %s %s\n", bin, strings.Join(args, " "))

	// A second copy in the CRI log format (what a kubelet keeps) lets kwok serve this log as
	// the log of the pod standing for this process (see podlogs.go).
	criFile, err := os.OpenFile(criLogPath(logPath), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	out := io.MultiWriter(logFile, &criWriter{w: criFile})

	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the test binary dies without running its cleanups (go test's
		// -timeout panics, SIGKILL), the kernel kills the child instead of
		// leaving an orphaned control plane behind.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		criFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		criFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process is gone, with its exit error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group id is the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
}

// logTail returns the last lines of the process log, for error messages.
func (p *process) logTail(lines int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	all := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

// errIfExited returns an error naming the first process that exited, so that
// waits fail fast with the reason instead of running into their deadline.
func errIfExited(procs []*process) error {
	for _, p := range procs {
		if p.pod {
			continue // restarted by Cluster.supervise, as a kubelet would
		}
		if done, err := p.exited(); done {
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("%s exited unexpectedly (%v); last log lines (%s):\n%s", p.name, err, p.logPath, p.logTail(20))
		}
	}
	return nil
}
