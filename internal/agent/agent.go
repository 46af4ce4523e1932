// Package agent implements `bootcore agent`: the run-once hand-over of a freshly booted Talos
// cluster to Flux. It runs ordered phases (connect, wait-control-plane, wait-cni,
// prerequisites, install-flux, handover, release-talos, record); each checks first, read-only,
// whether its outcome is already in place, so a re-run after a kill finishes the job and a
// run on a handed-over cluster writes nothing.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// Exit codes of `bootcore agent`.
const (
	ExitOK           = 0 // handed over now, or already (nothing written)
	ExitFailed       = 1 // a phase failed or timed out; a support bundle was written
	ExitInvalid      = 2 // spec, flags or inputs (environment variables, files) are wrong; nothing written
	ExitWrongCluster = 3 // the API server is not the named cluster's; nothing written
	ExitLocked       = 4 // another agent held the lock for the whole --lock-wait; nothing written
)

// Flux install modes.
const (
	InstallHelm      = "helm"
	InstallManifests = "manifests"
)

// Phase names, in order.
const (
	PhaseConnect          = "connect"
	PhaseWaitControlPlane = "wait-control-plane"
	PhaseWaitCNI          = "wait-cni"
	PhasePrerequisites    = "prerequisites"
	PhaseInstallFlux      = "install-flux"
	PhaseHandover         = "handover"
	PhaseReleaseTalos     = "release-talos"
	PhaseRecord           = "record"
)

// PhaseNames lists the phases in order (for per-phase timeout flags).
var PhaseNames = []string{PhaseConnect, PhaseWaitControlPlane, PhaseWaitCNI, PhasePrerequisites, PhaseInstallFlux, PhaseHandover, PhaseReleaseTalos, PhaseRecord}

// Connector gives the agent the cluster's API: Kubeconfig, or the kubeconfig fetched from the
// Talos API (internal/talosapi).
type Connector interface {
	Connect(ctx context.Context) (*rest.Config, error)
	// Describe names the source for messages, e.g. "kubeconfig /home/me/.kube/config".
	Describe() string
}

// Kubeconfig connects with a kubeconfig file: Path, else $KUBECONFIG, else ~/.kube/config.
type Kubeconfig struct {
	Path    string
	Context string
}

func (k Kubeconfig) rules() *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.Path != "" {
		rules.ExplicitPath = k.Path
	}
	return rules
}

// Connect loads the kubeconfig.
func (k Kubeconfig) Connect(context.Context) (*rest.Config, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(k.rules(), &clientcmd.ConfigOverrides{CurrentContext: k.Context})
	cfg, err := cc.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		// client-go's own message suggests KUBERNETES_MASTER, which bootcore does not read.
		return nil, fmt.Errorf("no kubeconfig: %s is missing or empty; give --kubeconfig F, or --talosconfig F to fetch it through the Talos API", strings.TrimPrefix(k.Describe(), "kubeconfig "))
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// Describe names the kubeconfig.
func (k Kubeconfig) Describe() string {
	path := k.Path
	if path == "" {
		path = strings.Join(k.rules().Precedence, string(os.PathListSeparator))
	}
	if k.Context != "" {
		return fmt.Sprintf("kubeconfig %s (context %s)", path, k.Context)
	}
	return "kubeconfig " + path
}

// Options configure one agent run.
type Options struct {
	Repo      string // repository root (holds bootstrap/bootcore.yaml)
	Cluster   string
	Connector Connector
	// Talos, when set, is the Talos API of the control-plane nodes: release-talos applies the
	// post-handover patch through it instead of printing the talosctl command.
	Talos TalosAPI
	// FluxInstall is InstallHelm (default) or InstallManifests.
	FluxInstall string
	// Manifests overrides agent.flux.manifests for InstallManifests.
	Manifests string
	Force     bool
	DryRun    bool
	// Timeouts per phase name; defaults in DefaultTimeouts.
	Timeouts map[string]time.Duration
	// LockWait is how long to wait for another agent's lock; LockTTL how long a killed
	// agent's lock blocks others.
	LockWait, LockTTL time.Duration
	// PollInterval is the kstatus polling interval; ProgressEvery how often a wait repeats
	// what it is waiting for.
	PollInterval, ProgressEvery time.Duration
	// BundleDir receives the support bundle of a failed run.
	BundleDir string
	// CacheDir is the chart cache (default: gen's).
	CacheDir string
	// Version is bootcore's version, recorded in the marker.
	Version string
	Out     io.Writer
	JSON    bool
	// Getenv reads secret inputs; default os.LookupEnv.
	Getenv func(string) (string, bool)
}

// DefaultTimeouts are the per-phase timeouts.
var DefaultTimeouts = map[string]time.Duration{
	PhaseConnect:          30 * time.Second,
	PhaseWaitControlPlane: 15 * time.Minute,
	PhaseWaitCNI:          10 * time.Minute,
	PhasePrerequisites:    2 * time.Minute,
	PhaseInstallFlux:      10 * time.Minute,
	PhaseHandover:         20 * time.Minute,
	PhaseReleaseTalos:     2 * time.Minute,
	PhaseRecord:           30 * time.Second,
}

func (o *Options) defaults() {
	if o.FluxInstall == "" {
		o.FluxInstall = InstallHelm
	}
	if o.Timeouts == nil {
		o.Timeouts = map[string]time.Duration{}
	}
	for k, v := range DefaultTimeouts {
		if _, ok := o.Timeouts[k]; !ok {
			o.Timeouts[k] = v
		}
	}
	if o.LockWait == 0 {
		o.LockWait = 5 * time.Minute
	}
	if o.LockTTL == 0 {
		o.LockTTL = 15 * time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = 15 * time.Second
	}
	if o.BundleDir == "" {
		o.BundleDir = "."
	}
	if o.CacheDir == "" {
		o.CacheDir = gen.DefaultCacheDir()
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
}

// Result is the outcome of a run.
type Result struct {
	ExitCode int
	// Bundle is the support bundle path of a failed run.
	Bundle string
	// AlreadyDone is true when the cluster was handed over before and nothing was written.
	AlreadyDone bool
	Err         error
}

// state is what the phases share during one run.
type state struct {
	opts    Options
	spec    *spec.Spec
	cluster spec.Cluster
	agent   spec.Agent
	rep     *Reporter
	k       *kube
	uid     string
	marker  *Marker
	server  string

	treeOnce sync.Once
	tree     *fluxtree.Tree
	treeErr  error

	bootOnce sync.Once
	boot     *bootObjects
	bootErr  error

	secrets      []*corev1.Secret
	secretValues [][]byte
	resolved     bool

	ranAny      bool
	phaseTimes  map[string]time.Time
	gitRevision string
	versions    map[string]string
	talosCmd    string
}

func (s *state) now() time.Time { return time.Now() }

// Tree is the cluster's Flux tree, loaded once.
func (s *state) Tree(ctx context.Context) (*fluxtree.Tree, error) {
	s.treeOnce.Do(func() {
		s.tree, s.treeErr = fluxtree.Load(ctx, s.opts.Repo, s.cluster.FluxSystem)
	})
	return s.tree, s.treeErr
}

// outDir is <output>/<cluster>, where gen wrote the cluster's patches.
func (s *state) outDir() string {
	out := s.spec.Output
	if !filepath.IsAbs(out) {
		out = filepath.Join(s.opts.Repo, out)
	}
	return filepath.Join(out, s.cluster.Name)
}

// Boot is what Talos applied at boot, from gen's control-plane patch.
func (s *state) Boot() (*bootObjects, error) {
	s.bootOnce.Do(func() {
		s.boot, s.bootErr = readBootObjects(filepath.Join(s.outDir(), "controlplane.yaml"))
	})
	return s.boot, s.bootErr
}

// Run hands the cluster over. Every outcome, including failures, is in the Result; the
// events were written to opts.Out.
func Run(ctx context.Context, opts Options) *Result {
	opts.defaults()
	rep := NewReporter(opts.Out, opts.JSON)
	start := time.Now()
	res := run(ctx, opts, rep)
	msg := ""
	switch {
	case res.Err == nil && res.AlreadyDone:
		msg = fmt.Sprintf("cluster %s is already handed over to Flux; nothing to do", opts.Cluster)
	case res.Err == nil && opts.DryRun:
		msg = fmt.Sprintf("dry run for cluster %s finished; nothing was written", opts.Cluster)
	case res.Err == nil:
		msg = fmt.Sprintf("cluster %s handed over to Flux", opts.Cluster)
	default:
		msg = res.Err.Error()
		if res.Bundle != "" {
			msg += "\nsupport bundle: " + res.Bundle
		}
	}
	code := res.ExitCode
	rep.Emit(Event{Type: EventResult, Message: msg, Elapsed: time.Since(start).Seconds(), ExitCode: &code, Bundle: res.Bundle})
	return res
}

func run(ctx context.Context, opts Options, rep *Reporter) *Result {
	fail := func(code int, err error) *Result { return &Result{ExitCode: code, Err: err} }
	if opts.FluxInstall != InstallHelm && opts.FluxInstall != InstallManifests {
		return fail(ExitInvalid, fmt.Errorf("--flux-install: %q must be %s or %s", opts.FluxInstall, InstallHelm, InstallManifests))
	}
	sp, err := spec.Load(filepath.Join(opts.Repo, spec.DefaultPath))
	if err != nil {
		return fail(ExitInvalid, err)
	}
	cluster, ok := sp.Cluster(opts.Cluster)
	if !ok {
		return fail(ExitInvalid, fmt.Errorf("unknown cluster %q: %s defines %s", opts.Cluster, spec.DefaultPath, strings.Join(sp.ClusterNames(), ", ")))
	}
	s := &state{opts: opts, spec: sp, cluster: cluster, agent: sp.AgentOrDefault(), rep: rep,
		phaseTimes: map[string]time.Time{}, versions: map[string]string{}}
	if opts.Version != "" {
		s.versions["bootcore"] = opts.Version
	}

	// connect: clients and the wrong-cluster guard. Nothing is written before it passes.
	connect := &Manager{Phases: []Phase{&connectPhase{s}}, Timeouts: opts.Timeouts, Reporter: rep, Force: true}
	if err := connect.Run(ctx); err != nil {
		var wc *WrongClusterError
		if errors.As(err, &wc) {
			return fail(ExitWrongCluster, err)
		}
		return fail(ExitFailed, err)
	}

	phases := []Phase{
		&waitControlPlanePhase{s}, &waitCNIPhase{s}, &prerequisitesPhase{s},
		&installFluxPhase{s}, &handoverPhase{s}, &releaseTalosPhase{s}, &recordPhase{s},
	}
	mgr := &Manager{Phases: phases, Timeouts: opts.Timeouts, Reporter: rep, Force: opts.Force,
		OnDone: func(p string, at time.Time, ran bool) {
			s.phaseTimes[p] = at
			s.ranAny = s.ranAny || ran
		}}

	// Run-once: a handed-over cluster whose every check passes is left alone, without a
	// lock or any other write.
	if s.marker != nil && !opts.Force {
		cctx, cancel := context.WithTimeout(ctx, opts.Timeouts[PhaseConnect])
		notDone, why, err := mgr.AllDone(cctx)
		cancel()
		if err != nil {
			return s.failed(ctx, err)
		}
		if notDone == "" {
			return &Result{AlreadyDone: true}
		}
		rep.Emit(Event{Type: EventWarning, Phase: notDone, Message: fmt.Sprintf("cluster was handed over at %s, but %s is not in place (%s): running the hand-over again",
			s.marker.HandedOverAt.UTC().Format(time.RFC3339), notDone, why)})
	}

	// Inputs are read before the first write, so a missing one changes nothing.
	if err := s.resolveInputs(ctx); err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return fail(ExitInvalid, err)
		}
		return s.failed(ctx, err)
	}

	if !opts.DryRun {
		lock := &Lock{Client: s.k.client, Identity: NewIdentity(), TTL: opts.LockTTL}
		err := lock.Acquire(ctx, opts.LockWait, func(holder string) {
			rep.Emit(Event{Type: EventProgress, Message: fmt.Sprintf("waiting for the agent lock (Lease %s/%s) held by %s", LockNamespace, LockName, holder)})
		})
		var held *LockHeldError
		if errors.As(err, &held) {
			return fail(ExitLocked, err)
		}
		if err != nil {
			return fail(ExitFailed, err)
		}
		defer lock.Release()
		// Losing the lock mid-run (it expired while this process was stopped) must stop
		// the writes: another agent may be running now.
		lockCtx, cancel := context.WithCancelCause(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			lock.Keep(lockCtx, func(err error) { cancel(fmt.Errorf("lost the agent lock: %w", err)) })
		})
		defer func() { cancel(nil); wg.Wait() }()
		ctx = lockCtx
		// Another agent may have finished while this one waited.
		if s.marker, err = readMarker(ctx, s.k.client); err != nil {
			return s.failed(ctx, err)
		}
	}

	if err := mgr.Run(ctx); err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		return s.failed(ctx, err)
	}
	if !s.ranAny {
		// Another agent finished the hand-over while this one waited for the lock.
		return &Result{AlreadyDone: true}
	}
	if s.talosCmd != "" {
		rep.Emit(Event{Type: EventProgress, Message: "next: drop bootcore's inline manifests from the Talos machine config (once):\n" + s.talosCmd})
	}
	return &Result{}
}

// failed writes the support bundle for a failure that happened with access to the cluster.
func (s *state) failed(ctx context.Context, err error) *Result {
	res := &Result{ExitCode: ExitFailed, Err: err}
	var ie *InputError
	if errors.As(err, &ie) {
		res.ExitCode = ExitInvalid
		return res
	}
	if s.opts.DryRun {
		return res
	}
	path, berr := s.writeBundle(err)
	if berr != nil {
		s.rep.Emit(Event{Type: EventWarning, Message: "writing the support bundle failed: " + berr.Error()})
	}
	res.Bundle = path
	return res
}

// resolveInputs reads the bootstrap Secrets' values and checks the Git credentials against
// the GitRepository that uses them.
func (s *state) resolveInputs(ctx context.Context) error {
	secrets, values, err := resolveSecrets(osSourcesWith(s.opts.Repo, s.opts.Getenv), s.agent.Secrets)
	if err != nil {
		return err
	}
	s.secrets, s.secretValues, s.resolved = secrets, values, true

	tree, err := s.Tree(ctx)
	if err != nil {
		return &InputError{Err: err}
	}
	repo, ok := tree.Get(fluxtree.SourceGroup, "GitRepository", "flux-system", "flux-system")
	if !ok {
		return &InputError{Err: fmt.Errorf("%s: no GitRepository flux-system/flux-system (the Flux entry's source)", s.cluster.FluxSystem)}
	}
	secretName, _, _ := unstructured.NestedString(repo.Object, "spec", "secretRef", "name")
	if secretName == "" {
		return nil
	}
	url, _, _ := unstructured.NestedString(repo.Object, "spec", "url")
	for _, sec := range s.secrets {
		if sec.Namespace == "flux-system" && sec.Name == secretName {
			return checkGitSecret("flux-system/flux-system", url, sec)
		}
	}
	if _, err := s.k.client.CoreV1().Secrets("flux-system").Get(ctx, secretName, metav1.GetOptions{}); err == nil {
		return nil // created earlier, e.g. by hand: Flux can use it
	}
	return &InputError{Err: fmt.Errorf("GitRepository flux-system/flux-system (%s) reads Secret flux-system/%s, which is neither in the cluster nor in agent.secrets of %s",
		tree.Locate("GitRepository", "flux-system"), secretName, spec.DefaultPath)}
}

func osSourcesWith(repo string, getenv func(string) (string, bool)) secretSources {
	src := osSources(repo)
	src.getenv = getenv
	return src
}
