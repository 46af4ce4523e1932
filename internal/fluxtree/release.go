package fluxtree

import (
	"bytes"
	"fmt"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/envsubst"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/strvals"
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
	var err error
	if r.Chart, err = t.chartRef(r.HR); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Origin(), err)
	}
	if r.Values, err = t.values(r.HR); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Origin(), err)
	}
	return r, nil
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

// values merges valuesFrom and spec.values exactly in helm-controller's order
// (fluxcd/pkg/chartutil.ChartValuesFromReferences).
func (t *Tree) values(hr *helmv2.HelmRelease) (map[string]any, error) {
	result := map[string]any{}
	for i, ref := range hr.Spec.ValuesFrom {
		field := fmt.Sprintf("spec.valuesFrom[%d] (%s %s)", i, ref.Kind, ref.Name)
		if ref.Kind != "ConfigMap" {
			// Secret values would be copied into the machine config in clear text.
			return nil, fmt.Errorf("%s: kind %s is refused: its values would be written into the Talos machine config; use a ConfigMap or spec.values", field, ref.Kind)
		}
		o, ok := t.Get("", "ConfigMap", hr.Namespace, ref.Name)
		if !ok {
			if ref.Optional {
				continue
			}
			return nil, fmt.Errorf("%s: ConfigMap %s/%s is not produced by any Kustomization of this cluster", field, hr.Namespace, ref.Name)
		}
		var cm corev1.ConfigMap
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cm); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		key := ref.GetValuesKey()
		data, ok := cm.Data[key]
		if !ok {
			if ref.Optional {
				continue
			}
			return nil, fmt.Errorf("%s: key %q not found in ConfigMap %s/%s", field, key, hr.Namespace, ref.Name)
		}
		if ref.TargetPath != "" {
			if err := replacePathValue(result, ref.TargetPath, data); err != nil {
				return nil, fmt.Errorf("%s: targetPath %q: %w", field, ref.TargetPath, err)
			}
			continue
		}
		var vals map[string]any
		if err := yaml.Unmarshal([]byte(data), &vals); err != nil {
			return nil, fmt.Errorf("%s: key %q is not a YAML map: %w", field, key, err)
		}
		result = MergeValues(result, vals)
	}
	return MergeValues(result, hr.GetValues()), nil
}

// replacePathValue mirrors fluxcd/pkg/chartutil.ReplacePathValue (Helm --set semantics,
// quoted values kept as strings).
func replacePathValue(values map[string]any, path, value string) error {
	quoted := len(value) >= 2 && (value[0] == '\'' || value[0] == '"') && value[len(value)-1] == value[0]
	if quoted {
		return strvals.ParseIntoString(path+"="+strings.Trim(value, `'"`), values)
	}
	return strvals.ParseInto(path+"="+value, values)
}

// MergeValues merges b over a like helm-controller (maps merge deeply, anything else replaces).
func MergeValues(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = MergeValues(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
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
