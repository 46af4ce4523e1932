package bench

// BenchmarkAgent (issue #8, item 2): `bootcore agent` (the built binary, default
// --poll-interval) hands a test-bed cluster booted from the lab tree over to Flux, one fresh
// cluster per iteration, as integration/e2e does (agent started first, then the emulated Talos
// boot, then Flux's controllers and the flux-operator as processes). Measured per run:
//
//   - detection latency: for every object the agent waited for and reported Ready (a "ready"
//     event in -o json), the time from the object turning Ready, as seen by an independent
//     watcher in this process (informers on the API server, its own readiness rules), to the
//     agent's event. Only objects the watcher saw turn from not Ready to Ready count (not those
//     already Ready when the watch began). Both clocks are this machine's.
//   - the same for a 2-second poll loop (what `flux bootstrap` does) running alongside: the
//     time from turning Ready to the first 2-second poll that sees it.
//   - the agent's CPU time (user + system) and peak RSS (getrusage through peakrss).
//   - a re-run on the handed-over cluster with read-only credentials (any write would be
//     Forbidden and fail the run): its wall time.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/bootcore-dev/bootcore/integration/labenv"
	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/agent"
)

// watchedKinds are the kinds the agent's waits cover.
var watchedKinds = []schema.GroupVersionResource{
	{Version: "v1", Resource: "nodes"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"},
	{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmrepositories"},
	{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "ocirepositories"},
	{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"},
	{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"},
	{Group: "fluxcd.controlplane.io", Version: "v1", Resource: "fluxinstances"},
}

// readyNow is the watcher's own notion of Ready, independent of the agent's code: a Node's
// Ready condition; Flux objects' Ready condition for the current generation; kstatus Current
// for the rest.
func readyNow(u *unstructured.Unstructured) bool {
	if u.GetKind() == "Node" || strings.Contains(u.GetAPIVersion(), "fluxcd") {
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] != "Ready" {
				continue
			}
			if u.GetKind() != "Node" {
				g, ok := m["observedGeneration"].(int64)
				if !ok {
					g, _, _ = unstructured.NestedInt64(u.Object, "status", "observedGeneration")
				}
				if g != u.GetGeneration() {
					return false
				}
			}
			return m["status"] == "True"
		}
		return false
	}
	res, err := status.Compute(u)
	return err == nil && res.Status == status.CurrentStatus
}

func objectKey(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + " " + u.GetName()
	}
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

// readyWatcher records when objects turn Ready: through watches (the reference) and through
// a 2-second poll loop (the comparison).
type readyWatcher struct {
	dyn dynamic.Interface
	mu  sync.Mutex
	// watchReady and pollReady are the watch's and the poll loop's view of each object;
	// watchTurned and pollTurned the times each saw it turn Ready (from not Ready, or from
	// absent for objects created after the kind's informer synced).
	watchReady, pollReady   map[string]bool
	watchTurned, pollTurned map[string][]time.Time
	started                 map[schema.GroupVersionResource]bool
}

func newReadyWatcher(dyn dynamic.Interface) *readyWatcher {
	return &readyWatcher{dyn: dyn, watchReady: map[string]bool{}, pollReady: map[string]bool{},
		watchTurned: map[string][]time.Time{}, pollTurned: map[string][]time.Time{}, started: map[schema.GroupVersionResource]bool{}}
}

func (w *readyWatcher) observe(u *unstructured.Unstructured, at time.Time, initial bool) {
	k, ok := objectKey(u), readyNow(u)
	w.mu.Lock()
	defer w.mu.Unlock()
	if ok && !w.watchReady[k] && !initial {
		w.watchTurned[k] = append(w.watchTurned[k], at)
	}
	w.watchReady[k] = ok
}

// turned returns the transition in times that the event at `reported` is about: the latest at
// or before it (with 1 s of tolerance for the order in which two watches deliver) and after
// `since`; zero when there is none.
func turned(times []time.Time, since, reported time.Time) time.Time {
	var best time.Time
	for _, t := range times {
		if t.After(since) && !t.After(reported.Add(time.Second)) {
			best = t
		}
	}
	return best
}

// run starts an informer per kind as soon as the kind is served (Flux's CRDs arrive during the
// run), and the 2-second poll loop, until ctx ends.
func (w *readyWatcher) run(ctx context.Context) {
	factory := dynamicinformer.NewDynamicSharedInformerFactory(w.dyn, 0)
	handler := cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(o any, initial bool) { w.observe(o.(*unstructured.Unstructured), time.Now(), initial) },
		UpdateFunc: func(_, o any) { w.observe(o.(*unstructured.Unstructured), time.Now(), false) },
	}
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			for _, gvr := range watchedKinds {
				if w.started[gvr] {
					continue
				}
				if _, err := w.dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
					continue
				}
				w.started[gvr] = true
				_, _ = factory.ForResource(gvr).Informer().AddEventHandler(handler)
				factory.Start(ctx.Done())
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, gvr := range watchedKinds {
				list, err := w.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
				if err != nil {
					continue
				}
				now := time.Now()
				w.mu.Lock()
				seen := map[string]bool{}
				for i := range list.Items {
					u := &list.Items[i]
					k, ok := objectKey(u), readyNow(u)
					seen[k] = true
					if ok && !w.pollReady[k] {
						w.pollTurned[k] = append(w.pollTurned[k], now)
					}
					w.pollReady[k] = ok
				}
				for k := range w.pollReady {
					if !seen[k] && strings.HasPrefix(k, kindOf(gvr)+" ") {
						w.pollReady[k] = false // deleted
					}
				}
				w.mu.Unlock()
			}
		}
	}()
}

// kindOf names a watched resource's kind as objectKey spells it.
func kindOf(gvr schema.GroupVersionResource) string {
	return map[string]string{
		"nodes": "Node", "deployments": "Deployment", "daemonsets": "DaemonSet", "statefulsets": "StatefulSet",
		"gitrepositories": "GitRepository", "helmrepositories": "HelmRepository", "ocirepositories": "OCIRepository",
		"kustomizations": "Kustomization", "helmreleases": "HelmRelease", "fluxinstances": "FluxInstance",
	}[gvr.Resource]
}

// agentSample is one object the agent reported Ready after the watcher saw it turn Ready.
type agentSample struct {
	Phase, Object  string
	Agent, Poll2s  time.Duration // detection latency of the agent and of the 2-second poll
	LastOfItsPhase bool
}

type agentRunResult struct {
	samples      []agentSample
	cpu, rerun   time.Duration
	rss          usage
	phaseWaits   int
	handoverWall time.Duration
}

// usage is an agent process's peak memory: getrusage's peak RSS, and the peaks of its two
// parts (sampled): anonymous memory (heap, stacks) and the binary's own file-backed pages.
type usage struct {
	peak, anon, file int64
}

// agentEnv holds what every run shares: the binaries.
type agentEnv struct {
	bootcore, peakrss, root string
}

func newAgentEnv(b *testing.B) *agentEnv {
	b.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(scratch, "bin")
	e := &agentEnv{root: root}
	if e.bootcore, err = tool("BENCH_BOOTCORE", bin, "bootcore", "github.com/bootcore-dev/bootcore/cmd/bootcore"); err != nil {
		b.Fatal(err)
	}
	if e.peakrss, err = tool("BENCH_PEAKRSS", bin, "peakrss", "github.com/bootcore-dev/bootcore/bench/cmd/peakrss"); err != nil {
		b.Fatal(err)
	}
	return e
}

// agentProc runs `bootcore agent` through peakrss; onEvent sees each event as it is printed.
func (e *agentEnv) agentProc(l *labenv.Lab, dir, kubeconfig, name string, onEvent func(agent.Event)) ([]agent.Event, time.Duration, usage, time.Duration, error) {
	rssFile := filepath.Join(dir, fmt.Sprintf("rss-%d", time.Now().UnixNano()))
	args := []string{rssFile, e.bootcore, "agent", "--cluster", name, "--repo", l.Repo, "--kubeconfig", kubeconfig, "-o", "json",
		"--bundle-dir", filepath.Join(dir, "bundle"), "--cache-dir", filepath.Join(dir, "cache"), "--flux-install", agent.InstallHelm}
	cmd := exec.Command(e.peakrss, args...)
	cmd.Env = append(os.Environ(), append(l.Env, "HOME="+dir)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, usage{}, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, usage{}, 0, err
	}
	var events []agent.Event
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev agent.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, 0, usage{}, 0, fmt.Errorf("agent printed a line that is not an event: %q", sc.Text())
		}
		events = append(events, ev)
		if onEvent != nil {
			onEvent(ev)
		}
	}
	err = cmd.Wait()
	wall := time.Since(start)
	if err != nil {
		return events, wall, usage{}, 0, fmt.Errorf("bootcore agent: %v\n%s", err, stderr.String())
	}
	rssData, err := os.ReadFile(rssFile)
	if err != nil {
		return events, wall, usage{}, 0, err
	}
	cpuData, err := os.ReadFile(rssFile + ".cpu")
	if err != nil {
		return events, wall, usage{}, 0, err
	}
	var u usage
	u.peak, _ = strconv.ParseInt(string(rssData), 10, 64)
	cpu, _ := strconv.ParseInt(string(cpuData), 10, 64)
	for _, part := range []struct {
		ext string
		v   *int64
	}{{".anon", &u.anon}, {".file", &u.file}} {
		data, err := os.ReadFile(rssFile + part.ext)
		if err != nil {
			return events, wall, u, 0, err
		}
		*part.v, _ = strconv.ParseInt(string(data), 10, 64)
	}
	return events, wall, u, time.Duration(cpu), nil
}

// handOver runs one full hand-over on a fresh cluster and the read-only re-run.
func (e *agentEnv) handOver(b *testing.B, i int) agentRunResult {
	const name = "infra" // the lab's cluster on the Talos v1.13 contract, as TestAgentHelmInfra
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(scratch, fmt.Sprintf("agent-%d-", i))
	if err != nil {
		b.Fatal(err)
	}
	c, err := testbed.Start(ctx, testbed.Options{Name: name})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Stop(); _ = os.RemoveAll(c.RunDir) }()
	git, err := testbed.StartGitServer(filepath.Join(dir, "git"))
	if err != nil {
		b.Fatal(err)
	}
	defer git.Close()
	l, err := labenv.Prepare(ctx, e.root, filepath.Join(dir, "lab"), git, map[string]*testbed.Cluster{name: c}, fmt.Sprintf("bench-token-%d", i))
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		b.Fatal(err)
	}
	w := newReadyWatcher(dyn)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w.run(wctx)

	// As integration/e2e: the agent first, the Talos boot once it waits for the control plane.
	waiting := make(chan struct{})
	var once sync.Once
	type done struct {
		events   []agent.Event
		wall     time.Duration
		rss      usage
		cpu      time.Duration
		err      error
		finished time.Time
	}
	result := make(chan done, 1)
	go func() {
		var d done
		d.events, d.wall, d.rss, d.cpu, d.err = e.agentProc(l, dir, c.KubeconfigPath, name, func(ev agent.Event) {
			if ev.Phase == agent.PhaseWaitControlPlane || ev.Type == agent.EventResult {
				once.Do(func() { close(waiting) })
			}
		})
		result <- d
	}()
	<-waiting
	bootErr := l.BootTalos(ctx, c, name, 3*time.Minute)
	if bootErr == nil {
		if _, err := c.StartFlux(ctx); err != nil {
			bootErr = err
		} else {
			bootErr = c.StartFluxOperator(ctx)
		}
	}
	d := <-result
	if bootErr != nil {
		b.Fatal(bootErr)
	}
	if d.err != nil {
		b.Fatal(d.err)
	}
	deadline := time.Now().Add(5 * time.Second) // for the 2-second loop to catch up
	r := agentRunResult{cpu: d.cpu, rss: d.rss, handoverWall: d.wall}
	// A sample is an object the agent was already waiting for (named in a progress event of
	// its phase: "waiting for Kind ns/name (...)", "control-plane nodes not Ready: name (...)")
	// when the watcher saw it turn Ready.
	type pending struct {
		ev    agent.Event
		since time.Time
	}
	var waits []pending
	for _, ev := range d.events {
		if ev.Type != agent.EventReady || ev.Object == "" {
			continue
		}
		for _, p := range d.events {
			if p.Type == agent.EventProgress && p.Phase == ev.Phase && p.Time.Before(ev.Time) && strings.Contains(p.Message, strings.TrimPrefix(ev.Object, "Node ")+" (") {
				waits = append(waits, pending{ev, p.Time})
				break
			}
		}
	}
	for _, p := range waits { // wait (with a deadline) until the 2-second loop saw them too
		for time.Now().Before(deadline) {
			w.mu.Lock()
			at := turned(w.watchTurned[p.ev.Object], p.since, p.ev.Time)
			caught := at.IsZero() || len(w.pollTurned[p.ev.Object]) > 0 && w.pollTurned[p.ev.Object][len(w.pollTurned[p.ev.Object])-1].After(at)
			w.mu.Unlock()
			if caught {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	w.mu.Lock()
	last := map[string]int{} // phase -> index of the sample whose object turned Ready last
	var turnedAt []time.Time
	for _, p := range waits {
		at := turned(w.watchTurned[p.ev.Object], p.since, p.ev.Time)
		if at.IsZero() {
			continue // the watcher did not see it turn Ready while the agent waited
		}
		s := agentSample{Phase: p.ev.Phase, Object: p.ev.Object, Agent: p.ev.Time.Sub(at), Poll2s: -1}
		for _, t := range w.pollTurned[p.ev.Object] {
			if !t.Before(at) {
				s.Poll2s = t.Sub(at)
				break
			}
		}
		if j, ok := last[p.ev.Phase]; !ok || turnedAt[j].Before(at) {
			last[p.ev.Phase] = len(r.samples)
		}
		r.samples = append(r.samples, s)
		turnedAt = append(turnedAt, at)
	}
	w.mu.Unlock()
	for _, j := range last {
		r.samples[j].LastOfItsPhase = true
	}
	r.phaseWaits = len(last)

	// Re-run on the handed-over cluster with credentials that cannot write.
	ro, err := c.ReadOnlyKubeconfig(ctx, "bench-readonly")
	if err != nil {
		b.Fatal(err)
	}
	events, wall, _, _, err := e.agentProc(l, dir, ro, name, nil)
	if err != nil {
		b.Fatal(err)
	}
	if res := events[len(events)-1]; res.Type != agent.EventResult || !strings.Contains(res.Message, "already handed over") {
		b.Fatalf("re-run: %+v", res)
	}
	r.rerun = wall
	return r
}

func percentile(x []float64, p float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	i := int(p*float64(len(s))+0.5) - 1 // nearest rank
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

// BenchmarkAgent: b.N hand-overs of fresh test-bed clusters (see the top of this file).
func BenchmarkAgent(b *testing.B) {
	e := newAgentEnv(b)
	var agentMs, pollMs, lastMs, cpus, reruns, rss, anon, file []float64
	// BENCH_AGENT_RUNS hand-overs in one call (run with -benchtime 1x: with Nx the testing
	// package calls a benchmark with b.N=1 first and then with N).
	runs := b.N
	if n, err := strconv.Atoi(os.Getenv("BENCH_AGENT_RUNS")); err == nil && n > runs {
		runs = n
	}
	b.ResetTimer()
	for i := 0; i < runs; i++ {
		r := e.handOver(b, i)
		for _, s := range r.samples {
			agentMs = append(agentMs, float64(s.Agent)/1e6)
			if s.Poll2s >= 0 {
				pollMs = append(pollMs, float64(s.Poll2s)/1e6)
			}
			if s.LastOfItsPhase {
				lastMs = append(lastMs, float64(s.Agent)/1e6)
			}
			fmt.Printf("bench-info: agent-sample=run=%d phase=%s object=%q agent-ms=%.1f poll2s-ms=%.1f last=%v\n",
				i, s.Phase, s.Object, float64(s.Agent)/1e6, float64(s.Poll2s)/1e6, s.LastOfItsPhase)
		}
		cpus = append(cpus, r.cpu.Seconds())
		reruns = append(reruns, r.rerun.Seconds())
		rss = append(rss, float64(r.rss.peak))
		anon = append(anon, float64(r.rss.anon))
		file = append(file, float64(r.rss.file))
		fmt.Printf("bench-info: agent-run=run=%d samples=%d cpu-s=%.3f peak-rss-bytes=%d anon-peak-bytes=%d file-peak-bytes=%d handover-s=%.1f rerun-s=%.3f\n",
			i, len(r.samples), r.cpu.Seconds(), r.rss.peak, r.rss.anon, r.rss.file, r.handoverWall.Seconds(), r.rerun.Seconds())
	}
	b.StopTimer()
	b.ReportMetric(float64(len(agentMs)), "samples")
	b.ReportMetric(percentile(agentMs, 0.5), "detect-p50-ms")
	b.ReportMetric(percentile(agentMs, 0.95), "detect-p95-ms")
	b.ReportMetric(percentile(pollMs, 0.5), "poll2s-p50-ms")
	b.ReportMetric(percentile(pollMs, 0.95), "poll2s-p95-ms")
	b.ReportMetric(percentile(lastMs, 0.95), "last-p95-ms")
	b.ReportMetric(float64(len(lastMs)), "last-samples")
	b.ReportMetric(percentile(cpus, 1), "cpu-max-s")
	b.ReportMetric(percentile(cpus, 0.5), "cpu-p50-s")
	b.ReportMetric(percentile(rss, 1)/(1<<20), "rss-max-MiB")
	b.ReportMetric(percentile(anon, 1)/(1<<20), "rss-anon-max-MiB")
	b.ReportMetric(percentile(file, 1)/(1<<20), "rss-file-max-MiB")
	b.ReportMetric(percentile(reruns, 0.5), "rerun-p50-s")
	b.ReportMetric(percentile(reruns, 1), "rerun-max-s")
}
