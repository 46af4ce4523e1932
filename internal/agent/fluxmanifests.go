package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxcd/flux2/v2/pkg/manifestgen/install"
	fluxsync "github.com/fluxcd/flux2/v2/pkg/manifestgen/sync"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/kube"
)

// fluxManifests installs Flux air-gapped: the install manifests flux2's manifestgen builds
// from a local directory (a kustomize build: nothing is downloaded), plus the sync objects of
// the cluster's Flux entry.
type fluxManifests struct {
	dir        string
	components []*unstructured.Unstructured
	sync       []*unstructured.Unstructured
}

func manifestsDir(in *inputs) string {
	dir := in.opts.Manifests
	if dir == "" {
		dir = in.agent.Flux.Manifests
	}
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(in.opts.Repo, dir)
	}
	return dir
}

func loadFluxManifests(in *inputs) (*fluxManifests, error) {
	f := &fluxManifests{dir: manifestsDir(in)}
	if f.dir == "" {
		return nil, errors.New("--flux-install=manifests needs a manifests directory: --manifests or agent.flux.manifests")
	}
	if fi, err := os.Stat(f.dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("Flux manifests directory %s: not a directory", f.dir)
	}
	tmp, err := os.MkdirTemp("", "bootcore-flux-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	opts := install.MakeDefaultOptions()
	opts.BaseURL = f.dir
	opts.Version = "local"
	m, err := install.Generate(opts, tmp)
	if err != nil {
		return nil, fmt.Errorf("building Flux manifests from %s: %w", f.dir, err)
	}
	if f.components, err = ssautils.ReadObjects(strings.NewReader(m.Content)); err != nil {
		return nil, fmt.Errorf("Flux manifests from %s: %w", f.dir, err)
	}

	// The sync objects: same source and path as the cluster's flux-system entry in Git.
	repo, ok := in.tree.Get(fluxtree.SourceGroup, "GitRepository", "flux-system", "flux-system")
	ks, ok2 := in.tree.Get(fluxtree.KustomizeGroup, "Kustomization", "flux-system", "flux-system")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%s: the Flux entry needs GitRepository and Kustomization flux-system/flux-system", in.cluster.FluxSystem)
	}
	so := fluxsync.MakeDefaultOptions()
	so.URL, _, _ = unstructured.NestedString(repo.Object, "spec", "url")
	so.Branch, _, _ = unstructured.NestedString(repo.Object, "spec", "ref", "branch")
	so.Tag, _, _ = unstructured.NestedString(repo.Object, "spec", "ref", "tag")
	so.Secret, _, _ = unstructured.NestedString(repo.Object, "spec", "secretRef", "name")
	so.TargetPath, _, _ = unstructured.NestedString(ks.Object, "spec", "path")
	if iv, _, _ := unstructured.NestedString(repo.Object, "spec", "interval"); iv != "" {
		if d, err := time.ParseDuration(iv); err == nil {
			so.Interval = d
		}
	}
	sm, err := fluxsync.Generate(so)
	if err != nil {
		return nil, fmt.Errorf("generating the Flux sync: %w", err)
	}
	if f.sync, err = ssautils.ReadObjects(strings.NewReader(sm.Content)); err != nil {
		return nil, err
	}
	for _, o := range f.sync {
		// manifestgen always writes secretRef, even with an empty name: Flux would then look
		// for a Secret named "".
		if o.GetKind() == "GitRepository" && so.Secret == "" {
			unstructured.RemoveNestedField(o.Object, "spec", "secretRef")
		}
	}
	return f, nil
}

func (f *fluxManifests) title() string {
	return "installing Flux from the manifests in " + f.dir + " and its sync (GitRepository + Kustomization flux-system)"
}

// targets are the controllers' Deployments.
func (f *fluxManifests) targets() []kube.Target {
	var out []kube.Target
	for _, o := range f.components {
		if o.GroupVersionKind() == kube.Deployment {
			out = append(out, kube.Target{Ref: kube.RefOf(o), Ready: kube.Workload})
		}
	}
	return out
}

func (f *fluxManifests) version() string {
	for _, o := range f.components {
		if v := o.GetLabels()["app.kubernetes.io/version"]; v != "" {
			return v
		}
	}
	return ""
}

func (f *fluxManifests) done(ctx context.Context, e env) (Outcome[fluxFacts], error) {
	for _, o := range f.sync {
		if _, err := e.k.Get(ctx, kube.RefOf(o)); err != nil {
			return Outcome[fluxFacts]{Why: kube.DescribeObject(o) + ": " + err.Error()}, nil
		}
	}
	ok, why, err := e.k.AllReady(ctx, f.targets())
	return Outcome[fluxFacts]{Done: ok, Why: why, Facts: fluxFacts{versions: map[string]string{"flux": f.version()}}}, err
}

// install applies the components and the sync in one staged apply: CRDs and namespaces
// first (waited for), so the sync objects can be applied in the same call as the CRDs that
// define them.
func (f *fluxManifests) install(ctx context.Context, e env, dryRun bool) (fluxFacts, error) {
	facts := fluxFacts{versions: map[string]string{"flux": f.version()}}
	objs := append(append([]*unstructured.Unstructured(nil), f.components...), f.sync...)
	if err := e.applyObjects(ctx, PhaseInstallFlux, objs, dryRun, nil); err != nil {
		return facts, fmt.Errorf("applying Flux: %w", err)
	}
	if dryRun {
		return facts, nil
	}
	return facts, e.wait(ctx, PhaseInstallFlux, f.targets())
}
