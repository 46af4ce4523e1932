// Package agent implements `bootcore agent`: the run-once hand-over of a freshly booted Talos
// cluster to Flux. It runs ordered phases (connect, wait-control-plane, wait-cni,
// prerequisites, install-flux, handover, release-talos, record; lock and unlock around the
// ones that write), one file each (phase_<name>.go); each checks first, read-only, whether
// its outcome is already in place, so a re-run after a kill finishes the job and a run on a
// handed-over cluster writes nothing. Phases hand what later ones need on as typed facts
// (phase.go); they talk to the cluster through internal/kube and wait for what
// internal/status says must be Ready.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/bootcore-dev/bootcore/internal/chartsource"
	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/internal/runlock"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/internal/status"
	"github.com/bootcore-dev/bootcore/talos"
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

// The phases around the ones that write: they take and give up the run lock (a Lease, see
// internal/runlock). They are not recorded in the hand-over marker and have no timeout flag
// (the lock's is --lock-wait).
const (
	PhaseLock   = "lock"
	PhaseUnlock = "unlock"
)

// PhaseNames lists the hand-over's phases in order (for per-phase timeout flags and the
// hand-over marker).
var PhaseNames = []string{PhaseConnect, PhaseWaitControlPlane, PhaseWaitCNI, PhasePrerequisites, PhaseInstallFlux, PhaseHandover, PhaseReleaseTalos, PhaseRecord}

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
	// LockWait is how long to wait for another agent's lock; LockTTL is the lock's lease
	// duration: how long a killed agent's lock blocks a re-run (see internal/runlock).
	LockWait, LockTTL time.Duration
	// PollInterval is how often the cluster DNS wait looks again; ProgressEvery how often a
	// wait repeats what it is waiting for.
	PollInterval, ProgressEvery time.Duration
	// BundleDir receives the support bundle of a failed run.
	BundleDir string
	// CacheDir is the chart cache (default: gen's, chartsource.DefaultCacheDir).
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
		o.LockTTL = runlock.DefaultLeaseDuration
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
		o.CacheDir = chartsource.DefaultCacheDir()
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

// inputs are what every phase reads and none changes: the options, the spec, the cluster's
// Flux tree, the boot objects of the patch gen wrote, and what must be Ready.
type inputs struct {
	opts     Options
	spec     *spec.Spec
	cluster  spec.Cluster
	agent    spec.Agent
	tree     *fluxtree.Tree
	boot     *talos.Boot
	required status.Required
	flux     fluxInstall
	outDir   string
}

// leanGCPercent is the GC target while the agent makes its two large transients: loading its
// inputs, and install-flux's Helm installs (see withLeanGC).
const leanGCPercent = 50

// withLeanGC runs fn with the agent's memory peak in mind (issue #16), then collects its garbage
// and returns the freed pages to the OS at once (debug.FreeOSMemory: one GC of the live heap),
// instead of the runtime keeping them for tens of seconds under the allocations that follow.
// Loading parses the multi-MiB boot patch and walks the Flux tree (the repository's files in
// memory, kustomize's schemas): ~20 MiB live at its peak, almost all of it garbage afterwards;
// Helm loads, renders, post-renders and stores each chart. With the default GOGC of 100 the
// heap grows to twice what is live before a collection; at 50 it stays ~1.5 times (measured on
// the lab: the load's ~8 MiB less anonymous memory for ~40 ms more CPU). A lower GOGC set by
// the user (or off) is left alone.
func withLeanGC(fn func()) {
	if old := debug.SetGCPercent(leanGCPercent); old < leanGCPercent {
		debug.SetGCPercent(old)
	} else {
		defer debug.SetGCPercent(old)
	}
	fn()
	debug.FreeOSMemory()
}

// loadInputsLean is loadInputs with a lean GC (withLeanGC). kustomize's schema stays:
// install-flux's post-renderer builds with it (it is dropped after that phase).
func loadInputsLean(ctx context.Context, opts Options) (in *inputs, err error) {
	withLeanGC(func() { in, err = loadInputs(ctx, opts) })
	return in, err
}

// loadInputs reads the repository: errors are the user's to fix (exit 2), found before the
// cluster is touched.
func loadInputs(ctx context.Context, opts Options) (*inputs, error) {
	if opts.FluxInstall != InstallHelm && opts.FluxInstall != InstallManifests {
		return nil, fmt.Errorf("--flux-install: %q must be %s or %s", opts.FluxInstall, InstallHelm, InstallManifests)
	}
	// The Lease stores its duration in whole seconds, and a renewal must fit well within it.
	if opts.LockTTL%time.Second != 0 || opts.LockTTL < 3*time.Second {
		return nil, fmt.Errorf("--lock-ttl: %s must be whole seconds, at least 3s", opts.LockTTL)
	}
	sp, err := spec.Load(filepath.Join(opts.Repo, spec.DefaultPath))
	if err != nil {
		return nil, err
	}
	cluster, ok := sp.Cluster(opts.Cluster)
	if !ok {
		return nil, fmt.Errorf("unknown cluster %q: %s defines %s", opts.Cluster, spec.DefaultPath, strings.Join(sp.ClusterNames(), ", "))
	}
	in := &inputs{opts: opts, spec: sp, cluster: cluster, agent: sp.AgentOrDefault(), outDir: status.OutDir(opts.Repo, sp, cluster)}
	// The boot patch first: its parse is the largest transient of the run (a multi-MiB YAML
	// document), and before the tree walk it does not stack on the walk's in-memory copy of the
	// repository and kustomize's schemas (issue #16: ~12 MiB less peak RSS on the lab).
	if in.boot, err = talos.ReadBoot(filepath.Join(in.outDir, talos.ControlPlaneFile)); err != nil {
		return nil, err
	}
	if in.tree, err = fluxtree.Load(ctx, opts.Repo, cluster.FluxSystem); err != nil {
		return nil, err
	}
	in.required, err = status.RequiredFor(status.Cluster{Repo: opts.Repo, Spec: sp, Cluster: cluster, Tree: in.tree, Boot: in.boot, FluxInstance: opts.FluxInstall == InstallHelm})
	if err != nil {
		return nil, err
	}
	in.flux, err = in.fluxInstaller()
	return in, err
}

// env is what a phase works with: the inputs, the cluster's API and the event reporter.
type env struct {
	*inputs
	k   *kube.Client
	rep *Reporter
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
	in, err := loadInputsLean(ctx, opts)
	if err != nil {
		return fail(ExitInvalid, err)
	}
	m := &Manager{Timeouts: opts.Timeouts, Force: opts.Force, DryRun: opts.DryRun, Reporter: rep}

	// connect: the client and the wrong-cluster guard. Nothing is written before it passes.
	conn, err := RunPhase(ctx, &Manager{Timeouts: opts.Timeouts, Reporter: rep}, &connectPhase{in: in, rep: rep})
	if err != nil {
		var wc *WrongClusterError
		if errors.As(err, &wc) {
			return fail(ExitWrongCluster, err)
		}
		return fail(ExitFailed, err)
	}
	e := env{inputs: in, k: conn.k, rep: rep}
	p := newPhases(e, conn)
	failed := func(err error) *Result { return writeBundle(ctx, e, p.prerequisites.secretValues(), err) }

	// Run-once: a handed-over cluster whose every check passes is left alone, without a lock
	// or any other write.
	if conn.marker != nil && !opts.Force {
		cctx, cancel := context.WithTimeout(ctx, opts.Timeouts[PhaseConnect])
		notDone, why, err := m.AllDone(cctx, p.checks()...)
		cancel()
		if err != nil {
			return failed(err)
		}
		if notDone == "" {
			return &Result{AlreadyDone: true}
		}
		rep.Emit(Event{Type: EventWarning, Phase: notDone, Message: fmt.Sprintf("cluster was handed over at %s, but %s is not in place (%s): running the hand-over again",
			conn.marker.HandedOverAt.UTC().Format(time.RFC3339), notDone, why)})
	}

	// Inputs are read before the first write, so a missing one changes nothing.
	if err := m.Prepare(ctx, p.writers()...); err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return fail(ExitInvalid, err)
		}
		return failed(err)
	}

	if !opts.DryRun {
		// The lock's phases run on a manager of their own: taking a lock is no hand-over work
		// (RanAny), and is not recorded in the marker.
		locks := &Manager{Reporter: rep}
		held, err := RunPhase(ctx, locks, &lockPhase{env: e})
		var heldErr *runlock.HeldError
		if errors.As(err, &heldErr) {
			return fail(ExitLocked, err)
		}
		if err != nil {
			return fail(ExitFailed, err)
		}
		defer held.Release() // on every way out; the unlock phase below releases it first
		// Losing the lock mid-run (it expired while this process was stopped) stops the
		// writes: another agent may be running now.
		ctx = held.Context()
		defer func() { _, _ = RunPhase(context.WithoutCancel(ctx), locks, &unlockPhase{env: e, held: held}) }()
	}
	res := p.run(ctx, m)
	if res.Err == nil {
		return res
	}
	err = res.Err
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	return failed(err)
}

// phases are the hand-over's phases, each with what it works with.
type phases struct {
	waitControlPlane *waitControlPlanePhase
	waitCNI          *waitCNIPhase
	prerequisites    *prerequisitesPhase
	installFlux      *installFluxPhase
	handover         *handoverPhase
	releaseTalos     *releaseTalosPhase
	env              env
	conn             connection
}

func newPhases(e env, conn connection) *phases {
	return &phases{
		waitControlPlane: &waitControlPlanePhase{env: e},
		waitCNI:          &waitCNIPhase{env: e},
		prerequisites:    &prerequisitesPhase{env: e},
		installFlux:      &installFluxPhase{env: e},
		handover:         &handoverPhase{env: e},
		releaseTalos:     &releaseTalosPhase{env: e},
		env:              e,
		conn:             conn,
	}
}

// checks are every phase's check, in order, for the run-once test.
func (p *phases) checks() []check {
	return []check{Check(p.waitControlPlane), Check(p.waitCNI), Check(p.prerequisites), Check(p.installFlux),
		Check(p.handover), Check(p.releaseTalos), Check[struct{}](&recordPhase{env: p.env})}
}

// writers are the phases with inputs to prepare.
func (p *phases) writers() []named {
	return []named{p.prerequisites}
}

// run runs the phases in order, each with the facts of those before it.
func (p *phases) run(ctx context.Context, m *Manager) *Result {
	if _, err := RunPhase(ctx, m, p.waitControlPlane); err != nil {
		return &Result{Err: err}
	}
	if _, err := RunPhase(ctx, m, p.waitCNI); err != nil {
		return &Result{Err: err}
	}
	if _, err := RunPhase(ctx, m, p.prerequisites); err != nil {
		return &Result{Err: err}
	}
	var flux fluxFacts
	var err error
	withLeanGC(func() {
		flux, err = RunPhase(ctx, m, p.installFlux)
		// kustomize's decoded schema (~5 MiB of Go values) is garbage too: no later phase
		// builds.
		fluxtree.ReleaseSchema()
	})
	if err != nil {
		return &Result{Err: err}
	}
	handedOver, err := RunPhase(ctx, m, p.handover)
	if err != nil {
		return &Result{Err: err}
	}
	released, err := RunPhase(ctx, m, p.releaseTalos)
	if err != nil {
		return &Result{Err: err}
	}
	versions := map[string]string{}
	for _, vs := range []map[string]string{p.conn.versions, flux.versions} {
		for k, v := range vs {
			versions[k] = v
		}
	}
	rec := &recordPhase{env: p.env, rerun: m.RanAny(), facts: recordFacts{clusterUID: p.conn.uid, versions: versions, gitRevision: handedOver.revision, finished: m.Finished()}}
	if _, err := RunPhase(ctx, m, rec); err != nil {
		return &Result{Err: err}
	}
	if !m.RanAny() {
		// Another agent finished the hand-over while this one waited for the lock.
		return &Result{AlreadyDone: true}
	}
	if released.command != "" {
		p.env.rep.Emit(Event{Type: EventProgress, Message: "next: drop bootcore's inline manifests from the Talos machine config (once):\n" + released.command})
	}
	return &Result{}
}
