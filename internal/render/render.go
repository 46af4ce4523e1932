// Package render renders a Helm chart in-process exactly as `helm template` would for the
// release helm-controller will later manage, and splits the result into objects that
// remember the template they came from.
package render

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Input is one release to render.
type Input struct {
	Chart       *chart.Chart
	ReleaseName string
	Namespace   string
	Values      map[string]any
	KubeVersion string // e.g. "1.35.4"
	// IncludeCRDDir adds the chart's crds/ directory (phase 0); phase 1 leaves it to helm-controller.
	IncludeCRDDir bool
}

// Object is one rendered Kubernetes object.
type Object struct {
	*unstructured.Unstructured
	// Template is the chart file that produced it, e.g. "cilium/templates/cilium-agent/daemonset.yaml".
	Template string
}

// Hook is a chart hook (helm.sh/hook): not part of the release manifest, Helm runs it around
// install and upgrade. It never boots; callers report it.
type Hook struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Template is the chart file, e.g. "cilium/templates/clustermesh-coredns-mcsapi/job.yaml".
	Template string `json:"template"`
	// Events are the hook events, e.g. "post-install".
	Events []string `json:"events"`
}

// Result is one rendered release.
type Result struct {
	// Objects are the release manifest's objects in Helm's install order.
	Objects []Object
	// Hooks are the chart's hooks, which Helm keeps out of the manifest.
	Hooks []Hook
}

// Render renders the chart and returns its objects in Helm's install order, without hooks.
func Render(in Input) ([]Object, error) {
	res, err := RenderRelease(in)
	if err != nil {
		return nil, err
	}
	return res.Objects, nil
}

// RenderRelease renders the chart and returns its objects and, separately, its hooks.
func RenderRelease(in Input) (*Result, error) {
	kv, err := chartutil.ParseKubeVersion(in.KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %q: %w", in.KubeVersion, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.ClientOnly = true
	install.DryRun = true
	install.Replace = true
	install.DisableHooks = true
	install.IncludeCRDs = in.IncludeCRDDir
	install.ReleaseName = in.ReleaseName
	install.Namespace = in.Namespace
	install.KubeVersion = kv
	values := in.Values
	if values == nil {
		values = map[string]any{}
	}
	rel, err := install.Run(in.Chart, copyValues(values))
	if err != nil {
		return nil, fmt.Errorf("rendering chart %s %s: %w", in.Chart.Name(), in.Chart.Metadata.Version, err)
	}
	objs, err := Split(rel.Manifest)
	if err != nil {
		return nil, err
	}
	res := &Result{Objects: objs}
	for _, h := range rel.Hooks {
		hook := Hook{Kind: h.Kind, Name: h.Name, Template: h.Path}
		for _, e := range h.Events {
			hook.Events = append(hook.Events, string(e))
		}
		res.Hooks = append(res.Hooks, hook)
	}
	return res, nil
}

// Split parses a Helm manifest stream ("---\n# Source: …") into objects.
func Split(manifest string) ([]Object, error) {
	var out []Object
	for _, doc := range splitManifests(manifest) {
		source := sourceOf(doc)
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("%s: invalid YAML: %w", source, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("%s: object without apiVersion/kind", source)
		}
		if u.GetName() == "" {
			return nil, fmt.Errorf("%s: %s without metadata.name", source, u.GetKind())
		}
		out = append(out, Object{Unstructured: u, Template: source})
	}
	return out, nil
}

// splitManifests returns the documents of a stream in order, split where Helm's
// releaseutil.SplitManifests splits (sorted by BySplitManifestsOrder), without its regular
// expression (?:^|\s*\n)---\s* : on the multi-megabyte CRD streams of phase 0 that regexp took a
// tenth of gen's time (bench/, docs/benchmarks.md). A separator is "---" at the very start, or a
// "\n---" plus the whitespace after it (\s is RE2's [\t\n\f\r ]); empty pieces are dropped.
//
// Unlike SplitManifests, a document keeps its end up to and including the newline before the
// separator: that is the document Helm's kube client decodes from the release manifest (its YAML
// reader splits at "---" lines), so a block scalar (|) that ends a document keeps its final
// newline, as in what Helm applies. Trimming it changed the value (Cilium's cilium-envoy-config).
func splitManifests(s string) []string {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	var docs []string
	add := func(d string, empty func(rune) bool) {
		if strings.TrimRightFunc(d, empty) != "" {
			docs = append(docs, strings.TrimLeftFunc(d, unicode.IsSpace))
		}
	}
	start := 0 // start of the current document, and where the next separator may begin
	if strings.HasPrefix(s, "---") {
		start = skipSep(s, 3)
	}
	for {
		k := strings.Index(s[start:], "\n---")
		if k < 0 {
			break
		}
		nl := start + k
		add(s[start:nl+1], isSepSpaceRune) // Helm drops the piece when the separator took it all
		start = skipSep(s, nl+4)
	}
	add(s[start:], unicode.IsSpace) // Helm trims the stream's end before splitting
	return docs
}

func isSepSpaceRune(r rune) bool { return r < 0x80 && isSepSpace(byte(r)) }

func isSepSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func skipSep(s string, i int) int {
	for i < len(s) && isSepSpace(s[i]) {
		i++
	}
	return i
}

func sourceOf(doc string) string {
	for _, line := range strings.Split(doc, "\n") {
		if s, ok := strings.CutPrefix(line, "# Source: "); ok {
			return strings.TrimSpace(s)
		}
	}
	return "unknown template"
}

// copyValues deep-copies values, because Helm's coalescing writes into the map it is given.
func copyValues(v map[string]any) map[string]any {
	data, _ := yaml.Marshal(v)
	out := map[string]any{}
	_ = yaml.Unmarshal(data, &out)
	return out
}

// Encode writes objects as one YAML stream with sorted keys, the same bytes for the same objects.
func Encode(objs []*unstructured.Unstructured) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return b.Bytes(), nil
}
