package fluxtree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/chartutil"
	"github.com/fluxcd/pkg/envsubst"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
)

// ChartRef says where a HelmRelease's chart comes from, resolved from the Flux source objects.
type ChartRef struct {
	Kind    string // HelmRepository | OCIRepository | GitRepository
	URL     string // repository URL; oci:// for OCI
	Chart   string // chart name, or chart path inside the repository for GitRepository
	Version string // version or semver constraint
	Digest  string // OCIRepository pinned digest
}

// Release is a HelmRelease resolved the way helm-controller resolves it.
type Release struct {
	HR     *helmv2.HelmRelease
	Object *Object
	File   string // repository file that declares it
	Chart  ChartRef
	// Values are valuesFrom merged in order, then spec.values on top (helm-controller's order).
	Values map[string]any
	// Runtime, when set, says a ${VAR} of the release comes from a Secret known only
	// in-cluster (it was substituted with ""): the values are not the ones Flux will use.
	Runtime string
}

// Origin names the release for messages.
func (r *Release) Origin() string {
	return fmt.Sprintf("HelmRelease %s/%s (%s)", r.HR.Namespace, r.HR.Name, r.File)
}

// Release resolves the HelmRelease "namespace/name".
func (t *Tree) Release(id string) (*Release, error) {
	ns, name, _ := strings.Cut(id, "/")
	o, ok := t.Get(HelmGroup, "HelmRelease", ns, name)
	if !ok {
		return nil, fmt.Errorf("HelmRelease %s: not applied by any Kustomization of this cluster (found %d HelmReleases: %s)", id, len(t.releaseIDs()), strings.Join(t.releaseIDs(), ", "))
	}
	r := &Release{Object: o, File: t.files.locateKind("HelmRelease", name), HR: &helmv2.HelmRelease{}}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, r.HR); err != nil {
		return nil, fmt.Errorf("HelmRelease %s (%s): %w", id, r.File, err)
	}
	r.Runtime = o.Runtime
	var err error
	if r.Chart, err = t.chartRef(r.HR); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Origin(), err)
	}
	for i, ref := range r.HR.Spec.ValuesFrom {
		if ref.Kind != "ConfigMap" {
			// Secret values would be copied into the machine config in clear text.
			return nil, fmt.Errorf("%s: spec.valuesFrom[%d] (%s %s): kind %s is refused for a boot release: its values would be written into the Talos machine config; use a ConfigMap or spec.values", r.Origin(), i, ref.Kind, ref.Name, ref.Kind)
		}
	}
	if r.Values, err = t.values(context.Background(), r.HR, r.HR.Spec.ValuesFrom); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Origin(), err)
	}
	return r, nil
}

// CheckRelease checks what helm-controller needs of the HelmRelease "namespace/name" in
// the cluster: its chart source object exists and its valuesFrom resolve (Secrets made
// outside Git or SOPS-encrypted count as present). gen's own limits (kinds it can fetch,
// no Secret values in a machine config) apply only to the releases gen renders (Release).
func (t *Tree) CheckRelease(id string) error {
	ns, name, _ := strings.Cut(id, "/")
	o, ok := t.Get(HelmGroup, "HelmRelease", ns, name)
	if !ok {
		return fmt.Errorf("HelmRelease %s: not applied by any Kustomization of this cluster", id)
	}
	file := t.files.locateKind("HelmRelease", name)
	hr := &helmv2.HelmRelease{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, hr); err != nil {
		return fmt.Errorf("HelmRelease %s (%s): %w", id, file, err)
	}
	origin := fmt.Sprintf("HelmRelease %s (%s)", id, file)
	switch {
	case hr.Spec.ChartRef != nil:
		ref := hr.Spec.ChartRef
		rns := ref.Namespace
		if rns == "" {
			rns = hr.Namespace
		}
		if _, ok := t.Get(SourceGroup, ref.Kind, rns, ref.Name); !ok && ref.Kind != "ExternalArtifact" {
			return fmt.Errorf("%s: spec.chartRef: %s %s/%s is not applied by any Kustomization of this cluster", origin, ref.Kind, rns, ref.Name)
		}
	case hr.Spec.Chart != nil:
		sr := hr.Spec.Chart.Spec.SourceRef
		rns := sr.Namespace
		if rns == "" {
			rns = hr.Namespace
		}
		if _, ok := t.Get(SourceGroup, sr.Kind, rns, sr.Name); !ok && !(sr.Kind == sourcev1.GitRepositoryKind && t.self[rns+"/"+sr.Name]) {
			return fmt.Errorf("%s: spec.chart.spec.sourceRef: %s %s/%s is not applied by any Kustomization of this cluster", origin, sr.Kind, rns, sr.Name)
		}
	default:
		return fmt.Errorf("%s: neither spec.chart nor spec.chartRef is set", origin)
	}
	var refs []meta.ValuesReference
	for _, ref := range hr.Spec.ValuesFrom {
		if ref.Kind == "Secret" {
			if s, ok := t.Get("", "Secret", hr.Namespace, ref.Name); ok && s.Encrypted || !ok && t.runtimeSecret(hr.Namespace, ref.Name) != "" {
				continue // exists in-cluster; its keys are not known here
			}
		}
		refs = append(refs, ref)
	}
	if _, err := t.values(context.Background(), hr, refs); err != nil {
		return fmt.Errorf("%s: %w", origin, err)
	}
	return nil
}

func (t *Tree) releaseIDs() []string {
	var ids []string
	for _, o := range t.Objects {
		if o.GetKind() == "HelmRelease" && o.GroupVersionKind().Group == HelmGroup {
			ids = append(ids, o.GetNamespace()+"/"+o.GetName())
		}
	}
	return ids
}

func (t *Tree) chartRef(hr *helmv2.HelmRelease) (ChartRef, error) {
	if ref := hr.Spec.ChartRef; ref != nil {
		ns := ref.Namespace
		if ns == "" {
			ns = hr.Namespace
		}
		if ref.Kind != sourcev1.OCIRepositoryKind {
			return ChartRef{}, fmt.Errorf("spec.chartRef kind %s is not supported by gen (use OCIRepository or spec.chart)", ref.Kind)
		}
		o, ok := t.Get(SourceGroup, ref.Kind, ns, ref.Name)
		if !ok {
			return ChartRef{}, fmt.Errorf("spec.chartRef: OCIRepository %s/%s is not applied by any Kustomization of this cluster", ns, ref.Name)
		}
		var repo sourcev1.OCIRepository
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &repo); err != nil {
			return ChartRef{}, fmt.Errorf("OCIRepository %s/%s: %w", ns, ref.Name, err)
		}
		c := ChartRef{Kind: ref.Kind, URL: repo.Spec.URL}
		if r := repo.Spec.Reference; r != nil {
			c.Version, c.Digest = r.Tag, r.Digest
			if r.SemVer != "" {
				c.Version = r.SemVer
			}
		}
		if c.Version == "" && c.Digest == "" {
			c.Version = "latest"
		}
		return c, nil
	}
	if hr.Spec.Chart == nil {
		return ChartRef{}, fmt.Errorf("neither spec.chart nor spec.chartRef is set")
	}
	cs := hr.Spec.Chart.Spec
	ns := cs.SourceRef.Namespace
	if ns == "" {
		ns = hr.Namespace
	}
	o, ok := t.Get(SourceGroup, cs.SourceRef.Kind, ns, cs.SourceRef.Name)
	if !ok {
		return ChartRef{}, fmt.Errorf("spec.chart.spec.sourceRef: %s %s/%s is not applied by any Kustomization of this cluster", cs.SourceRef.Kind, ns, cs.SourceRef.Name)
	}
	switch cs.SourceRef.Kind {
	case sourcev1.HelmRepositoryKind:
		var repo sourcev1.HelmRepository
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &repo); err != nil {
			return ChartRef{}, fmt.Errorf("HelmRepository %s/%s: %w", ns, cs.SourceRef.Name, err)
		}
		url := repo.Spec.URL
		if repo.Spec.Type == sourcev1.HelmRepositoryTypeOCI && !strings.HasPrefix(url, "oci://") {
			return ChartRef{}, fmt.Errorf("HelmRepository %s/%s: type oci needs an oci:// url, got %q", ns, cs.SourceRef.Name, url)
		}
		return ChartRef{Kind: cs.SourceRef.Kind, URL: url, Chart: cs.Chart, Version: cs.Version}, nil
	case sourcev1.GitRepositoryKind:
		// A GitRepository chart is a directory of this repository: gen renders the working tree.
		return ChartRef{Kind: cs.SourceRef.Kind, Chart: cs.Chart, Version: cs.Version}, nil
	default:
		return ChartRef{}, fmt.Errorf("spec.chart.spec.sourceRef kind %s is not supported by gen", cs.SourceRef.Kind)
	}
}

// values merges valuesFrom and spec.values with helm-controller's own code
// (fluxcd/pkg/chartutil.ChartValuesFromReferences), reading the ConfigMaps and Secrets the
// tree produces as helm-controller reads them from the API server.
func (t *Tree) values(ctx context.Context, hr *helmv2.HelmRelease, refs []meta.ValuesReference) (map[string]any, error) {
	vals, err := chartutil.ChartValuesFromReferences(ctx, logr.Discard(), &objectReader{tree: t}, hr.Namespace, hr.GetValues(), refs...)
	var ref *chartutil.ErrValuesReference
	if errors.As(err, &ref) {
		field := "spec.valuesFrom"
		for i, r := range hr.Spec.ValuesFrom {
			if r.Kind == ref.Kind && r.Name == ref.Name.Name && r.GetValuesKey() == ref.Key {
				field = fmt.Sprintf("spec.valuesFrom[%d] (%s %s)", i, r.Kind, r.Name)
				break
			}
		}
		switch {
		case errors.Is(err, chartutil.ErrResourceNotFound):
			return nil, fmt.Errorf("%s: %s %s is not produced by any Kustomization of this cluster", field, ref.Kind, ref.Name)
		case errors.Is(err, chartutil.ErrKeyNotFound):
			return nil, fmt.Errorf("%s: key %q not found in %s %s", field, ref.Key, ref.Kind, ref.Name)
		}
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if err != nil {
		return nil, fmt.Errorf("spec.valuesFrom: %w", err)
	}
	return map[string]any(vals), nil
}

// MergeValues merges b over a like helm-controller (maps merge deeply, anything else replaces).
func MergeValues(a, b map[string]any) map[string]any {
	return chartutil.MergeMaps(a, b)
}

// Substitute applies Flux's postBuild substitution (strict: an undefined variable is an
// error naming it) to a file that is not part of the Flux tree, such as boot-only values.
func Substitute(data []byte, vars map[string]string) ([]byte, error) {
	// Found by FuzzSubstitute: envsubst silently drops NUL bytes; no YAML file has one.
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, fmt.Errorf("NUL byte at offset %d: not a text file", i)
	}
	out, err := envsubst.Eval(string(data), func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	})
	if err != nil {
		return nil, err
	}
	return []byte(out), nil
}
