// Package testbed runs real Kubernetes control planes on loopback for
// bootcore's integration tests and the `make lab` environment: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake
// nodes), built from pinned sources by `make testbin`, plus on demand the
// real Flux controllers and a Git server.
//
// Nodes are kwok nodes made to behave like freshly booted Talos nodes without
// a CNI: NotReady until a Ready pod of the cilium DaemonSet runs on them (see
// labcontroller.go). Nothing here runs containers.
package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure a test-bed cluster. The zero value is usable.
type Options struct {
	// Name of the cluster: kubeconfig context and run directory prefix. Default "lab".
	Name string
	// RunDir holds certificates, kubeconfig, etcd data and one log per process.
	// Default: a new directory under integration/.run (or $BOOTCORE_RUNDIR).
	RunDir string
	// ControlPlanes and Workers are the kwok node counts. Default 3 and 2;
	// a negative value means none.
	ControlPlanes, Workers int
	// Logf receives progress lines. Default: discarded.
	Logf func(format string, args ...any)
}

// Cluster is a running test-bed cluster.
type Cluster struct {
	Name           string
	RunDir         string
	Server         string // https://127.0.0.1:<port>
	KubeconfigPath string // admin kubeconfig (client certificate in system:masters)
	Config         *rest.Config
	Client         *kubernetes.Clientset
	Dynamic        dynamic.Interface

	testbin string
	pki     *pki
	logf    func(string, ...any)

	mu       sync.Mutex
	netEnv   []string   // how in-cluster controllers reach the network (SetNetwork)
	procs    []*process // in start order; stopped in reverse
	stopLab  context.CancelFunc
	closers  []func() error // loopback servers of the cluster, closed after its processes
	labDone  chan struct{}
	stopCh   chan struct{} // closed by Stop
	stopped  bool
	readyDur time.Duration
}

// Start runs a cluster and returns when the API server is ready, the
// "default" ServiceAccount exists and kwok has initialised every node (as
// NotReady). On error, everything started so far is stopped again.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	testbin, err := CheckBinaries(coreBinaries...)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "lab"
	}
	if opts.ControlPlanes == 0 {
		opts.ControlPlanes = 3
	}
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.RunDir == "" {
		root, err := defaultRunRoot()
		if err != nil {
			return nil, err
		}
		opts.RunDir = filepath.Join(root, opts.Name+"-"+randomSuffix())
	}
	if err := os.MkdirAll(opts.RunDir, 0o755); err != nil {
		return nil, err
	}

	c := &Cluster{Name: opts.Name, RunDir: opts.RunDir, testbin: testbin, logf: opts.Logf, stopCh: make(chan struct{})}
	started := time.Now()
	if err := c.start(ctx, max(opts.ControlPlanes, 0), max(opts.Workers, 0)); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("cluster %s (logs in %s): %w", c.Name, c.RunDir, err)
	}
	c.readyDur = time.Since(started)
	c.logf("testbed: cluster %s ready in %s at %s (run dir %s)", c.Name, c.readyDur.Round(100*time.Millisecond), c.Server, c.RunDir)
	return c, nil
}

func (c *Cluster) start(ctx context.Context, controlPlanes, workers int) error {
	var err error
	if c.pki, err = generatePKI(filepath.Join(c.RunDir, "pki")); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	etcdClient, err := freePort()
	if err != nil {
		return err
	}
	etcdPeer, err := freePort()
	if err != nil {
		return err
	}
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	if err := c.writeKubeconfig(); err != nil {
		return err
	}

	// etcd
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if _, err := c.run("etcd", nil,
		"--name=etcd",
		"--data-dir="+filepath.Join(c.RunDir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=etcd="+peerURL,
		// Test data is disposable: skipping fsync makes the whole bed faster.
		"--unsafe-no-fsync",
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd health", 30*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return err
	}

	// kube-apiserver
	p := c.pki
	admission, err := writeAdmissionConfig(c.RunDir)
	if err != nil {
		return err
	}
	if _, err := c.run("kube-apiserver", nil,
		"--admission-control-config-file="+admission,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(c.RunDir, "apiserver"),
		"--tls-cert-file="+p.ServingCert, "--tls-private-key-file="+p.ServingKey,
		"--client-ca-file="+p.CACert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.SAPub, "--service-account-signing-key-file="+p.SAKey,
		"--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=RBAC",
		"--allow-privileged=true", // CNI pods are privileged
		// The default reconciler keeps publishing 127.0.0.1 as the endpoint of
		// the "kubernetes" Service and logs errors about it forever.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		// Pod logs come from kwok's kubelet server on 127.0.0.1, the nodes' InternalIP (see podlogs.go).
		"--kubelet-preferred-address-types=InternalIP",
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver /readyz", 90*time.Second, func(ctx context.Context) (bool, error) {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	}); err != nil {
		return err
	}

	// kube-controller-manager, kube-scheduler: admin credentials, no serving
	// port (--secure-port=0), so two clusters never compete for ports.
	if _, err := c.run("kube-controller-manager", nil,
		"--kubeconfig="+c.KubeconfigPath,
		"--leader-elect=false", "--secure-port=0",
		"--cluster-name="+c.Name,
		"--service-account-private-key-file="+p.SAKey,
		"--root-ca-file="+p.CACert,
		"--service-cluster-ip-range="+serviceCIDR,
	); err != nil {
		return err
	}
	if _, err := c.run("kube-scheduler", nil,
		"--kubeconfig="+c.KubeconfigPath, "--leader-elect=false", "--secure-port=0",
	); err != nil {
		return err
	}

	// kwok, with stage configs that keep nodes NotReady (see kwok.go).
	stages, err := writeKwokStages(c.testbin, filepath.Join(c.RunDir, "kwok"))
	if err != nil {
		return err
	}
	if err := c.installKwokLogsCRD(ctx); err != nil {
		return err
	}
	kubeletPort, err := freePort()
	if err != nil {
		return err
	}
	if _, err := c.run("kwok", []string{"HOME=" + filepath.Join(c.RunDir, "kwok")}, // no ~/.kwok config
		"--kubeconfig="+c.KubeconfigPath,
		// kwok's kubelet server, for pod logs (podlogs.go); nodes report 127.0.0.1 and this port.
		"--node-ip=127.0.0.1", "--node-port="+strconv.Itoa(kubeletPort),
		"--server-address=127.0.0.1:"+strconv.Itoa(kubeletPort),
		"--tls-cert-file="+p.ServingCert, "--tls-private-key-file="+p.ServingKey,
		"--enable-crds=Logs",
		"--config="+stages,
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16",
	); err != nil {
		return err
	}

	// The lab controller stands in for each node's kubelet readiness.
	labCtx, cancel := context.WithCancel(context.Background())
	c.stopLab = cancel
	c.labDone = make(chan struct{})
	go func() {
		defer close(c.labDone)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			runPodLogs(labCtx, c.Client, c.Dynamic, c.RunDir, c.logf)
		}()
		runLabController(labCtx, c.Client, c.logf)
		wg.Wait()
	}()

	if err := c.createNodes(ctx, controlPlanes, workers); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "default ServiceAccount", 60*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}
	// kwok's initialize stage gives each node its addresses and kubelet endpoint (phase Running).
	return c.waitFor(ctx, "kwok to initialise nodes", 60*time.Second, func(ctx context.Context) (bool, error) {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, n := range nodes.Items {
			if n.Status.Phase != corev1.NodeRunning || !hasNotReadyTaint(&n) {
				return false, nil
			}
		}
		return true, nil
	})
}

// run starts one binary from the testbin directory with its log in the run
// dir (<name>.log); each binary runs at most once per cluster.
// SetNetwork sets the environment through which the controllers that run as pods in a real
// cluster (the Flux controllers, the flux-operator) reach anything outside it: the chart
// mirror's proxy (HTTPS_PROXY, SSL_CERT_FILE). Call it before StartFlux/StartFluxOperator.
func (c *Cluster) SetNetwork(env []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.netEnv = append([]string(nil), env...)
}

// podEnv is the environment of a controller that runs as a pod in a real cluster.
func (c *Cluster) podEnv() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string{"KUBECONFIG=" + c.KubeconfigPath, "RUNTIME_NAMESPACE=" + FluxNamespace}, c.netEnv...)
}

func (c *Cluster) run(name string, env []string, args ...string) (*process, error) {
	return c.runProcess(name, false, env, args)
}

func (c *Cluster) runProcess(name string, pod bool, env, args []string) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("cluster stopped")
	}
	bin := filepath.Join(c.testbin, "bin", name)
	p, err := startProcess(name, bin, args, env, filepath.Join(c.RunDir, name+".log"))
	if err != nil {
		return nil, err
	}
	p.pod = pod
	c.procs = append(c.procs, p)
	c.logf("testbed: %s: started %s (pid %d)", c.Name, name, p.cmd.Process.Pid)
	return p, nil
}

// runPod starts a binary that runs as a pod's container in a real cluster (a Flux
// controller, the flux-operator, External Secrets) and supervises it as the kubelet does.
func (c *Cluster) runPod(name string, env []string, args ...string) (*process, error) {
	p, err := c.runProcess(name, true, env, args)
	if err != nil {
		return nil, err
	}
	c.supervise(p)
	return p, nil
}

// supervise restarts p, with the kubelet's crash-loop back-off (10 s, doubling, at most
// 5 min), whenever it exits on its own: a controller that crashes in a real cluster comes
// back, and the test log says that it crashed and why. A process that Crash took down (a
// fault a test injects) or that Stop ended is left alone.
func (c *Cluster) supervise(p *process) {
	go func() {
		backoff := 10 * time.Second
		for {
			select {
			case <-p.done:
			case <-c.stopCh:
				return
			}
			c.mu.Lock()
			i := slices.Index(c.procs, p)
			c.mu.Unlock()
			if i < 0 {
				return // taken down on purpose (Crash); Down.Start supervises its successor
			}
			c.logf("testbed: %s: %s (pid %d) exited (%v); restarting it in %s, as the kubelet restarts a crashed container; last log lines (%s):\n%s",
				c.Name, p.name, p.cmd.Process.Pid, p.waitErr, backoff, p.logPath, p.logTail(20))
			select {
			case <-time.After(backoff):
			case <-c.stopCh:
				return
			}
			c.mu.Lock()
			if c.stopped || slices.Index(c.procs, p) < 0 {
				c.mu.Unlock()
				return
			}
			next, err := startProcess(p.name, p.cmd.Path, p.cmd.Args[1:], p.cmd.Env, p.logPath)
			if err != nil {
				c.mu.Unlock()
				c.logf("testbed: %s: restarting %s: %v", c.Name, p.name, err)
				return
			}
			next.pod = true
			c.procs[slices.Index(c.procs, p)] = next
			c.mu.Unlock()
			c.logf("testbed: %s: restarted %s (pid %d) after it exited", c.Name, p.name, next.cmd.Process.Pid)
			p = next
			backoff = min(2*backoff, 5*time.Minute)
		}
	}()
}

// waitFor polls cond every 100ms until it is true, the timeout passes, or one
// of the cluster's processes exits (then with that process's log tail).
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, cond wait.ConditionWithContextFunc) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		c.mu.Lock()
		procs := append([]*process(nil), c.procs...)
		c.mu.Unlock()
		if err := errIfExited(procs); err != nil {
			return false, err
		}
		return cond(ctx)
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

func (c *Cluster) writeKubeconfig() error {
	c.KubeconfigPath = filepath.Join(c.RunDir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos[c.Name+"-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.pki.adminCertPEM, ClientKeyData: c.pki.adminKeyPEM}
	cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name + "-admin"}
	cfg.CurrentContext = c.Name
	if err := clientcmd.WriteToFile(*cfg, c.KubeconfigPath); err != nil {
		return err
	}
	restCfg, err := clientcmd.NewNonInteractiveClientConfig(*cfg, c.Name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return err
	}
	// Tests create many objects quickly; client-go's default 5 QPS would
	// throttle them into slowness.
	restCfg.QPS, restCfg.Burst = 200, 400
	c.Config = restCfg
	if c.Client, err = kubernetes.NewForConfig(restCfg); err != nil {
		return err
	}
	c.Dynamic, err = dynamic.NewForConfig(restCfg)
	return err
}

// Stop stops exactly the processes this cluster started, newest first, and
// the lab controller. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	close(c.stopCh)
	procs := c.procs
	c.mu.Unlock()

	if c.stopLab != nil {
		c.stopLab()
		<-c.labDone
	}
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	closers := c.closers
	c.mu.Unlock()
	for _, f := range closers {
		if err := f(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// onStop registers f to run when the cluster stops, after its processes.
func (c *Cluster) onStop(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closers = append(c.closers, f)
}

// StartupDuration is how long Start took until the cluster was ready.
func (c *Cluster) StartupDuration() time.Duration { return c.readyDur }

// RSS returns the resident memory of each running process of the cluster, in bytes.
func (c *Cluster) RSS() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int64{}
	for _, p := range c.procs {
		if done, _ := p.exited(); done {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				out[p.name] = kb * 1024
			}
		}
	}
	return out
}

// Namespace creates a namespace if it does not exist.
func (c *Cluster) Namespace(ctx context.Context, name string) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
