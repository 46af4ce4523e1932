package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/chartsource"
	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/internal/render"
)

// helm-controller's origin labels (its post-renderer adds them to every object of a release).
const (
	fluxNameLabel      = "helm.toolkit.fluxcd.io/name"
	fluxNamespaceLabel = "helm.toolkit.fluxcd.io/namespace"
)

// fluxHelm installs Flux with Helm: the charts of the flux-operator and flux-instance
// HelmReleases, as the Helm releases helm-controller will adopt.
type fluxHelm struct {
	in       *inputs
	releases []fluxRelease // the operator first: the instance is its custom resource
}

// fluxRelease is one of the two HelmReleases whose chart the agent installs.
type fluxRelease struct {
	id  string
	rel *fluxtree.Release
}

func (r fluxRelease) name() string      { return r.rel.HR.GetReleaseName() }
func (r fluxRelease) namespace() string { return r.rel.HR.GetReleaseNamespace() }
func (r fluxRelease) storage() string   { return r.rel.HR.GetStorageNamespace() }

func loadFluxHelm(in *inputs) (*fluxHelm, error) {
	h := &fluxHelm{in: in}
	for _, f := range [][2]string{{"operator", in.agent.Flux.Operator}, {"instance", in.agent.Flux.Instance}} {
		rel, err := in.tree.Release(f[1])
		if err != nil {
			return nil, fmt.Errorf("agent.flux.%s: %w", f[0], err)
		}
		h.releases = append(h.releases, fluxRelease{id: f[1], rel: rel})
	}
	return h, nil
}

func (h *fluxHelm) title() string {
	return fmt.Sprintf("installing Flux with Helm as HelmReleases %s and %s will own it", h.in.agent.Flux.Operator, h.in.agent.Flux.Instance)
}

func helmConfig(k *kube.Client, storageNamespace string) (*action.Configuration, error) {
	cfg := new(action.Configuration)
	if err := cfg.Init(k.HelmGetter(storageNamespace), storageNamespace, "secret", func(string, ...any) {}); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, nil
}

// releaseTargets are what a release must have Ready: its Deployments (kstatus) and its
// FluxInstance (Ready for the current generation).
func releaseTargets(rel *release.Release) ([]kube.Target, error) {
	objs, err := render.Split(rel.Manifest)
	if err != nil {
		return nil, fmt.Errorf("Helm release %s/%s: %w", rel.Namespace, rel.Name, err)
	}
	var out []kube.Target
	for _, o := range objs {
		u := o.Unstructured
		ref := kube.RefOf(u)
		if ref.Namespace == "" {
			ref.Namespace = rel.Namespace
		}
		switch gvk := u.GroupVersionKind(); {
		case gvk == kube.Deployment:
			out = append(out, kube.Target{Ref: ref, Ready: kube.Workload})
		case gvk.GroupKind() == kube.FluxInstance.GroupKind():
			t := kube.Target{Ref: ref, Ready: kube.Flux}
			// The FluxInstance is Ready only once its sync is: name the sync's objects when it
			// is not (a Git server that cannot be reached shows there).
			if url, _, _ := unstructured.NestedString(u.Object, "spec", "sync", "url"); url != "" {
				name, _, _ := unstructured.NestedString(u.Object, "spec", "sync", "name")
				if name == "" {
					name = ref.Namespace
				}
				t.Explain = []kube.Target{
					{Ref: kube.Ref{GVK: kube.GitRepository, Namespace: ref.Namespace, Name: name}, Ready: kube.Flux},
					{Ref: kube.Ref{GVK: kube.Kustomization, Namespace: ref.Namespace, Name: name}, Ready: kube.Flux},
				}
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func (h *fluxHelm) done(ctx context.Context, e env) (Outcome[fluxFacts], error) {
	facts := fluxFacts{versions: map[string]string{}}
	var all []kube.Target
	for _, r := range h.releases {
		cfg, err := helmConfig(e.k, r.storage())
		if err != nil {
			return Outcome[fluxFacts]{}, err
		}
		last, err := cfg.Releases.Last(r.name())
		if errors.Is(err, driver.ErrReleaseNotFound) {
			return Outcome[fluxFacts]{Why: "Helm release " + r.storage() + "/" + r.name() + " not installed"}, nil
		}
		if err != nil {
			return Outcome[fluxFacts]{}, err
		}
		if last.Info.Status != release.StatusDeployed {
			return Outcome[fluxFacts]{Why: fmt.Sprintf("Helm release %s/%s is %s", r.storage(), r.name(), last.Info.Status)}, nil
		}
		t, err := releaseTargets(last)
		if err != nil {
			return Outcome[fluxFacts]{}, err
		}
		all = append(all, t...)
		facts.versions["chart."+r.name()] = last.Chart.Metadata.Version
	}
	ok, why, err := e.k.AllReady(ctx, all)
	if err != nil || !ok {
		return Outcome[fluxFacts]{Why: why}, err
	}
	if v, err := fluxVersion(ctx, e.k); err == nil && v != "" {
		facts.versions["flux"] = v
	}
	return Outcome[fluxFacts]{Done: true, Why: why, Facts: facts}, nil
}

// fluxVersion is the Flux distribution the FluxInstance applied.
func fluxVersion(ctx context.Context, k *kube.Client) (string, error) {
	fi, err := k.Get(ctx, kube.Ref{GVK: kube.FluxInstance, Namespace: "flux-system", Name: "flux"})
	if err != nil {
		return "", fmt.Errorf("FluxInstance flux-system/flux: %w", err)
	}
	v, _, _ := unstructured.NestedString(fi.Object, "status", "lastAppliedRevision")
	return v, nil
}

func (h *fluxHelm) install(ctx context.Context, e env, dryRun bool) (fluxFacts, error) {
	facts := fluxFacts{versions: map[string]string{}}
	lock, err := chartsource.LoadLock(filepath.Join(e.opts.Repo, e.spec.Lock))
	if err != nil {
		return facts, err
	}
	fetcher := &chartsource.Fetcher{RepoRoot: e.opts.Repo, CacheDir: e.opts.CacheDir, Lock: lock}
	for _, m := range e.spec.Mirrors {
		fetcher.Mirrors = append(fetcher.Mirrors, chartsource.Mirror{Upstream: m.Upstream, Mirror: m.Mirror})
	}
	for _, r := range h.releases {
		res, err := fetcher.Fetch(ctx, chartsource.Source{
			Kind: r.rel.Chart.Kind, URL: r.rel.Chart.URL, Chart: r.rel.Chart.Chart, Version: r.rel.Chart.Version,
			Digest: r.rel.Chart.Digest, Origin: r.rel.Origin(),
		})
		if err != nil {
			return facts, err
		}
		rel, err := helmInstall(ctx, e, r, res.Chart, dryRun)
		if err != nil {
			return facts, fmt.Errorf("%s: %w", r.rel.Origin(), err)
		}
		facts.versions["chart."+r.name()] = res.Chart.Metadata.Version
		if dryRun {
			continue
		}
		// The instance needs the operator running, so wait release by release.
		targets, err := releaseTargets(rel)
		if err != nil {
			return facts, err
		}
		if err := e.wait(ctx, PhaseInstallFlux, targets); err != nil {
			return facts, err
		}
	}
	if dryRun {
		return facts, nil
	}
	fi, err := e.k.Get(ctx, kube.Ref{GVK: kube.FluxInstance, Namespace: "flux-system", Name: "flux"})
	if err != nil {
		return facts, fmt.Errorf("FluxInstance flux-system/flux: %w", err)
	}
	if rev, _, _ := unstructured.NestedString(fi.Object, "status", "lastAppliedRevision"); rev != "" {
		facts.versions["flux"] = rev
	}
	// A FluxInstance without spec.sync leaves the Git source to the cluster's Flux entry:
	// apply it, as `flux bootstrap` would.
	if syncURL, _, _ := unstructured.NestedString(fi.Object, "spec", "sync", "url"); syncURL == "" {
		return facts, applyFluxEntry(ctx, e)
	}
	return facts, nil
}

// applyFluxEntry applies the GitRepository and Kustomization flux-system of the cluster's
// Flux entry (gotk-sync.yaml), exactly as they are in Git.
func applyFluxEntry(ctx context.Context, e env) error {
	var objs []*unstructured.Unstructured
	details := map[string]string{}
	for _, kind := range [][2]string{{fluxtree.SourceGroup, "GitRepository"}, {fluxtree.KustomizeGroup, "Kustomization"}} {
		o, ok := e.tree.Get(kind[0], kind[1], "flux-system", "flux-system")
		if !ok {
			return fmt.Errorf("%s: the Flux entry has no %s flux-system/flux-system", e.cluster.FluxSystem, kind[1])
		}
		objs = append(objs, o.DeepCopy())
		details[kube.DescribeObject(o.Unstructured)] = "Flux entry " + e.cluster.FluxSystem
	}
	return e.applyObjects(ctx, PhaseInstallFlux, objs, false, details)
}

// helmInstall installs the chart as the HelmRelease's Helm release (same name, namespace,
// storage namespace and values as helm-controller would use), or upgrades a release left by
// an earlier run. It takes ownership of objects that exist already (the phase-0 CRDs). With
// dryRun, Helm renders and the API server validates; nothing is written.
func helmInstall(ctx context.Context, e env, r fluxRelease, ch *chart.Chart, dryRun bool) (*release.Release, error) {
	cfg, err := helmConfig(e.k, r.storage())
	if err != nil {
		return nil, err
	}
	values := fluxtree.MergeValues(map[string]any{}, r.rel.Values)
	post := &originLabels{hr: r.rel.HR}
	timeout := r.rel.HR.GetInstall().GetTimeout(r.rel.HR.GetTimeout()).Duration
	// Helm's client-side OpenAPI validation downloads and parses the API server's OpenAPI
	// documents: an eighth of a hand-over's CPU and megabytes of memory. The API server
	// validates what the install creates, and helm-controller validates the release again as
	// it adopts it (with the HelmRelease's own disableOpenAPIValidation).
	const skipOpenAPI = true

	if !dryRun {
		if err := discardInterrupted(e.rep, cfg, r); err != nil {
			return nil, err
		}
	}
	last, err := cfg.Releases.Last(r.name())
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, err
	}
	if last == nil {
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace = r.name(), r.namespace()
		in.TakeOwnership = true
		in.DisableOpenAPIValidation = skipOpenAPI
		in.Timeout = timeout
		in.PostRenderer = post
		if dryRun {
			in.DryRun, in.DryRunOption = true, "server"
		}
		rel, err := in.RunWithContext(ctx, ch, values)
		if err != nil {
			return nil, fmt.Errorf("helm install %s/%s: %w", r.namespace(), r.name(), err)
		}
		e.rep.Emit(Event{Type: EventChange, Phase: PhaseInstallFlux, Object: "HelmRelease " + r.id,
			Message: fmt.Sprintf("Helm release %s/%s (chart %s %s) %s", r.namespace(), r.name(), ch.Name(), ch.Metadata.Version, dryVerb(dryRun, "installed"))})
		return rel, nil
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = r.namespace()
	up.TakeOwnership = true
	up.DisableOpenAPIValidation = skipOpenAPI
	up.Timeout = timeout
	up.PostRenderer = post
	up.MaxHistory = 5
	if dryRun {
		up.DryRun, up.DryRunOption = true, "server"
	}
	rel, err := up.RunWithContext(ctx, r.name(), ch, values)
	if err != nil {
		return nil, fmt.Errorf("helm upgrade %s/%s: %w", r.namespace(), r.name(), err)
	}
	e.rep.Emit(Event{Type: EventChange, Phase: PhaseInstallFlux, Object: "HelmRelease " + r.id,
		Message: fmt.Sprintf("Helm release %s/%s (chart %s %s) %s to revision %d", r.namespace(), r.name(), ch.Name(), ch.Metadata.Version, dryVerb(dryRun, "upgraded"), rel.Version)})
	return rel, nil
}

// discardInterrupted deletes the revisions an interrupted or failed earlier attempt left:
// pending ones (the agent was killed, or the API server went away, mid-install; Helm refuses
// to touch a pending release) and, while the release was never deployed, failed ones. The
// attempt is then made again from the last deployed revision (or as a first install, which
// takes over the objects the attempt created), so no failed or pending revision stays in
// the history helm-controller adopts. Holding the agent lock, no other writer can be
// mid-operation on these releases.
func discardInterrupted(rep *Reporter, cfg *action.Configuration, r fluxRelease) error {
	history, err := cfg.Releases.History(r.name())
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	deployed := slices.ContainsFunc(history, func(rel *release.Release) bool { return rel.Info.Status == release.StatusDeployed })
	for _, rel := range history {
		st := rel.Info.Status
		if !st.IsPending() && (deployed || st != release.StatusFailed) {
			continue
		}
		if _, err := cfg.Releases.Delete(rel.Name, rel.Version); err != nil {
			return fmt.Errorf("discarding revision %d (%s) of Helm release %s/%s: %w", rel.Version, st, r.storage(), rel.Name, err)
		}
		rep.Emit(Event{Type: EventChange, Phase: PhaseInstallFlux, Object: "HelmRelease " + r.id,
			Message: fmt.Sprintf("Helm release %s/%s: discarded revision %d (%s) left by an interrupted attempt", r.storage(), rel.Name, rel.Version, st)})
	}
	return nil
}

// originLabels is helm-controller's post-rendering: the HelmRelease's own spec.postRenderers
// and commonMetadata (fluxtree.PostRender, as gen does for the boot releases), then its origin
// labels on every object, so the release the agent installs is the one helm-controller would.
type originLabels struct{ hr *helmv2.HelmRelease }

func (o *originLabels) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	split, err := render.Split(in.String())
	if err != nil {
		return nil, err
	}
	objs := make([]*unstructured.Unstructured, 0, len(split))
	for _, s := range split {
		objs = append(objs, s.Unstructured)
	}
	objs, err = fluxtree.PostRender(o.hr, objs)
	if err != nil {
		return nil, fmt.Errorf("HelmRelease %s/%s: %w", o.hr.Namespace, o.hr.Name, err)
	}
	var out bytes.Buffer
	for _, u := range objs {
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[fluxNameLabel], labels[fluxNamespaceLabel] = o.hr.Name, o.hr.Namespace
		u.SetLabels(labels)
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	return &out, nil
}
