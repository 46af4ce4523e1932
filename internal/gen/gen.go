// Package gen turns the bootstrap spec and the Flux tree into Talos machine-config patches:
// phase 0 (CRDs only) and phase 1 (the CNI and cluster DNS releases) as inline manifests, per
// cluster and role.
package gen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/chartsource"
	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/parallel"
	"github.com/bootcore-dev/bootcore/internal/render"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/talos"
)

// Options configure one gen run.
type Options struct {
	Repo     string   // directory holding bootstrap/bootcore.yaml and kubernetes/
	Clusters []string // empty: all clusters of the spec
	Out      string   // output directory; empty: the spec's output, relative to Repo
	CacheDir string   // chart cache; empty: the user cache dir
	// Log, when set, receives detail lines (bootcore gen -v): charts fetched, clusters rendered.
	Log func(format string, args ...any)
}

// Output is everything gen would write, keyed by path relative to Repo.
type Output struct {
	Files    map[string][]byte
	Clusters []ClusterReport
}

// ClusterReport is what gen tells the user about one cluster.
type ClusterReport struct {
	Name           string           `json:"name"`
	TalosVersion   string           `json:"talosVersion"`
	Manifests      []ManifestReport `json:"manifests"`
	Configs        talos.Report     `json:"configs"`
	BudgetBytes    int64            `json:"budgetBytes"`
	BootOnlyValues []string         `json:"bootOnlyValues"` // values the boot-only overrides change; Flux changes them back at hand-over
	StrippedBytes  int              `json:"strippedBytes"`  // saved by crdDescriptions: strip
	// Hooks are the CNI chart's hooks: Talos never runs them; HookFate says what happens to them.
	Hooks    []render.Hook `json:"hooks"`
	HookFate string        `json:"hookFate"`
	Skipped  []string      `json:"skipped"` // Kustomizations not walked (source outside this repository)
}

// ManifestReport sizes one inline manifest.
type ManifestReport struct {
	Name    string `json:"name"`
	Objects int    `json:"objects"`
	Bytes   int
}

// Run renders everything in memory; it writes nothing (see Write and Check).
func Run(ctx context.Context, o Options) (*Output, error) {
	// The repository does not change during a run: the walks of all clusters share one
	// in-memory snapshot of it (each on its own copy-on-write view).
	ctx = fluxtree.WithSnapshot(ctx)
	s, err := spec.Load(filepath.Join(o.Repo, spec.DefaultPath))
	if err != nil {
		return nil, err
	}
	names := o.Clusters
	if len(names) == 0 {
		names = s.ClusterNames()
	}
	for _, n := range names {
		if _, ok := s.Cluster(n); !ok {
			return nil, fmt.Errorf("unknown cluster %q: %s defines %s", n, spec.DefaultPath, strings.Join(s.ClusterNames(), ", "))
		}
	}
	out := o.Out
	if out == "" {
		out = s.Output
	}
	lockPath := filepath.Join(o.Repo, s.Lock)
	lock, err := chartsource.LoadLock(lockPath)
	if err != nil {
		return nil, err
	}
	cache := o.CacheDir
	if cache == "" {
		cache = chartsource.DefaultCacheDir()
	}
	fetcher := &chartsource.Fetcher{RepoRoot: o.Repo, CacheDir: cache, Lock: lock}
	for _, m := range s.Mirrors {
		fetcher.Mirrors = append(fetcher.Mirrors, chartsource.Mirror{Upstream: m.Upstream, Mirror: m.Mirror})
	}

	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	g := &generator{spec: s, repo: o.Repo, fetcher: fetcher, strip: s.CRDDescriptions == spec.CRDDescriptionsStrip, used: map[string]chartsource.LockEntry{}, logf: logf,
		digests: map[*chart.Chart]string{}, trees: memo[*walk]{shareErrors: true}, crdRuns: memo[[]render.Object]{shareErrors: true}}
	for _, n := range names {
		c, _ := s.Cluster(n)
		talos.Prewarm(c.TalosVersion)
	}
	// Clusters render concurrently, one per CPU (each is a few CPU-bound seconds); the output
	// and the first error are in spec order, as if they had rendered one after the other.
	type rendered struct {
		files  map[string][]byte
		report *ClusterReport
		err    error
	}
	results := make([]rendered, len(names))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _ := s.Cluster(n)
			start := time.Now()
			r := &results[i]
			if r.files, r.report, r.err = g.cluster(ctx, c); r.err == nil {
				logf("cluster %s: rendered in %s (Talos %s, Kubernetes %s)", n, time.Since(start).Round(time.Millisecond), c.TalosVersion, c.KubernetesVersion)
			}
		}()
	}
	wg.Wait()
	result := &Output{Files: map[string][]byte{}}
	for i, n := range names {
		r := results[i]
		if r.err != nil {
			return nil, fmt.Errorf("cluster %s: %w", n, r.err)
		}
		for name, data := range r.files {
			result.Files[relJoin(out, n, name)] = data
		}
		result.Clusters = append(result.Clusters, *r.report)
	}
	// The lock keeps entries of clusters not rendered in this run.
	for _, k := range fluxtree.SortedKeys(g.used) {
		lock.Record(g.used[k])
	}
	lockData, err := lock.Marshal()
	if err != nil {
		return nil, err
	}
	if len(lock.Entries) > 0 {
		result.Files[filepath.ToSlash(s.Lock)] = lockData
	}
	return result, nil
}

func relJoin(parts ...string) string { return filepath.ToSlash(filepath.Join(parts...)) }

type generator struct {
	spec    *spec.Spec
	repo    string
	fetcher *chartsource.Fetcher
	strip   bool
	used    map[string]chartsource.LockEntry
	logf    func(format string, args ...any)

	mu      sync.Mutex              // clusters render concurrently; it guards the map below
	digests map[*chart.Chart]string // content digest of each chart handed out by fetch

	// Work shared by the clusters (share.go), by everything its result depends on.
	trees    memo[*walk]               // tree walks, by flux-system entry
	charts   memo[*chartsource.Result] // fetched charts, by source (each caller gets a clone)
	crdRuns  memo[[]render.Object]     // phase-0 renders (renderCRDs)
	phase0s  memo[*crdSet]             // a cluster's whole phase 0 (phase0)
	renders  memo[*release]            // phase-1 renders with the randomness guard (phase1)
	bootVals memo[[]string]            // the report's boot-only value changes (phase1)
	patches  memo[*talos.Patches]      // talos.Generate (generate)
	talos    talos.Cache               // encodings of equal manifests in Generate and Validate
}

// walk is the tree of one flux-system entry, with the problems LoadAll collected.
type walk struct {
	tree     *fluxtree.Tree
	problems []fluxtree.Problem
}

func (g *generator) cluster(ctx context.Context, c spec.Cluster) (map[string][]byte, *ClusterReport, error) {
	if g.spec.CNI.HelmRelease == "" {
		return nil, nil, fmt.Errorf("%s: cni.helmRelease is not set: gen renders the CNI that Talos installs at boot (check runs without it)", spec.DefaultPath)
	}
	if c.Settings != "" {
		if err := checkSettings(g.repo, c); err != nil {
			return nil, nil, err
		}
	}
	// Problems elsewhere in the tree are check's business: gen fails only on those of the
	// Kustomizations that lead to what it renders.
	// Clusters that share an entry share its tree: the walk reads the repository, the entry and
	// the spec's walk options, which are the same for the whole run; the tree is only read.
	w, err := g.trees.do(key(filepath.Clean(c.FluxSystem)), func() (*walk, error) {
		tree, problems, err := fluxtree.LoadAll(ctx, g.repo, c.FluxSystem, TreeOptions(g.spec))
		return &walk{tree, problems}, err
	})
	if err != nil {
		return nil, nil, err
	}
	tree := w.tree
	if err := bootProblems(tree, w.problems, BootReleases(g.spec)); err != nil {
		return nil, nil, err
	}
	report := &ClusterReport{Name: c.Name, TalosVersion: c.TalosVersion, BudgetBytes: g.spec.Budget.MaxConfigBytes}
	for _, s := range tree.Skipped {
		report.Skipped = append(report.Skipped, s.String())
	}

	// Phase 1 renders while phase 0 does: it needs phase 0's CRDs only to scope its objects.
	// Phase 0's error comes first, as when the phases ran one after the other.
	p0 := parallel.Later(func() (*crdSet, error) { return g.phase0(ctx, c, tree) })
	crdsOf := func() ([]*unstructured.Unstructured, error) {
		set, err := p0.Wait()
		if err != nil {
			return nil, err
		}
		return set.crds, nil
	}
	cni, err := g.phase1(ctx, c, tree, crdsOf, report, bootRelease{field: "cni", Release: g.spec.CNI.Release, valuesFile: c.CNIValues})
	var dns []*unstructured.Unstructured
	if err == nil && g.spec.DNS != nil {
		dns, err = g.phase1(ctx, c, tree, crdsOf, report, bootRelease{field: "dns", Release: *g.spec.DNS})
	}
	set, p0err := p0.Wait()
	if p0err != nil {
		return nil, nil, p0err
	}
	if err != nil {
		return nil, nil, err
	}
	crds, crdBytes := set.crds, set.encoded
	report.StrippedBytes = set.stripped
	cniBytes, err := render.Encode(cni)
	if err != nil {
		return nil, nil, err
	}
	report.Manifests = []ManifestReport{
		{Name: talos.CRDManifest, Objects: len(crds), Bytes: len(crdBytes)},
		{Name: talos.CNIManifest, Objects: len(cni), Bytes: len(cniBytes)},
	}

	opts := talos.Options{
		ClusterName:       c.Name,
		Endpoint:          c.Endpoint,
		TalosVersion:      c.TalosVersion,
		KubernetesVersion: c.KubernetesVersion,
		DisableKubeProxy:  kubeProxyReplaced(cni),
		BootDNS:           g.spec.DNS != nil,
		Cache:             &g.talos,
	}
	if len(crds) > 0 {
		opts.Manifests = append(opts.Manifests, talos.Manifest{Name: talos.CRDManifest, Contents: crdBytes})
	}
	opts.Manifests = append(opts.Manifests, talos.Manifest{Name: talos.CNIManifest, Contents: cniBytes})
	if len(dns) > 0 {
		dnsBytes, err := render.Encode(dns)
		if err != nil {
			return nil, nil, err
		}
		report.Manifests = append(report.Manifests, ManifestReport{Name: talos.DNSManifest, Objects: len(dns), Bytes: len(dnsBytes)})
		opts.Manifests = append(opts.Manifests, talos.Manifest{Name: talos.DNSManifest, Contents: dnsBytes})
	}
	for _, set := range []struct {
		field, role string
		paths       []string
	}{{"patches", "", c.Patches}, {"controlPlanePatches", talos.RoleControlPlane, c.ControlPlanePatches}, {"workerPatches", talos.RoleWorker, c.WorkerPatches}} {
		for _, p := range set.paths {
			data, err := os.ReadFile(filepath.Join(g.repo, p))
			if err != nil {
				return nil, nil, fmt.Errorf("clusters[%s].%s: %w", c.Name, set.field, err)
			}
			opts.StaticPatches = append(opts.StaticPatches, talos.StaticPatch{Name: p, Data: data, Role: set.role})
		}
	}
	patches, err := g.generate(opts)
	if err != nil {
		return nil, nil, err
	}
	sizes, err := talos.Validate(opts, patches)
	if err != nil {
		return nil, nil, err
	}
	report.Configs = *sizes
	if max := int64(sizes.ControlPlaneBytes); max > g.spec.Budget.MaxConfigBytes {
		return nil, nil, fmt.Errorf("control-plane machine config is %d bytes, over budget.maxConfigBytes %d (%s %d B, %s %d B); try crdDescriptions: strip in %s or fewer phase-0 sources",
			max, g.spec.Budget.MaxConfigBytes, talos.CRDManifest, len(crdBytes), talos.CNIManifest, len(cniBytes), spec.DefaultPath)
	}
	rbac, err := agentRBAC(append(append(append([]*unstructured.Unstructured{}, crds...), cni...), dns...))
	if err != nil {
		return nil, nil, err
	}
	return map[string][]byte{
		talos.ControlPlaneFile: patches.ControlPlane,
		talos.WorkerFile:       patches.Worker,
		talos.PostHandoverFile: patches.PostHandover,
		AgentRBACFile:          rbac,
	}, report, nil
}

// checkSettings makes sure the spec's cluster-settings file is the ConfigMap Flux substitutes
// from, and that it belongs to this cluster.
func checkSettings(repo string, c spec.Cluster) error {
	path := filepath.Join(repo, c.Settings)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("clusters[%s].settings: %w", c.Name, err)
	}
	var cm struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return fmt.Errorf("%s: %w", c.Settings, err)
	}
	if cm.Kind != "ConfigMap" {
		return fmt.Errorf("%s: clusters[%s].settings must be a ConfigMap, found kind %q", c.Settings, c.Name, cm.Kind)
	}
	if name, ok := cm.Data["CLUSTER_NAME"]; ok && name != c.Name {
		return fmt.Errorf("%s: CLUSTER_NAME is %q but the spec names this cluster %q", c.Settings, name, c.Name)
	}
	return nil
}

func (g *generator) fetch(ctx context.Context, r *fluxtree.Release) (*chart.Chart, error) {
	src := chartsource.Source{
		Kind: r.Chart.Kind, URL: r.Chart.URL, Chart: r.Chart.Chart, Version: r.Chart.Version,
		Digest: r.Chart.Digest, Origin: r.Origin(),
	}
	// A chart is loaded once per source; Origin only names the release in messages. Errors are
	// not shared: they name the release, and a fetch over the network may succeed next time.
	res, err := g.charts.do(key(src.Kind, src.URL, src.Chart, src.Version, src.Digest), func() (*chartsource.Result, error) {
		return g.fetcher.Fetch(ctx, src)
	})
	if err != nil {
		return nil, err
	}
	if r.Runtime != "" {
		// Rendering with the variable empty would boot other values than Flux applies.
		return nil, fmt.Errorf("%s: a variable of its values is known only in-cluster (%s): give the age key in SOPS_AGE_KEY or SOPS_AGE_KEY_FILE when the Secret is SOPS-encrypted in Git, or define the variable in Git", r.Origin(), r.Runtime)
	}
	from := r.Chart.Kind
	if r.Chart.URL != "" {
		from += " " + r.Chart.URL
	}
	g.logf("%s: chart %s from %s (%s)", r.Origin(), strings.TrimSpace(r.Chart.Chart+" "+r.Chart.Version), from, res.Digest)
	// Helm's dependency processing writes into the chart it renders: every render gets its own.
	ch := cloneChart(res.Chart)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.digests[ch] = res.Digest
	for _, e := range res.Lock {
		g.used[e.Source+" "+e.Chart+" "+e.Version] = e
	}
	return ch, nil
}

// crdSet is a cluster's phase 0: its CRDs sorted by name (shared between clusters, so never
// written), their encoding, and the bytes crdDescriptions: strip saved.
type crdSet struct {
	crds     []*unstructured.Unstructured
	encoded  []byte
	stripped int
}

// crdSource is one phase-0 source resolved in a cluster's tree.
type crdSource struct {
	rel *fluxtree.Release
	in  render.Input
}

// phase0 renders every CRD source and keeps its CustomResourceDefinitions, sorted by name.
// Clusters whose sources resolve to the same inputs share the result: it depends on each
// source's chart content, release, values and HelmRelease (ownership labels, messages), the
// Kubernetes version, the files of path sources and the strip setting.
func (g *generator) phase0(ctx context.Context, c spec.Cluster, tree *fluxtree.Tree) (*crdSet, error) {
	sources := make([]*crdSource, len(g.spec.CRDs))
	parts := []string{"phase0", c.KubernetesVersion, strconv.FormatBool(g.strip)}
	shared := true
	for i, src := range g.spec.CRDs {
		if src.Path != "" {
			parts = append(parts, "path", src.Path)
			continue
		}
		// The sources before this one fail first, as they would rendering one after the other.
		rel, err := tree.Release(src.HelmRelease)
		if err != nil {
			return nil, g.firstError(sources, i, fmt.Errorf("crds[%d]: %w", i, err))
		}
		ch, err := g.fetch(ctx, rel)
		if err != nil {
			return nil, g.firstError(sources, i, err)
		}
		in := render.Input{
			Chart: ch, ReleaseName: rel.HR.GetReleaseName(), Namespace: rel.HR.GetReleaseNamespace(),
			Values: fluxtree.MergeValues(rel.Values, src.Values), KubeVersion: c.KubernetesVersion, IncludeCRDDir: true,
		}
		sources[i] = &crdSource{rel: rel, in: in}
		digest := g.digest(ch)
		shared = shared && digest != ""
		parts = append(parts, "chart", digest, in.ReleaseName, in.Namespace, valuesKey(in.Values), rel.HR.Name, rel.HR.Namespace, rel.Origin())
	}
	build := func() (*crdSet, error) { return g.buildPhase0(sources) }
	if !shared { // without a digest, two charts could share a key
		return build()
	}
	return g.phase0s.do(key(parts...), build)
}

func (g *generator) digest(ch *chart.Chart) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.digests[ch]
}

// firstError returns the error of phase 0's first n sources, if they have one, else err.
func (g *generator) firstError(sources []*crdSource, n int, err error) error {
	if _, perr := g.buildPhase0(sources[:n]); perr != nil {
		return perr
	}
	return err
}

// buildPhase0 builds phase 0 from the spec's sources, resolved in sources; given fewer, it
// builds from the first len(sources) (firstError).
func (g *generator) buildPhase0(sources []*crdSource) (*crdSet, error) {
	set := &crdSet{}
	byName := map[string]string{} // CRD name -> origin, to refuse two sources of one CRD
	var crds []*unstructured.Unstructured
	// The charts render on every core; their results are taken in spec order below, so the
	// first error is the one rendering them one after the other would meet.
	type rendered struct {
		objs []render.Object
		err  error
	}
	renders, _ := parallel.Map(len(sources), func(i int) (rendered, error) {
		if sources[i] == nil { // a path source
			return rendered{}, nil
		}
		objs, err := g.renderCRDs(sources[i].in)
		return rendered{objs, err}, nil
	})
	for i, src := range g.spec.CRDs[:len(sources)] {
		if src.Path != "" {
			objs, err := crdFiles(g.repo, src.Path)
			if err != nil {
				return nil, fmt.Errorf("crds[%d]: %w", i, err)
			}
			for _, o := range objs {
				if prev, dup := byName[o.GetName()]; dup {
					return nil, fmt.Errorf("CustomResourceDefinition %s comes from both %s and %s", o.GetName(), prev, src.Path)
				}
				byName[o.GetName()] = src.Path
				if g.strip {
					set.stripped += strip(o)
				}
				crds = append(crds, o)
			}
			continue
		}
		rel, ch := sources[i].rel, sources[i].in.Chart
		objs, err := renders[i].objs, renders[i].err
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel.Origin(), err)
		}
		found := 0
		for _, o := range objs {
			if !isCRD(o.Unstructured) {
				continue // phase 0 keeps only CRDs; the rest of the chart is Flux's to install
			}
			if prev, dup := byName[o.GetName()]; dup {
				return nil, fmt.Errorf("CustomResourceDefinition %s comes from both %s and %s (%s)", o.GetName(), prev, rel.Origin(), o.Template)
			}
			byName[o.GetName()] = rel.Origin()
			if field, ok := render.PrivateKey(o.Object); ok {
				return nil, fmt.Errorf("%s: CustomResourceDefinition %s from %s: field %s holds a private key, which must not enter the machine config", rel.Origin(), o.GetName(), o.Template, field)
			}
			if !inCRDDir(o.Template) {
				// A templated CRD is part of the Helm release: mark it so Helm adopts it later.
				ownedBy(o.Unstructured, rel.HR.GetReleaseName(), rel.HR.GetReleaseNamespace(), rel.HR.Name, rel.HR.Namespace)
			}
			if g.strip {
				set.stripped += strip(o.Unstructured)
			}
			crds = append(crds, o.Unstructured)
			found++
		}
		if found == 0 {
			return nil, fmt.Errorf("crds[%d]: %s rendered no CustomResourceDefinition; set the value that makes chart %s emit its CRDs in crds[%d].values", i, rel.Origin(), ch.Name(), i)
		}
	}
	sort.Slice(crds, func(i, j int) bool { return crds[i].GetName() < crds[j].GetName() })
	for _, o := range crds {
		if !isCRD(o) { // the phase-0 guard: nothing but CRDs may boot in this manifest
			return nil, fmt.Errorf("phase 0 holds %s %s", o.GetKind(), o.GetName())
		}
	}
	encoded, err := render.Encode(crds)
	if err != nil {
		return nil, err
	}
	set.crds, set.encoded = crds, encoded
	return set, nil
}

// renderCRDs renders a phase-0 source once per distinct input: phase-0 sets that differ in one
// source still share the others, and these charts carry megabytes of CRDs. Callers get their
// own copies, since phase 0 marks and strips the objects.
func (g *generator) renderCRDs(in render.Input) ([]render.Object, error) {
	run := func() ([]render.Object, error) { return renderCRDSource(in) }
	var objs []render.Object
	var err error
	if digest := g.digest(in.Chart); digest != "" { // without a digest, two charts could share a key
		objs, err = g.crdRuns.do(key("crds", digest, in.ReleaseName, in.Namespace, in.KubeVersion, valuesKey(in.Values)), run)
	} else {
		objs, err = run()
	}
	if err != nil {
		return nil, err
	}
	return copyObjects(objs), nil
}

func copyObjects(objs []render.Object) []render.Object {
	out := make([]render.Object, len(objs))
	for i, o := range objs {
		out[i] = render.Object{Unstructured: o.DeepCopy(), Template: o.Template}
	}
	return out
}

func renderCRDSource(in render.Input) ([]render.Object, error) {
	res, err := render.RenderRelease(in)
	if err != nil {
		return nil, err
	}
	for _, h := range res.Hooks {
		if h.Kind == "CustomResourceDefinition" {
			// Never silently dropped: phase 0 keeps CRDs, and Helm keeps hooks out of the manifest.
			return nil, fmt.Errorf("CustomResourceDefinition %s from %s is a Helm hook (%s), which phase 0 cannot boot; list its CRDs in a crds[].path source instead",
				h.Name, h.Template, strings.Join(h.Events, ", "))
		}
	}
	return res.Objects, nil
}

// bootRelease is one phase-1 release: the CNI (with the cluster's boot-only values file) or
// cluster DNS.
type bootRelease struct {
	spec.Release
	field      string // its spec field, for errors
	valuesFile string // boot-only overrides, relative to the repository
}

// valuesAt says where the release's boot-only values go, for the guards' hints.
func (b bootRelease) valuesAt() string {
	switch {
	case b.valuesFile != "":
		return b.valuesFile
	case b.field == "cni":
		return "the cluster's cniValues file"
	}
	return b.field + ".values in " + spec.DefaultPath
}

// phase1 renders a boot release with its boot-only overrides and applies the boot guards.
// crdsOf waits for phase 0's CRDs, whose scopes decide which objects get the release namespace.
func (g *generator) phase1(ctx context.Context, c spec.Cluster, tree *fluxtree.Tree, crdsOf func() ([]*unstructured.Unstructured, error), report *ClusterReport, b bootRelease) ([]*unstructured.Unstructured, error) {
	rel, err := tree.Release(b.HelmRelease)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.field, err)
	}
	ch, err := g.fetch(ctx, rel)
	if err != nil {
		return nil, err
	}
	values := fluxtree.MergeValues(rel.Values, b.Values)
	// Errors of a render with boot values name the file the user changes to fix them.
	origin := rel.Origin()
	if b.valuesFile != "" {
		origin = fmt.Sprintf("%s with boot values %s", origin, b.valuesFile)
	}
	if b.valuesFile != "" {
		overrides, err := g.bootValues(ctx, c, b.valuesFile, tree, rel)
		if err != nil {
			return nil, err
		}
		boot := fluxtree.MergeValues(values, overrides)
		changes := func() ([]string, error) {
			before, err1 := chartutil.CoalesceValues(ch, copyMap(values))
			after, err2 := chartutil.CoalesceValues(ch, copyMap(boot))
			if err1 == nil && err2 == nil {
				return valueChanges(before, after), nil
			}
			return nil, nil
		}
		if digest := g.digest(ch); digest != "" {
			report.BootOnlyValues, _ = g.bootVals.do(key("boot", digest, valuesKey(values), valuesKey(boot)), changes)
		} else {
			report.BootOnlyValues, _ = changes()
		}
		values = boot
	}
	in := render.Input{
		Chart: ch, ReleaseName: rel.HR.GetReleaseName(), Namespace: rel.HR.GetReleaseNamespace(),
		Values: values, KubeVersion: c.KubernetesVersion,
	}
	r := g.renderBoot(in)
	if r.err != nil {
		return nil, fmt.Errorf("%s: %w", origin, r.err)
	}
	if err := refuse(r.res.Objects, origin, b.valuesAt()); err != nil {
		return nil, err
	}
	if r.againErr != nil {
		return nil, fmt.Errorf("%s: %w", origin, r.againErr)
	}
	res := r.res
	if diff := r.differing; len(diff) > 0 {
		var hints []string
		for _, t := range diff {
			hints = append(hints, fmt.Sprintf("%s (%s)", t, fixFor(t, b.valuesAt())))
		}
		return nil, fmt.Errorf("%s: templates render differently each time (random keys or timestamps would land in the machine config and make every gen a drift):\n  - %s",
			origin, strings.Join(hints, "\n  - "))
	}
	// Hooks are not in the release manifest, so they never boot; say so rather than drop them.
	report.Hooks = append(report.Hooks, res.Hooks...)
	if len(res.Hooks) > 0 {
		report.HookFate = hookFate(rel.HR)
	}

	// What boots is what helm-controller installs: its post-renderers run on the manifest too.
	// The objects are this cluster's from here on: the post-renderers and ownership write them.
	objs := copyObjects(res.Objects)
	rendered := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		rendered[i] = o.Unstructured
	}
	if rendered, err = fluxtree.PostRender(rel.HR, rendered); err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}

	crds, err := crdsOf()
	if err != nil {
		return nil, err
	}
	scopes := crdScopes(crds)
	releaseNS := rel.HR.GetReleaseNamespace()
	var out []*unstructured.Unstructured
	if releaseNS != "kube-system" && releaseNS != "default" {
		ns := &unstructured.Unstructured{}
		ns.SetAPIVersion("v1")
		ns.SetKind("Namespace")
		ns.SetName(releaseNS)
		out = append(out, ns)
	}
	for _, o := range rendered {
		setNamespace(o, releaseNS, scopes)
		ownedBy(o, rel.HR.GetReleaseName(), releaseNS, rel.HR.Name, rel.HR.Namespace)
		out = append(out, o)
	}
	return out, nil
}

// release is a phase-1 render and what the randomness guard found, for every cluster whose
// release renders from the same input. Its objects are shared: callers copy them.
type release struct {
	res       *render.Result
	err       error    // of the render
	againErr  error    // of the guard's second render
	differing []string // templates that rendered differently the second time
}

// renderBoot renders a boot release and renders it again for the randomness guard, once per
// distinct input (chart content, release name and namespace, values, Kubernetes version): a
// fleet's clusters of one flavour render the same DNS release, for example. The errors are the
// render's own; callers say which release and values they come from.
func (g *generator) renderBoot(in render.Input) *release {
	run := func() (*release, error) {
		r := &release{}
		if r.res, r.err = render.RenderRelease(in); r.err != nil {
			return r, nil
		}
		// Equal text is equal objects: the full second render and the comparison of objects,
		// which names the templates that changed, are needed only when the text changed.
		same, err := render.SameAgain(in, r.res)
		if err != nil || same {
			r.againErr = err
			return r, nil
		}
		again, err := render.Render(in)
		if err != nil {
			r.againErr = err
			return r, nil
		}
		r.differing = differingTemplates(r.res.Objects, again)
		return r, nil
	}
	digest := g.digest(in.Chart)
	if digest == "" { // without a digest, two charts could share a key
		r, _ := run()
		return r
	}
	r, _ := g.renders.do(key("phase1", digest, in.ReleaseName, in.Namespace, in.KubeVersion, strconv.FormatBool(in.IncludeCRDDir), valuesKey(in.Values)), run)
	return r
}

// generate is talos.Generate once per distinct input. The patches depend only on the contract
// (from the Talos version), the manifests and DisableKubeProxy (TestGenerateDependsOnlyOn in
// talos/), not on the cluster's name, endpoint or Kubernetes version, so clusters of one flavour
// with equal manifests share them. Validate reads everything, the name included, so it runs per
// cluster.
func (g *generator) generate(o talos.Options) (*talos.Patches, error) {
	parts := []string{"generate", o.TalosVersion, strconv.FormatBool(o.DisableKubeProxy)}
	for _, m := range o.Manifests {
		sum := sha256.Sum256(m.Contents)
		parts = append(parts, m.Name, hex.EncodeToString(sum[:]))
	}
	// Errors name the cluster: not shared.
	return g.patches.do(key(parts...), func() (*talos.Patches, error) { return talos.Generate(o) })
}

// bootValues reads the cluster's boot-only overrides, substituted with the same variables
// Flux uses for the HelmRelease.
func (g *generator) bootValues(ctx context.Context, c spec.Cluster, file string, tree *fluxtree.Tree, rel *fluxtree.Release) (map[string]any, error) {
	data, err := os.ReadFile(filepath.Join(g.repo, file))
	if err != nil {
		return nil, fmt.Errorf("clusters[%s].cniValues: %w", c.Name, err)
	}
	vars, err := tree.Vars(ctx, rel.Object)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	data, err = fluxtree.Substitute(data, vars)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	values := map[string]any{}
	if err := yaml.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("%s: not a YAML map of values: %w", file, err)
	}
	return values, nil
}

// kubeProxyReplaced tells whether the CNI render replaces kube-proxy (Cilium's
// kube-proxy-replacement), so Talos must not deploy kube-proxy.
func kubeProxyReplaced(objs []*unstructured.Unstructured) bool {
	for _, o := range objs {
		if o.GetKind() != "ConfigMap" {
			continue
		}
		if v, _, _ := unstructured.NestedString(o.Object, "data", "kube-proxy-replacement"); v == "true" || v == "strict" {
			return true
		}
	}
	return false
}

// strip removes a CRD's schema descriptions and returns the bytes saved.
func strip(crd *unstructured.Unstructured) int {
	before, _ := render.Encode([]*unstructured.Unstructured{crd})
	stripCRD(crd)
	after, _ := render.Encode([]*unstructured.Unstructured{crd})
	return len(before) - len(after)
}

// crdFiles reads a file or directory of plain CRD manifests. The phase-0 guard lives here:
// anything that is not a CustomResourceDefinition is refused, naming file and object.
func crdFiles(repo, rel string) ([]*unstructured.Unstructured, error) {
	root := filepath.Join(repo, rel)
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	files := []string{root}
	if fi.IsDir() {
		files = nil
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		name, _ := filepath.Rel(repo, f)
		objs, err := render.Split(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, o := range objs {
			if !isCRD(o.Unstructured) {
				return nil, fmt.Errorf("%s: %s %s is not a CustomResourceDefinition; phase 0 holds CRDs only", name, o.GetKind(), o.GetName())
			}
			out = append(out, o.Unstructured)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("path %s holds no CustomResourceDefinition", rel)
	}
	return out, nil
}

func copyMap(v map[string]any) map[string]any {
	data, _ := yaml.Marshal(v)
	out := map[string]any{}
	_ = yaml.Unmarshal(data, &out)
	return out
}
