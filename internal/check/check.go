// Package check is the CI gate for a GitOps repository: everything bootcore can verify
// offline about the bootstrap spec, the Flux tree and the committed Talos patches.
package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bootcore-dev/bootcore/internal/chartsource"
	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/gen"
	"github.com/bootcore-dev/bootcore/internal/render"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/talos"
)

// Severity of a finding.
const (
	Error   = "error"
	Warning = "warning" // worth fixing, does not fail the check
	Skipped = "skipped" // could not be checked here (e.g. needs network); never a pass
)

// Finding is one result, located where possible.
type Finding struct {
	Severity string `json:"severity"`
	Check    string `json:"check"`
	Cluster  string `json:"cluster,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Message  string `json:"message"`
}

// Report is the outcome of one check run.
type Report struct {
	Findings []Finding `json:"findings"`
	// Order is each cluster's Kustomization dependency order (dependsOn), as Flux would apply it.
	Order map[string][]string `json:"order"`
	// Checks lists the checks that ran, for the summary.
	Checks []string `json:"checks"`
}

// Errors counts error findings.
func (r *Report) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

type checker struct {
	repo   string
	report *Report
	// dnsReleases are, per cluster, the Flux HelmReleases of the CoreDNS chart (found by
	// cluster, used by patches).
	dnsReleases map[string][]dnsRelease
}

// dnsRelease is a HelmRelease of the CoreDNS chart in a cluster's tree.
type dnsRelease struct {
	id, file string
	line     int
}

func (c *checker) add(sev, check, cluster, file string, line int, format string, args ...any) {
	c.report.Findings = append(c.report.Findings, Finding{Severity: sev, Check: check, Cluster: cluster, File: file, Line: line, Message: fmt.Sprintf(format, args...)})
}

// Run checks the repository at repo. cacheDir is gen's chart cache.
func Run(ctx context.Context, repo, cacheDir string) (*Report, error) {
	// gen --check walks the same trees again: it reuses the walks below (one walk per cluster).
	ctx = fluxtree.WithCache(ctx)
	c := &checker{repo: repo, report: &Report{Findings: []Finding{}, Order: map[string][]string{}}}
	c.report.Checks = []string{"spec", "tree", "dependsOn", "substitution", "sources", "values", "gitops", "gen", "patches"}
	s, err := spec.Load(filepath.Join(repo, spec.DefaultPath))
	if err != nil {
		c.add(Error, "spec", "", spec.DefaultPath, 0, "%v", err)
		return c.report, nil
	}
	for _, cl := range s.Clusters {
		c.cluster(ctx, s, cl)
	}
	switch {
	case s.CNI.HelmRelease == "":
		c.add(Skipped, "gen", "", spec.DefaultPath, 0, "gen --check not run: the spec names no cni.helmRelease, so gen has nothing to render")
	case c.report.Errors() > 0:
		// gen walks the same tree and would only repeat the findings above.
		c.add(Skipped, "gen", "", "", 0, "gen --check not run: fix the errors above first")
	default:
		c.gen(ctx, s, cacheDir)
	}
	for _, cl := range s.Clusters {
		c.patches(s, cl)
	}
	sort.SliceStable(c.report.Findings, func(i, j int) bool {
		a, b := c.report.Findings[i], c.report.Findings[j]
		if a.Cluster != b.Cluster {
			return a.Cluster < b.Cluster
		}
		return a.File < b.File || a.File == b.File && a.Line < b.Line
	})
	return c.report, nil
}

func (c *checker) cluster(ctx context.Context, s *spec.Spec, cl spec.Cluster) {
	for _, p := range append(append(append([]string{cl.Settings, cl.CNIValues}, cl.Patches...), cl.ControlPlanePatches...), cl.WorkerPatches...) {
		if p == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.repo, p)); err != nil {
			c.add(Error, "spec", cl.Name, spec.DefaultPath, 0, "clusters[%s] names %s, which does not exist", cl.Name, p)
		}
	}
	tree, problems, err := fluxtree.LoadAll(ctx, c.repo, cl.FluxSystem, gen.TreeOptions(s))
	if err != nil {
		c.add(Error, "tree", cl.Name, cl.FluxSystem, 0, "%v", err)
		return
	}
	for _, sk := range tree.Skipped {
		c.add(Skipped, "tree", cl.Name, sk.File, sk.Line, "%s", sk)
	}
	for _, p := range problems {
		check := "tree"
		if strings.Contains(p.Err.Error(), "substitut") {
			check = "substitution"
		}
		c.add(Error, check, cl.Name, p.File, p.Line, "%v", p.Err)
	}
	c.dependsOn(cl.Name, tree)
	// Every HelmRelease must resolve its chart source and values as helm-controller would;
	// the releases gen renders must also meet gen's limits.
	boot := map[string]bool{}
	for _, id := range gen.BootReleases(s) {
		boot[id] = true
	}
	for _, o := range tree.Objects {
		if o.GetKind() != "HelmRelease" || o.GroupVersionKind().Group != fluxtree.HelmGroup {
			continue
		}
		id := o.GetNamespace() + "/" + o.GetName()
		if chart, _, _ := unstructured.NestedString(o.Object, "spec", "chart", "spec", "chart"); path.Base(chart) == "coredns" {
			file, line := tree.Position("HelmRelease", o.GetName())
			if c.dnsReleases == nil {
				c.dnsReleases = map[string][]dnsRelease{}
			}
			c.dnsReleases[cl.Name] = append(c.dnsReleases[cl.Name], dnsRelease{id: id, file: file, line: line})
		}
		err := tree.CheckRelease(id)
		if boot[id] && err == nil {
			var r *fluxtree.Release
			if r, err = tree.Release(id); err == nil && r.Runtime != "" {
				file, line := tree.Position("HelmRelease", o.GetName())
				c.add(Skipped, "values", cl.Name, file, line, "%s: values not checked, a variable is known only in-cluster: %s (gen needs it: give the age key in SOPS_AGE_KEY or SOPS_AGE_KEY_FILE when the Secret is SOPS-encrypted)", r.Origin(), r.Runtime)
			}
		}
		if err != nil {
			file, line := tree.Position("HelmRelease", o.GetName())
			check := "sources"
			if strings.Contains(err.Error(), "valuesFrom") {
				check = "values"
			}
			c.add(Error, check, cl.Name, file, line, "%v", err)
		}
	}
	for _, id := range gen.BootReleases(s) {
		if _, ok := tree.Get(fluxtree.HelmGroup, "HelmRelease", strings.Split(id, "/")[0], strings.Split(id, "/")[1]); !ok {
			c.add(Error, "spec", cl.Name, spec.DefaultPath, 0, "HelmRelease %s named in the spec is not applied by any Kustomization of cluster %s", id, cl.Name)
		}
	}
	if s.CNI.HelmRelease != "" {
		sev := Warning
		if s.CNI.RequireDriftDetection {
			sev = Error
		}
		c.cniUnderGitOps(cl.Name, s.CNI.HelmRelease, sev, tree)
	}
}

// cniUnderGitOps holds the hand-over's promise (story AC7): a boot-time CNI object removed
// later is re-created by Flux. helm-controller only does that with drift detection enabled;
// without it a deleted DaemonSet stays deleted until the release is next upgraded.
// It is a warning unless the spec sets cni.requireDriftDetection.
func (c *checker) cniUnderGitOps(cluster, id, sev string, tree *fluxtree.Tree) {
	ns, name, _ := strings.Cut(id, "/")
	o, ok := tree.Get(fluxtree.HelmGroup, "HelmRelease", ns, name)
	if !ok {
		return // the spec check reports it
	}
	hr := &helmv2.HelmRelease{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, hr); err != nil {
		return // the sources check reports it
	}
	mode := helmv2.DriftDetectionDisabled
	if dd := hr.Spec.DriftDetection; dd != nil {
		mode = dd.GetMode()
	}
	if mode != helmv2.DriftDetectionEnabled {
		file, line := tree.Position("HelmRelease", name)
		c.add(sev, "gitops", cluster, file, line, "HelmRelease %s, the CNI: spec.driftDetection.mode is %q, want %q, so that helm-controller re-creates a Cilium object removed after the hand-over", id, mode, helmv2.DriftDetectionEnabled)
	}
}

// dependsOn checks that every dependency exists and the graph has no cycle; it records the
// order Flux would reconcile the Kustomizations in.
func (c *checker) dependsOn(cluster string, tree *fluxtree.Tree) {
	deps := map[string][]string{}
	for _, id := range fluxtree.SortedKeys(tree.Kustomizations) {
		ks := tree.Kustomizations[id]
		deps[id] = nil
		list, _, _ := unstructured.NestedSlice(ks.Object, "spec", "dependsOn")
		for _, d := range list {
			ref, _ := d.(map[string]any)
			name, _ := ref["name"].(string)
			ns, _ := ref["namespace"].(string)
			if ns == "" {
				ns = ks.GetNamespace()
			}
			dep := ns + "/" + name
			if _, ok := tree.Kustomizations[dep]; !ok {
				file, line := tree.Position("Kustomization", ks.GetName())
				c.add(Error, "dependsOn", cluster, file, line, "Kustomization %s depends on Kustomization %s, which no Kustomization of this cluster applies", id, dep)
				continue
			}
			deps[id] = append(deps[id], dep)
		}
	}
	for _, o := range tree.Objects {
		if o.GetKind() != "HelmRelease" || o.GroupVersionKind().Group != fluxtree.HelmGroup {
			continue
		}
		var hr helmv2.HelmRelease
		if runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &hr) != nil {
			continue
		}
		for _, d := range hr.GetDependsOn() {
			ns := d.Namespace
			if ns == "" {
				ns = hr.Namespace
			}
			if _, ok := tree.Get(fluxtree.HelmGroup, "HelmRelease", ns, d.Name); !ok {
				file, line := tree.Position("HelmRelease", hr.Name)
				c.add(Error, "dependsOn", cluster, file, line, "HelmRelease %s/%s depends on HelmRelease %s/%s, which no Kustomization of this cluster applies", hr.Namespace, hr.Name, ns, d.Name)
			}
		}
	}
	order, cycle := topoSort(deps)
	if cycle != nil {
		file, line := tree.Position("Kustomization", strings.SplitN(cycle[0], "/", 2)[1])
		c.add(Error, "dependsOn", cluster, file, line, "dependsOn cycle: %s", strings.Join(cycle, " -> "))
	}
	c.report.Order[cluster] = order
}

// topoSort orders ids so dependencies come first; on a cycle it returns the cycle.
func topoSort(deps map[string][]string) ([]string, []string) {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var order, stack, cycle []string
	var visit func(id string) bool
	visit = func(id string) bool {
		switch state[id] {
		case active:
			for i, s := range stack {
				if s == id {
					cycle = append(append([]string{}, stack[i:]...), id)
				}
			}
			return false
		case done:
			return true
		}
		state[id] = active
		stack = append(stack, id)
		for _, d := range deps[id] {
			if !visit(d) {
				return false
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		order = append(order, id)
		return true
	}
	for _, id := range fluxtree.SortedKeys(deps) {
		if !visit(id) {
			return order, cycle
		}
	}
	return order, nil
}

// gen re-renders everything and compares with the committed files (gen --check).
func (c *checker) gen(ctx context.Context, s *spec.Spec, cacheDir string) {
	out, err := gen.Run(ctx, gen.Options{Repo: c.repo, CacheDir: cacheDir})
	switch {
	case err != nil && chartsource.IsUnreachable(err):
		c.add(Skipped, "gen", "", "", 0, "gen --check needs network: %v", err)
		return
	case err != nil:
		c.add(Error, "gen", "", "", 0, "%v", err)
		return
	}
	diff, err := out.Diff(c.repo)
	if err != nil {
		c.add(Error, "gen", "", "", 0, "%v", err)
		return
	}
	if diff != "" {
		for _, p := range out.Paths() {
			old, _ := os.ReadFile(filepath.Join(c.repo, p))
			if !bytes.Equal(old, out.Files[p]) {
				c.add(Error, "gen", "", p, 0, "stale: run bootcore gen and commit the result")
			}
		}
	}
}

// patches validates the committed patches on their own, offline: they apply and validate
// with Talos machinery, phase 0 holds only CRDs, phase 1 no CRD, no Secret or private key
// anywhere, and the control-plane config stays within the budget.
func (c *checker) patches(s *spec.Spec, cl spec.Cluster) {
	dir := filepath.Join(s.Output, cl.Name)
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(c.repo, dir, name))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				c.add(Error, "patches", cl.Name, filepath.Join(dir, name), 0, "%v", err)
			}
			return nil
		}
		return data
	}
	cp, worker, post := read("controlplane.yaml"), read("worker.yaml"), read("post-handover.yaml")
	if cp == nil || worker == nil || post == nil {
		c.add(Skipped, "patches", cl.Name, dir, 0, "no committed patches to validate (run bootcore gen)")
		return
	}
	opts := talos.Options{ClusterName: cl.Name, Endpoint: cl.Endpoint, TalosVersion: cl.TalosVersion, KubernetesVersion: cl.KubernetesVersion}
	for _, set := range []struct {
		role  string
		paths []string
	}{{"", cl.Patches}, {talos.RoleControlPlane, cl.ControlPlanePatches}, {talos.RoleWorker, cl.WorkerPatches}} {
		for _, p := range set.paths {
			data, err := os.ReadFile(filepath.Join(c.repo, p))
			if err != nil {
				return // reported by the spec check
			}
			opts.StaticPatches = append(opts.StaticPatches, talos.StaticPatch{Name: p, Data: data, Role: set.role})
		}
	}
	cfg, err := talos.MachineConfig(opts, talos.RoleControlPlane, cp)
	if err != nil {
		c.add(Error, "patches", cl.Name, filepath.Join(dir, "controlplane.yaml"), 0, "%v", err)
		return
	}
	bootDNS := false
	for _, m := range talos.InlineManifests(cfg) {
		bootDNS = bootDNS || m.Name == talos.DNSManifest
	}
	if problem := talos.ClusterDNSProblem(cfg, bootDNS); problem != "" {
		c.add(Error, "patches", cl.Name, filepath.Join(dir, "controlplane.yaml"), 0, "%s", problem)
	}
	if talosDNS := cfg.K8sCoreDNSConfig() != nil && cfg.K8sCoreDNSConfig().Enabled(); talosDNS && !bootDNS {
		for _, r := range c.dnsReleases[cl.Name] {
			c.add(Warning, "patches", cl.Name, r.file, r.line, "HelmRelease %s installs CoreDNS while Talos's own CoreDNS is on: both manage Service kube-system/kube-dns and Deployment kube-system/coredns, and the Talos one returns on every control-plane boot; turn Talos's off in a static patch and boot this release with dns.helmRelease in %s", r.id, spec.DefaultPath)
		}
	}
	if _, err := talos.MachineConfig(opts, talos.RoleWorker, worker); err != nil {
		c.add(Error, "patches", cl.Name, filepath.Join(dir, "worker.yaml"), 0, "%v", err)
	}
	if after, err := talos.MachineConfig(opts, talos.RoleControlPlane, cp, post); err != nil {
		c.add(Error, "patches", cl.Name, filepath.Join(dir, "post-handover.yaml"), 0, "%v", err)
	} else {
		for _, m := range talos.InlineManifests(after) {
			if m.Name == talos.CRDManifest || m.Name == talos.CNIManifest || m.Name == talos.DNSManifest {
				c.add(Error, "patches", cl.Name, filepath.Join(dir, "post-handover.yaml"), 0, "inline manifest %s survives the post-handover patch", m.Name)
			}
		}
	}
	if n := len(cp); int64(n) > s.Budget.MaxConfigBytes {
		c.add(Error, "patches", cl.Name, filepath.Join(dir, "controlplane.yaml"), 0, "patch is %d bytes, over budget.maxConfigBytes %d", n, s.Budget.MaxConfigBytes)
	}
	file := filepath.Join(dir, "controlplane.yaml")
	for _, m := range talos.InlineManifests(cfg) {
		objs, err := render.Split(string(m.Contents))
		if err != nil {
			c.add(Error, "patches", cl.Name, file, 0, "inline manifest %s: %v", m.Name, err)
			continue
		}
		for _, o := range objs {
			// A PEM block that decodes, not text quoting its markers (External Secrets' CRD docs).
			if field, ok := render.PrivateKey(o.Object); ok {
				c.add(Error, "patches", cl.Name, file, 0, "inline manifest %s: %s %s contains a private key (%s)", m.Name, o.GetKind(), o.GetName(), field)
			}
			crd := o.GetKind() == "CustomResourceDefinition"
			switch {
			case o.GetKind() == "Secret":
				c.add(Error, "patches", cl.Name, file, 0, "inline manifest %s holds Secret %s", m.Name, o.GetName())
			case m.Name == talos.CRDManifest && !crd:
				c.add(Error, "patches", cl.Name, file, 0, "phase-0 manifest %s holds %s %s; CRDs only", m.Name, o.GetKind(), o.GetName())
			case m.Name == talos.CNIManifest && crd:
				c.add(Error, "patches", cl.Name, file, 0, "phase-1 manifest %s holds CustomResourceDefinition %s", m.Name, o.GetName())
			}
		}
	}
}
