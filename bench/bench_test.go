package bench

// Benchmarks of issue #8 (`make bench` runs them and bench/cmd/report writes
// docs/benchmarks.md; `make bench-smoke` runs each once on small inputs):
//
//	BenchmarkGenVsHelm    bootcore gen (built binary, the lab's 2 clusters on the published
//	                      charts) vs the helm template pipeline, alternating, ratio per pair;
//	                      peak RSS of gen
//	BenchmarkGenVsFloor   gen.Run in-process vs Helm's engine.Render (and action.Install
//	                      client-only) of the same charts and values, alternating, ratio per pair
//	BenchmarkGen          gen.Run alone (for -cpuprofile/-memprofile)
//	BenchmarkGenStages    the steps of gen one by one, to say what dominates
//	BenchmarkGenFleet     gen.Run on a 50-cluster fleet in 3 flavours against a one-cluster
//	                      fleet, alternating, ratio per pair (fleet_test.go)
//	BenchmarkTreeLoad     fluxtree.Load of trees with 50/500/2000 Kustomizations (the parse)
//	BenchmarkCheck        check.Run of the same trees (the lint)
//	BenchmarkAgent        bootcore agent hand-overs on the test bed: detection latency against
//	                      an independent watcher and a 2-second poll loop, CPU, peak RSS,
//	                      read-only re-run (agent_test.go)
//
// The gen benchmarks run on the lab tree and the published charts (newChartEnv); the fleet
// (WriteFleet) and the scale trees (WriteScaleTree) are synthetic, the fleet on the published
// charts too.
//
// Environment: BENCH_SMOKE=1 (small inputs); BENCH_HELM, BENCH_BOOTCORE, BENCH_CRDFILTER,
// BENCH_PEAKRSS (binaries: bootcore, crdfilter and peakrss are built when unset, helm defaults to
// integration/.testbin/bin/helm and the pipeline benchmark is skipped without it); BENCH_SIZES
// (comma-separated scale-tree sizes); BENCH_FLEET (clusters of the fleet benchmark).

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/integration/chartmirror"
	"github.com/bootcore-dev/bootcore/internal/chartsource"
	"github.com/bootcore-dev/bootcore/internal/check"
	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/render"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/talos"
)

var smoke = os.Getenv("BENCH_SMOKE") != ""

// rssRuns is how many times BenchmarkGenVsHelm measures gen's peak RSS.
var rssRuns = map[bool]int{false: 3, true: 1}[smoke]

// scratch is the benchmarks' temporary directory (TestMain removes it).
var scratch string

func TestMain(m *testing.M) {
	flag.Parse()
	load, started := loadavg(), time.Now().UTC().Format("2006-01-02 15:04 UTC")
	describe := "unknown"
	if out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		describe = strings.TrimSpace(string(out))
	}
	var err error
	if scratch, err = os.MkdirTemp("", "bootcore-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	// bench-info lines are read by bench/cmd/report; printed last so that they never split a
	// benchmark's result line.
	info("loadavg-start", load)
	info("loadavg-end", loadavg())
	info("smoke", strconv.FormatBool(smoke))
	info("started", started)
	info("bootcore", describe)
	if chartSet.done {
		for _, c := range chartSet.env.info.Charts {
			info("chart", fmt.Sprintf("%s templates=%d crds=%d crd-bytes=%d bytes=%d", c.Name, c.Templates, c.CRDs, c.CRDBytes, c.Bytes))
		}
		info("gen-report", strconv.Quote(strings.Join(chartSet.env.genReport, "\n")))
		info("jobs", strconv.Itoa(len(chartSet.env.jobs)))
		filtered := 0
		for _, j := range chartSet.env.jobs {
			if j.crds {
				filtered++
			}
		}
		info("filter-jobs", strconv.Itoa(filtered))
		if chartSet.env.helm != "" {
			if out, err := exec.Command(chartSet.env.helm, "version", "--short").Output(); err == nil {
				info("helm-version", strings.TrimSpace(string(out)))
			}
		}
	}
	if chartSet.env != nil && chartSet.env.mirror != nil {
		chartSet.env.mirror.Close()
	}
	closeFleets()
	os.RemoveAll(scratch)
	os.Exit(code)
}

func info(key, value string) { fmt.Printf("bench-info: %s=%s\n", key, value) }

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// --- the chart set and what runs on it -------------------------------------------------------

// chartEnv is the chart set (the lab tree on the published charts) with everything the
// benchmarks need around it.
type chartEnv struct {
	repo, cache string
	mirror      *chartmirror.Mirror
	info        *ChartRepoInfo
	jobs        []job                   // helm template invocations: one per chart and cluster
	charts      map[string]*chart.Chart // by chart directory, loaded once (engine floor)
	genReport   []string                // gen's report on the chart set, for the document
	validations []validation            // one per cluster: its final control-plane config (floor)

	bootcore, crdfilter, peakrss, helm string // binaries; helm is "" when unavailable
	helmEnv                            []string
}

// job is one `helm template` run of the pipeline: a chart of one cluster with its resolved values.
type job struct {
	cluster, release, namespace, chartDir string
	values                                map[string]any
	valuesFile                            string
	crds                                  bool // a phase-0 source: --include-crds, then the CRD filter
}

var chartSet struct {
	sync.Mutex
	done bool
	env  *chartEnv
	err  error
}

func chartRepo(b *testing.B) *chartEnv {
	b.Helper()
	chartSet.Lock()
	defer chartSet.Unlock()
	if !chartSet.done {
		chartSet.env, chartSet.err = newChartEnv()
		chartSet.done = true
	}
	if chartSet.err != nil {
		b.Fatal(chartSet.err)
	}
	return chartSet.env
}

// newChartEnv sets up the chart set: a copy of the lab tree (integration/testdata/lab), whose
// HelmReleases name the published charts at their upstream repositories, with its spec's
// mirrors pointed at a loopback mirror of integration/testdata/upstream-charts started here
// (an air-gapped site's setup). gen fetches each chart once into the cache and later runs
// serve it from there (locked digests): no network in the timed runs.
func newChartEnv() (*chartEnv, error) {
	charts, err := filepath.Abs(upstreamCharts)
	if err != nil {
		return nil, err
	}
	m, err := chartmirror.Start("127.0.0.1:0", charts, filepath.Join(scratch, "mirror"), chartmirror.Upstreams)
	if err != nil {
		return nil, err
	}
	e := &chartEnv{repo: filepath.Join(scratch, "lab"), mirror: m}
	if err := copyTree(labTree, e.repo); err != nil {
		return nil, err
	}
	specPath := filepath.Join(e.repo, spec.DefaultPath)
	data, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(specPath, bytes.ReplaceAll(data, []byte(chartmirror.DefaultAddr), []byte(m.Addr)), 0o644); err != nil {
		return nil, err
	}
	if _, err := e.prepare(); err != nil {
		return nil, err
	}
	e.info = &ChartRepoInfo{}
	seen := map[string]bool{}
	for _, j := range e.jobs {
		if seen[j.chartDir] {
			continue
		}
		seen[j.chartDir] = true
		ch := e.charts[j.chartDir]
		fi, err := os.Stat(j.chartDir)
		if err != nil {
			return nil, err
		}
		c := ChartInfo{Name: ch.Name() + " " + ch.Metadata.Version, Templates: len(ch.Templates), Bytes: int(fi.Size())}
		if j.crds {
			objs, err := render.Render(render.Input{Chart: ch, ReleaseName: j.release, Namespace: j.namespace, Values: j.values, KubeVersion: KubeVersion, IncludeCRDDir: true})
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					data, _ := render.Encode([]*unstructured.Unstructured{o.Unstructured})
					c.CRDs++
					c.CRDBytes += len(data)
				}
			}
		}
		e.info.Charts = append(e.info.Charts, c)
	}
	return e, nil
}

// labTree is the lab repository the chart set copies.
const labTree = "../integration/testdata/lab"

// copyTree copies the files under src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

// prepare resolves the pipeline's jobs on e.repo, loads their charts, runs gen once for its
// report and finds the binaries.
func (e *chartEnv) prepare() (*chartEnv, error) {
	ctx := context.Background()
	e.cache, e.charts = filepath.Join(scratch, "cache"), map[string]*chart.Chart{}
	var err error
	if e.jobs, err = resolveJobs(ctx, e.repo, filepath.Join(scratch, "values")); err != nil {
		return nil, err
	}
	for _, j := range e.jobs {
		if e.charts[j.chartDir] == nil {
			if e.charts[j.chartDir], err = loader.Load(j.chartDir); err != nil {
				return nil, err
			}
		}
	}
	// The chart set must pass gen; its report goes into the document.
	out, err := gen.Run(ctx, gen.Options{Repo: e.repo, CacheDir: e.cache})
	if err != nil {
		return nil, fmt.Errorf("gen on the chart set: %w", err)
	}
	var report bytes.Buffer
	out.Print(&report)
	e.genReport = strings.Split(strings.TrimSpace(report.String()), "\n")
	if e.validations, err = finalConfigs(e.repo, out); err != nil {
		return nil, err
	}

	bin := filepath.Join(scratch, "bin")
	if e.bootcore, err = tool("BENCH_BOOTCORE", bin, "bootcore", "github.com/bootcore-dev/bootcore/cmd/bootcore"); err != nil {
		return nil, err
	}
	if e.crdfilter, err = tool("BENCH_CRDFILTER", bin, "crdfilter", "github.com/bootcore-dev/bootcore/bench/cmd/crdfilter"); err != nil {
		return nil, err
	}
	if e.peakrss, err = tool("BENCH_PEAKRSS", bin, "peakrss", "github.com/bootcore-dev/bootcore/bench/cmd/peakrss"); err != nil {
		return nil, err
	}
	e.helm = os.Getenv("BENCH_HELM")
	if e.helm == "" {
		if p, err := filepath.Abs("../integration/.testbin/bin/helm"); err == nil {
			if _, err := os.Stat(p); err == nil {
				e.helm = p
			}
		}
	}
	home := filepath.Join(scratch, "helm")
	e.helmEnv = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	return e, nil
}

// tool returns the binary named by env, or builds pkg into dir.
func tool(env, dir, name, pkg string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	out := filepath.Join(dir, name)
	// The tag the Makefile builds bootcore with (see BUILD_TAGS there).
	cmd := exec.Command("go", "build", "-tags", "kustomize_disable_go_plugin_support", "-o", out, pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out, nil
}

// resolveJobs computes, like gen, each chart's release name, namespace and values per cluster
// (HelmRelease values after substitution, the spec's phase-0 values, the boot-only CNI
// values), and writes each job's values file.
func resolveJobs(ctx context.Context, repo, valuesDir string) ([]job, error) {
	s, err := spec.Load(filepath.Join(repo, spec.DefaultPath))
	if err != nil {
		return nil, err
	}
	var jobs []job
	for _, c := range s.Clusters {
		tree, err := fluxtree.Load(ctx, repo, c.FluxSystem)
		if err != nil {
			return nil, err
		}
		add := func(id string, extra map[string]any, crds bool, boot string) error {
			rel, err := tree.Release(id)
			if err != nil {
				return err
			}
			values := fluxtree.MergeValues(rel.Values, extra)
			if boot != "" {
				data, err := os.ReadFile(filepath.Join(repo, boot))
				if err != nil {
					return err
				}
				vars, err := tree.Vars(ctx, rel.Object)
				if err != nil {
					return err
				}
				if data, err = fluxtree.Substitute(data, vars); err != nil {
					return err
				}
				overrides := map[string]any{}
				if err := yaml.Unmarshal(data, &overrides); err != nil {
					return err
				}
				values = fluxtree.MergeValues(values, overrides)
			}
			j := job{
				cluster: c.Name, release: rel.HR.GetReleaseName(), namespace: rel.HR.GetReleaseNamespace(),
				chartDir: chartPath(repo, rel), values: values, crds: crds,
				valuesFile: filepath.Join(valuesDir, c.Name+"-"+rel.HR.GetReleaseName()+".yaml"),
			}
			data, err := yaml.Marshal(values)
			if err == nil {
				err = os.MkdirAll(valuesDir, 0o755)
			}
			if err == nil {
				err = os.WriteFile(j.valuesFile, data, 0o644)
			}
			jobs = append(jobs, j)
			return err
		}
		for _, src := range s.CRDs {
			if err := add(src.HelmRelease, src.Values, true, ""); err != nil {
				return nil, err
			}
		}
		if err := add(s.CNI.HelmRelease, s.CNI.Values, false, c.CNIValues); err != nil {
			return nil, err
		}
		if s.DNS != nil {
			if err := add(s.DNS.HelmRelease, s.DNS.Values, false, ""); err != nil {
				return nil, err
			}
		}
	}
	return jobs, nil
}

// upstreamCharts holds the published chart packages the lab tree's HelmReleases name.
const upstreamCharts = "../integration/testdata/upstream-charts"

// chartPath is what `helm template` is given for a release's chart: the chart directory of a
// GitRepository chart, or the published package of a repository chart (what the lab's mirror
// serves, named <chart>-<version>.tgz).
func chartPath(repo string, rel *fluxtree.Release) string {
	if rel.Chart.Kind == chartsource.KindGitRepository {
		return filepath.Join(repo, filepath.FromSlash(rel.Chart.Chart))
	}
	p, _ := filepath.Abs(filepath.Join(upstreamCharts, path.Base(rel.Chart.Chart)+"-"+rel.Chart.Version+".tgz"))
	return p
}

// command returns exec.Command(name, args...), run through peakrss when measure is set.
func (e *chartEnv) command(measure bool, name string, args ...string) (*exec.Cmd, func() (int64, error)) {
	if !measure {
		return exec.Command(name, args...), func() (int64, error) { return 0, nil }
	}
	f, err := os.CreateTemp(scratch, "rss-")
	if err != nil {
		panic(err)
	}
	f.Close()
	return exec.Command(e.peakrss, append([]string{f.Name(), name}, args...)...), func() (int64, error) {
		defer os.Remove(f.Name())
		defer os.Remove(f.Name() + ".cpu")
		data, err := os.ReadFile(f.Name())
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(string(data), 10, 64)
	}
}

// runGenBinary runs `bootcore gen` into a fresh directory out; with measure, it returns the
// process's peak RSS in bytes.
func (e *chartEnv) runGenBinary(out string, measure bool) (int64, error) {
	cmd, rss := e.command(measure, e.bootcore, "gen", "--repo", e.repo, "--out", out, "--cache-dir", e.cache)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("bootcore gen: %v\n%s", err, stderr.String())
	}
	return rss()
}

// runHelmPipeline runs `helm template` once per chart and cluster, piping phase-0 sources
// through the CRD filter, writing each result under out, with at most `parallel` jobs at a
// time. With measure, it returns the largest peak RSS of any helm process.
func (e *chartEnv) runHelmPipeline(out string, parallel int, measure bool) (int64, error) {
	var (
		mu    sync.Mutex
		peak  int64
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, parallel)
	)
	for _, j := range e.jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rss, err := e.helmTemplate(j, out, measure)
			mu.Lock()
			defer mu.Unlock()
			peak = max(peak, rss)
			if first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	return peak, first
}

func (e *chartEnv) helmTemplate(j job, out string, measure bool) (int64, error) {
	dst := filepath.Join(out, j.cluster, j.release+".yaml")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	f, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	args := []string{"template", j.release, j.chartDir, "--namespace", j.namespace, "--kube-version", KubeVersion, "-f", j.valuesFile}
	if j.crds {
		args = append(args, "--include-crds")
	}
	helm, rss := e.command(measure, e.helm, args...)
	helm.Env = e.helmEnv
	var stderr bytes.Buffer
	helm.Stderr = &stderr
	if !j.crds {
		helm.Stdout = f
		if err := helm.Run(); err != nil {
			return 0, fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return rss()
	}
	// helm template ... | crdfilter > dst
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	filter := exec.Command(e.crdfilter)
	filter.Stdin, filter.Stdout, filter.Stderr = r, f, &stderr
	helm.Stdout = w
	if err := helm.Start(); err != nil {
		r.Close()
		w.Close()
		return 0, err
	}
	ferr := filter.Start()
	r.Close()
	w.Close()
	herr := helm.Wait()
	if ferr == nil {
		ferr = filter.Wait()
	}
	if herr != nil || ferr != nil {
		return 0, fmt.Errorf("helm %s | crdfilter: %v, %v\n%s", strings.Join(args, " "), herr, ferr, stderr.String())
	}
	return rss()
}

// validation is one Talos validation of a cluster's final control-plane config: machinery's
// config with the static patches and gen's control-plane patch applied, validated.
type validation struct {
	opts  talos.Options
	patch []byte
}

// finalConfigs prepares each cluster's validation from gen's output.
func finalConfigs(repo string, out *gen.Output) ([]validation, error) {
	s, err := spec.Load(filepath.Join(repo, spec.DefaultPath))
	if err != nil {
		return nil, err
	}
	var vs []validation
	for _, c := range s.Clusters {
		v := validation{opts: talos.Options{ClusterName: c.Name, Endpoint: c.Endpoint, TalosVersion: c.TalosVersion, KubernetesVersion: c.KubernetesVersion}}
		for _, p := range append(slices.Clone(c.Patches), c.ControlPlanePatches...) {
			data, err := os.ReadFile(filepath.Join(repo, p))
			if err != nil {
				return nil, err
			}
			v.opts.StaticPatches = append(v.opts.StaticPatches, talos.StaticPatch{Name: p, Data: data, Role: talos.RoleControlPlane})
		}
		if v.patch = out.Files[path.Join(s.Output, c.Name, "controlplane.yaml")]; v.patch == nil {
			return nil, fmt.Errorf("gen wrote no control-plane patch for cluster %s", c.Name)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// floor is what gen cannot skip: Helm's engine render of every job (engineFloor) and one Talos
// validation of each cluster's final control-plane config.
func (e *chartEnv) floor() error {
	if err := e.engineFloor(); err != nil {
		return err
	}
	for _, v := range e.validations {
		if _, err := talos.MachineConfig(v.opts, talos.RoleControlPlane, v.patch); err != nil {
			return err
		}
	}
	return nil
}

// engineFloor renders every job with Helm's engine alone: charts loaded, values in memory,
// no file I/O, no YAML parsing of the result.
func (e *chartEnv) engineFloor() error {
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	for _, j := range e.jobs {
		ch := e.charts[j.chartDir]
		vals, err := chartutil.ToRenderValues(ch, j.values, chartutil.ReleaseOptions{Name: j.release, Namespace: j.namespace, Revision: 1, IsInstall: true}, caps)
		if err != nil {
			return err
		}
		if _, err := engine.Render(ch, vals); err != nil {
			return err
		}
	}
	return nil
}

// sdkFloor renders every job as `helm template` does in-process (action.Install, client-only,
// dry-run): the engine plus Helm's manifest sorting and release assembly.
func (e *chartEnv) sdkFloor() error {
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return err
	}
	for _, j := range e.jobs {
		install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
		install.ClientOnly, install.DryRun, install.Replace, install.DisableHooks = true, true, true, true
		install.IncludeCRDs = j.crds
		install.ReleaseName, install.Namespace, install.KubeVersion = j.release, j.namespace, kv
		if _, err := install.Run(e.charts[j.chartDir], j.values); err != nil {
			return err
		}
	}
	return nil
}

func (e *chartEnv) genRun() error {
	_, err := gen.Run(context.Background(), gen.Options{Repo: e.repo, CacheDir: e.cache})
	return err
}

// --- pairs -------------------------------------------------------------------------------

// contender is one side of a paired comparison.
type contender struct {
	name string
	run  func(i int) error
}

// pairs runs the contenders b.N times each, alternating (rotating who goes first), and reports
// the median time of each as "<name>-ms", and the median, smallest and largest of the
// per-iteration ratios of the first contender's time to each other's as "ratio-<first>/<name>".
func pairs(b *testing.B, cs ...contender) {
	times := make([][]float64, len(cs))
	ratios := make([][]float64, len(cs))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		took := make([]float64, len(cs))
		for k := range cs {
			c := (i + k) % len(cs)
			start := time.Now()
			err := cs[c].run(i)
			took[c] = float64(time.Since(start).Nanoseconds())
			if err != nil {
				b.Fatal(err)
			}
		}
		for c := range cs {
			times[c] = append(times[c], took[c])
			ratios[c] = append(ratios[c], took[0]/took[c])
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N), "pairs")
	for c, x := range cs {
		b.ReportMetric(median(times[c])/1e6, x.name+"-ms")
		if c > 0 {
			unit := "ratio-" + cs[0].name + "/" + x.name
			b.ReportMetric(median(ratios[c]), unit)
			b.ReportMetric(slices.Min(ratios[c]), unit+"-min")
			b.ReportMetric(slices.Max(ratios[c]), unit+"-max")
		}
	}
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkGenVsHelm: `bootcore gen` (the built binary, both clusters, as users run it) against
// the pipeline users run today: `helm template` once per chart and cluster (sequentially, and
// with one job per CPU), phase-0 charts piped through a CRD filter process. Both write their
// output into a fresh directory every time.
func BenchmarkGenVsHelm(b *testing.B) {
	e := chartRepo(b)
	if e.helm == "" {
		b.Skip("no helm binary: run `make bench` (builds helm v3.22.0 into integration/.testbin) or set BENCH_HELM")
	}
	out := func(name string, i int) string {
		return filepath.Join(scratch, "out", fmt.Sprintf("%s-%d-%d", name, b.N, i))
	}
	defer os.RemoveAll(filepath.Join(scratch, "out"))
	pairs(b,
		contender{"gen", func(i int) error { _, err := e.runGenBinary(out("gen", i), false); return err }},
		contender{"helm", func(i int) error { _, err := e.runHelmPipeline(out("helm", i), 1, false); return err }},
		contender{"helm-parallel", func(i int) error {
			_, err := e.runHelmPipeline(out("helmpar", i), runtime.NumCPU(), false)
			return err
		}},
	)
	// Peak RSS, outside the timed pairs (measured through peakrss): gen 3 times, the pipeline once.
	var genRSS int64
	for i := 0; i < rssRuns; i++ {
		rss, err := e.runGenBinary(out("gen-rss", i), true)
		if err != nil {
			b.Fatal(err)
		}
		genRSS = max(genRSS, rss)
	}
	helmRSS, err := e.runHelmPipeline(out("helm-rss", 0), 1, true)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(genRSS)/(1<<20), "gen-rss-MiB")
	b.ReportMetric(float64(rssRuns), "gen-rss-runs")
	b.ReportMetric(float64(helmRSS)/(1<<20), "helm-rss-MiB")
}

// BenchmarkGenVsFloor: gen.Run in-process (everything gen does, in memory; the Talos secrets
// bundle is cached after the first run, as within one process) against the Helm engine alone
// rendering the same charts with the same values once per cluster (the floor), and against
// action.Install client-only (what `helm template` runs in-process).
func BenchmarkGenVsFloor(b *testing.B) {
	e := chartRepo(b)
	pairs(b,
		contender{"gen", func(int) error { return e.genRun() }},
		contender{"floor", func(int) error { return e.floor() }},
		contender{"engine", func(int) error { return e.engineFloor() }},
		contender{"sdk", func(int) error { return e.sdkFloor() }},
	)
}

// BenchmarkGen is gen.Run alone, for profiles:
//
//	go test -run '^$' -bench '^BenchmarkGen$' -benchtime 5x -cpuprofile cpu.prof ./bench
func BenchmarkGen(b *testing.B) {
	e := chartRepo(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.genRun(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenStages times the steps gen takes for both clusters, one at a time, with the
// exported pieces gen is made of. Their sum approximates gen.Run (gen's own glue is not timed).
func BenchmarkGenStages(b *testing.B) {
	e := chartRepo(b)
	ctx := context.Background()
	s, err := spec.Load(filepath.Join(e.repo, spec.DefaultPath))
	if err != nil {
		b.Fatal(err)
	}
	type clusterState struct {
		c          spec.Cluster
		tree       *fluxtree.Tree
		crdIn      []render.Input
		cniIn      render.Input
		dnsIn      *render.Input
		sources    []chartsource.Source
		crds, cni  []*unstructured.Unstructured
		dns        []*unstructured.Unstructured
		opts       talos.Options
		patches    *talos.Patches
		releaseIDs []string
	}
	var states []*clusterState
	lock, err := chartsource.LoadLock(filepath.Join(e.repo, s.Lock))
	if err != nil {
		b.Fatal(err)
	}
	fetcher := &chartsource.Fetcher{RepoRoot: e.repo, CacheDir: e.cache, Lock: lock}
	for _, m := range s.Mirrors {
		fetcher.Mirrors = append(fetcher.Mirrors, chartsource.Mirror{Upstream: m.Upstream, Mirror: m.Mirror})
	}
	sourceOf := func(rel *fluxtree.Release) chartsource.Source {
		return chartsource.Source{Kind: rel.Chart.Kind, URL: rel.Chart.URL, Chart: rel.Chart.Chart, Version: rel.Chart.Version, Digest: rel.Chart.Digest, Origin: rel.Origin()}
	}
	fetch := func(rel *fluxtree.Release) (*chart.Chart, error) {
		res, err := fetcher.Fetch(ctx, sourceOf(rel))
		if err != nil {
			return nil, err
		}
		return res.Chart, nil
	}
	jobs := map[string]job{}
	for _, j := range e.jobs {
		jobs[j.cluster+"/"+j.release] = j
	}
	// Prepare every stage's input by running gen's steps once.
	for _, c := range s.Clusters {
		st := &clusterState{c: c}
		if st.tree, err = fluxtree.Load(ctx, e.repo, c.FluxSystem); err != nil {
			b.Fatal(err)
		}
		for _, src := range s.CRDs {
			rel, err := st.tree.Release(src.HelmRelease)
			if err != nil {
				b.Fatal(err)
			}
			ch, err := fetch(rel)
			if err != nil {
				b.Fatal(err)
			}
			in := render.Input{Chart: ch, ReleaseName: rel.HR.GetReleaseName(), Namespace: rel.HR.GetReleaseNamespace(),
				Values: jobs[c.Name+"/"+rel.HR.GetReleaseName()].values, KubeVersion: c.KubernetesVersion, IncludeCRDDir: true}
			st.crdIn = append(st.crdIn, in)
			st.sources = append(st.sources, sourceOf(rel))
			objs, err := render.Render(in)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					st.crds = append(st.crds, o.Unstructured)
				}
			}
			st.releaseIDs = append(st.releaseIDs, src.HelmRelease)
		}
		rel, err := st.tree.Release(s.CNI.HelmRelease)
		if err != nil {
			b.Fatal(err)
		}
		ch, err := fetch(rel)
		if err != nil {
			b.Fatal(err)
		}
		st.cniIn = render.Input{Chart: ch, ReleaseName: rel.HR.GetReleaseName(), Namespace: rel.HR.GetReleaseNamespace(),
			Values: jobs[c.Name+"/"+rel.HR.GetReleaseName()].values, KubeVersion: c.KubernetesVersion}
		objs, err := render.Render(st.cniIn)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range objs {
			st.cni = append(st.cni, o.Unstructured)
		}
		st.releaseIDs = append(st.releaseIDs, s.CNI.HelmRelease)
		st.sources = append(st.sources, sourceOf(rel))
		crdBytes, _ := render.Encode(st.crds)
		cniBytes, _ := render.Encode(st.cni)
		st.opts = talos.Options{ClusterName: c.Name, Endpoint: c.Endpoint, TalosVersion: c.TalosVersion, KubernetesVersion: c.KubernetesVersion,
			DisableKubeProxy: true, Manifests: []talos.Manifest{{Name: talos.CRDManifest, Contents: crdBytes}, {Name: talos.CNIManifest, Contents: cniBytes}}}
		if s.DNS != nil {
			rel, err := st.tree.Release(s.DNS.HelmRelease)
			if err != nil {
				b.Fatal(err)
			}
			ch, err := fetch(rel)
			if err != nil {
				b.Fatal(err)
			}
			st.dnsIn = &render.Input{Chart: ch, ReleaseName: rel.HR.GetReleaseName(), Namespace: rel.HR.GetReleaseNamespace(),
				Values: jobs[c.Name+"/"+rel.HR.GetReleaseName()].values, KubeVersion: c.KubernetesVersion}
			objs, err := render.Render(*st.dnsIn)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range objs {
				st.dns = append(st.dns, o.Unstructured)
			}
			st.releaseIDs = append(st.releaseIDs, s.DNS.HelmRelease)
			st.sources = append(st.sources, sourceOf(rel))
			dnsBytes, _ := render.Encode(st.dns)
			st.opts.BootDNS = true
			st.opts.Manifests = append(st.opts.Manifests, talos.Manifest{Name: talos.DNSManifest, Contents: dnsBytes})
		}
		for _, p := range c.ControlPlanePatches {
			data, err := os.ReadFile(filepath.Join(e.repo, p))
			if err != nil {
				b.Fatal(err)
			}
			st.opts.StaticPatches = append(st.opts.StaticPatches, talos.StaticPatch{Name: p, Data: data, Role: talos.RoleControlPlane})
		}
		if st.patches, err = talos.Generate(st.opts); err != nil {
			b.Fatal(err)
		}
		if _, err := talos.Validate(st.opts, st.patches); err != nil {
			b.Fatal(err)
		}
		states = append(states, st)
	}
	stage := func(name string, f func(st *clusterState) error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				for _, st := range states {
					if err := f(st); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	stage("tree-load", func(st *clusterState) error {
		_, err := fluxtree.Load(ctx, e.repo, st.c.FluxSystem)
		return err
	})
	stage("release-resolve", func(st *clusterState) error {
		for _, id := range st.releaseIDs {
			if _, err := st.tree.Release(id); err != nil {
				return err
			}
		}
		return nil
	})
	stage("chart-load", func(st *clusterState) error {
		for _, src := range st.sources {
			if _, err := fetcher.Fetch(ctx, src); err != nil {
				return err
			}
		}
		return nil
	})
	stage("render-crd-sources", func(st *clusterState) error {
		for _, in := range st.crdIn {
			if _, err := render.Render(in); err != nil {
				return err
			}
		}
		return nil
	})
	stage("render-cni", func(st *clusterState) error { // gen does this twice (randomness guard)
		_, err := render.Render(st.cniIn)
		return err
	})
	stage("render-dns", func(st *clusterState) error { // twice in gen too
		if st.dnsIn == nil {
			return nil
		}
		_, err := render.Render(*st.dnsIn)
		return err
	})
	stage("encode", func(st *clusterState) error {
		for _, objs := range [][]*unstructured.Unstructured{st.crds, st.cni, st.dns} {
			if _, err := render.Encode(objs); err != nil {
				return err
			}
		}
		return nil
	})
	stage("talos-generate", func(st *clusterState) error {
		_, err := talos.Generate(st.opts)
		return err
	})
	stage("talos-validate", func(st *clusterState) error {
		_, err := talos.Validate(st.opts, st.patches)
		return err
	})
	// What a new process pays once per Talos contract (talos caches its validation bundle, with
	// an ECDSA service-account key, per process).
	stage("secrets-bundle", func(st *clusterState) error {
		contract, err := config.ParseContractFromVersion(st.c.TalosVersion)
		if err != nil {
			return err
		}
		_, err = secrets.NewBundle(secrets.NewFixedClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), contract, secrets.WithECDSAServiceAccountKey())
		return err
	})
}

// --- scale ---------------------------------------------------------------------------------

func scaleSizes(b *testing.B) []int {
	if v := os.Getenv("BENCH_SIZES"); v != "" {
		var out []int
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("BENCH_SIZES: %v", err)
			}
			out = append(out, n)
		}
		return out
	}
	if smoke {
		return []int{5, 10}
	}
	return []int{50, 500, 2000}
}

var scaleTrees = struct {
	sync.Mutex
	dirs map[int]string
}{dirs: map[int]string{}}

// scaleTree writes the tree of n Kustomizations once and generates its patches, so that
// check finds the committed output current.
func scaleTree(b *testing.B, n int) string {
	b.Helper()
	scaleTrees.Lock()
	defer scaleTrees.Unlock()
	if dir, ok := scaleTrees.dirs[n]; ok {
		return dir
	}
	dir := filepath.Join(scratch, fmt.Sprintf("tree-%d", n))
	if err := WriteScaleTree(dir, n); err != nil {
		b.Fatal(err)
	}
	out, err := gen.Run(context.Background(), gen.Options{Repo: dir, CacheDir: filepath.Join(scratch, "cache")})
	if err == nil {
		_, err = out.Write(dir)
	}
	if err != nil {
		b.Fatalf("gen on the tree of %d Kustomizations: %v", n, err)
	}
	scaleTrees.dirs[n] = dir
	return dir
}

// BenchmarkTreeLoad: the parse of a cluster's Flux tree (fluxtree.Load: every Kustomization
// built with Flux's kustomize wrapper and substituted), by number of app Kustomizations.
func BenchmarkTreeLoad(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("kustomizations=%d", n), func(b *testing.B) {
			dir := scaleTree(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tree, err := fluxtree.Load(context.Background(), dir, "kubernetes/clusters/scale/flux-system")
				if err != nil {
					b.Fatal(err)
				}
				if got := len(tree.Kustomizations); got < n {
					b.Fatalf("walked %d Kustomizations, want at least %d", got, n)
				}
			}
		})
	}
}

// BenchmarkCheck: the lint (`bootcore check`: tree, dependsOn, substitution, sources and values
// of every HelmRelease, gen --check, patches) of the same trees.
func BenchmarkCheck(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("kustomizations=%d", n), func(b *testing.B) {
			dir := scaleTree(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := check.Run(context.Background(), dir, filepath.Join(scratch, "cache"))
				if err != nil {
					b.Fatal(err)
				}
				if r.Errors() > 0 {
					b.Fatalf("check found %d errors: %+v", r.Errors(), r.Findings)
				}
			}
		})
	}
}
