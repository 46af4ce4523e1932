// Package render renders a Helm chart in-process exactly as `helm template` would for the
// release helm-controller will later manage, and splits the result into objects that
// remember the template they came from.
package render

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	yamlv2 "go.yaml.in/yaml/v2"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/parallel"
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

	files map[string]string // the engine's output, for SameAgain
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
//
// It computes what `helm template` (action.Install, client-only dry run) computes, from the
// same Helm pieces (dependency processing, values with schema validation, the engine), but
// parses each document once: Helm parses every document to sort it and bootcore parsed the
// assembled manifest again, which was most of a phase-0 render's time on megabytes of CRDs.
// TestRenderReleaseIsHelmInstall compares the two on the published charts.
func RenderRelease(in Input) (*Result, error) {
	files, err := renderFiles(in, true)
	if err != nil {
		return nil, err
	}
	res, err := sortRendered(in.Chart, files, in.IncludeCRDDir)
	if err != nil {
		return nil, renderError(in, err)
	}
	res.files = files
	return res, nil
}

// SameAgain renders in again with Helm's template engine and tells whether every template
// produced the same text as in first, which RenderRelease returned for in. It is the cheap half
// of a randomness check: equal text parses to equal objects, so only when it answers false need
// the caller render again in full and compare objects. The values were validated by the first
// render, so this one skips the schema; the rest are RenderRelease's steps.
func SameAgain(in Input, first *Result) (bool, error) {
	if first == nil || first.files == nil {
		return false, nil
	}
	files, err := renderFiles(in, false)
	if err != nil {
		return false, err
	}
	return maps.Equal(files, first.files), nil
}

// renderFiles runs the engine as Install.RunWithContext (client-only) and
// Configuration.renderResources do: the release name checked, dependencies processed, the
// render values built (the schema checked when validate), the chart's kubeVersion checked.
func renderFiles(in Input, validate bool) (map[string]string, error) {
	kv, err := chartutil.ParseKubeVersion(in.KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %q: %w", in.KubeVersion, err)
	}
	if err := chartutil.ValidateReleaseName(in.ReleaseName); err != nil {
		return nil, renderError(in, fmt.Errorf("release name %q: %w", in.ReleaseName, err))
	}
	values := in.Values
	if values == nil {
		values = map[string]any{}
	}
	values = copyValues(values)
	if err := chartutil.ProcessDependenciesWithMerge(in.Chart, values); err != nil {
		return nil, renderError(in, err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	opts := chartutil.ReleaseOptions{Name: in.ReleaseName, Namespace: in.Namespace, Revision: 1, IsInstall: true}
	var toRender chartutil.Values
	if validate {
		toRender, err = renderValues(in.Chart, values, opts, caps)
	} else {
		toRender, err = chartutil.ToRenderValuesWithSchemaValidation(in.Chart, values, opts, caps, true)
	}
	if err != nil {
		return nil, renderError(in, err)
	}
	if want := in.Chart.Metadata.KubeVersion; want != "" && !chartutil.IsCompatibleRange(want, caps.KubeVersion.String()) {
		return nil, renderError(in, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", want, caps.KubeVersion.String()))
	}
	files, err := engine.Engine{}.Render(in.Chart, toRender)
	if err != nil {
		return nil, renderError(in, err)
	}
	return files, nil
}

func renderError(in Input, err error) error {
	return fmt.Errorf("rendering chart %s %s: %w", in.Chart.Name(), in.Chart.Metadata.Version, err)
}

// sortRendered does what releaseutil.SortManifests and renderResources do with the engine's
// files: NOTES.txt and partials dropped, files in name order, hooks set apart (an unknown hook
// event drops the document, as Helm does), the rest stably sorted by Helm's install order, the
// crds/ directory first. Each document is parsed as it reads in the manifest Helm assembles
// ("---\n# Source: <file>\n<document>\n"), so the objects are Split's of that manifest.
func sortRendered(ch *chart.Chart, files map[string]string, includeCRDDir bool) (*Result, error) {
	names := make([]string, 0, len(files))
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasPrefix(path.Base(name), "_") || strings.TrimSpace(content) == "" {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)

	type entry struct {
		kind string
		objs []Object
	}
	// The documents parse on every core (megabytes of CRDs in phase 0), into a list in
	// file and document order, which is the order everything below reads them in.
	type doc struct{ name, text string }
	var docs []doc
	for _, name := range names {
		for _, d := range splitManifests(strings.TrimSpace(files[name])) {
			docs = append(docs, doc{name, "---\n# Source: " + name + "\n" + strings.TrimSpace(d) + "\n"})
		}
	}
	if includeCRDDir {
		for _, crd := range ch.CRDObjects() {
			docs = append(docs, doc{"", "---\n# Source: " + crd.Filename + "\n" + string(crd.File.Data) + "\n"})
		}
	}
	type read struct {
		objs   []Object
		events []string
		isHook bool
	}
	parsed, err := parallel.Map(len(docs), func(i int) (read, error) {
		objs, err := Split(docs[i].text)
		if err != nil || docs[i].name == "" || len(objs) == 0 {
			return read{objs: objs}, err
		}
		events, isHook, err := hookEvents(objs[0])
		if err != nil {
			return read{}, fmt.Errorf("%s: %w", docs[i].name, err)
		}
		return read{objs: objs, events: events, isHook: isHook}, nil
	})
	if err != nil {
		return nil, err
	}

	var manifests []entry
	var hooks []Hook
	var crdDir []Object
	for i, r := range parsed {
		switch {
		case docs[i].name == "": // the crds/ directory, installed first
			crdDir = append(crdDir, r.objs...)
		case len(r.objs) == 0: // comments only: Helm keeps an empty manifest, which holds no object
		case !r.isHook:
			manifests = append(manifests, entry{kind: r.objs[0].GetKind(), objs: r.objs})
		case r.events != nil:
			o := r.objs[0]
			hooks = append(hooks, Hook{Kind: o.GetKind(), Name: o.GetName(), Template: docs[i].name, Events: r.events})
		}
	}
	order := make(map[string]int, len(releaseutil.InstallOrder))
	for i, k := range releaseutil.InstallOrder {
		order[k] = i
	}
	less := func(a, b string) bool { // releaseutil's lessByKind: unknown kinds last, by name
		ia, aok := order[a]
		ib, bok := order[b]
		switch {
		case !aok && !bok:
			return a < b
		case !aok || !bok:
			return aok
		}
		return ia < ib
	}
	sort.SliceStable(manifests, func(i, j int) bool { return less(manifests[i].kind, manifests[j].kind) })
	sort.SliceStable(hooks, func(i, j int) bool { return less(hooks[i].Kind, hooks[j].Kind) })

	res := &Result{Hooks: hooks, Objects: crdDir}
	for _, m := range manifests {
		res.Objects = append(res.Objects, m.objs...)
	}
	return res, nil
}

// hookEvents reads the helm.sh/hook annotation as Helm's manifest sorter does: isHook when the
// object has it; events nil when one of them is unknown (Helm then skips the document).
func hookEvents(o Object) (events []string, isHook bool, err error) {
	annotations, _, _ := unstructured.NestedFieldNoCopy(o.Object, "metadata", "annotations")
	m, ok := annotations.(map[string]any)
	if !ok && annotations != nil {
		return nil, false, fmt.Errorf("%s %s: metadata.annotations is not a map", o.GetKind(), o.GetName())
	}
	for k, v := range m {
		if _, ok := v.(string); !ok {
			// Helm reads annotations as strings and fails the render on anything else.
			return nil, false, fmt.Errorf("%s %s: annotation %s is not a string", o.GetKind(), o.GetName(), k)
		}
	}
	value, ok := m[release.HookAnnotation].(string)
	if !ok {
		return nil, false, nil
	}
	for _, e := range strings.Split(value, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if !knownHookEvents[e] {
			return nil, true, nil
		}
		if e == "test-success" { // Helm 2's name of the test hook
			e = string(release.HookTest)
		}
		events = append(events, e)
	}
	return events, true, nil
}

var knownHookEvents = map[string]bool{"test-success": true}

func init() {
	for _, e := range []release.HookEvent{release.HookPreInstall, release.HookPostInstall, release.HookPreDelete, release.HookPostDelete,
		release.HookPreUpgrade, release.HookPostUpgrade, release.HookPreRollback, release.HookPostRollback, release.HookTest} {
		knownHookEvents[string(e)] = true
	}
}

// Split parses a Helm manifest stream ("---\n# Source: …") into objects.
func Split(manifest string) ([]Object, error) {
	var out []Object
	for _, doc := range splitManifests(manifest) {
		source := sourceOf(doc)
		m, err := decode([]byte(doc))
		if err != nil {
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

// SplitMeta splits a manifest stream like Split but decodes only each object's identity
// (apiVersion, kind, metadata.name and .namespace): what a caller needs of a CRD bundle, whose
// bodies are megabytes.
func SplitMeta(manifest string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, doc := range splitManifests(manifest) {
		var id struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		if err := yamlv2.Unmarshal([]byte(doc), &id); err != nil {
			return nil, fmt.Errorf("%s: invalid YAML: %w", sourceOf(doc), err)
		}
		if id.APIVersion == "" && id.Kind == "" && id.Metadata.Name == "" {
			continue // comments only
		}
		if id.Kind == "" || id.APIVersion == "" || id.Metadata.Name == "" {
			return nil, fmt.Errorf("%s: object without apiVersion, kind or metadata.name", sourceOf(doc))
		}
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(id.APIVersion)
		u.SetKind(id.Kind)
		u.SetName(id.Metadata.Name)
		u.SetNamespace(id.Metadata.Namespace)
		out = append(out, u)
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

// Encode writes objects as one YAML stream with sorted keys, the same bytes for the same objects:
// byte for byte what sigs.k8s.io/yaml.Marshal writes, without its JSON round trip (JSON
// encoding, then a YAML parse of the JSON), which was most of the encode time of phase 0's
// megabytes of CRDs. sigs.k8s.io/yaml hands go-yaml v2 the values as go-yaml parses them back
// from JSON; yamlValues converts to exactly those (see FuzzEncode).
func Encode(objs []*unstructured.Unstructured) ([]byte, error) {
	// Each object encodes on its own, so the megabytes of phase 0 encode on every core.
	encoded, err := parallel.Map(len(objs), func(i int) ([]byte, error) {
		o := objs[i]
		v, ok := yamlValues(o.Object)
		var data []byte
		var err error
		if ok {
			data, err = yamlv2.Marshal(v)
		} else {
			data, err = yaml.Marshal(o.Object) // a value JSON would rewrite: its own way
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		return data, nil
	})
	if err != nil {
		return nil, err
	}
	return bytes.Join(encoded, []byte("---\n")), nil
}

// yamlValues returns v with every value as go-yaml v2 decodes it from its JSON encoding, or
// false when v holds something whose JSON encoding would change it (invalid UTF-8, which JSON
// replaces; a NaN or infinity, which JSON refuses; a type other than JSON's). JSON writes an
// integral float below 1e21 as digits, which go-yaml reads as an int64 if they fit, else a
// uint64, else a float; every other value reads back as itself.
func yamlValues(v any) (any, bool) {
	return rebuild(v, func(k string) (string, bool) { return k, utf8.ValidString(k) }, yamlLeaf)
}

func yamlLeaf(v any) (any, bool) {
	switch v := v.(type) {
	case string:
		return v, utf8.ValidString(v)
	case float64:
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			return nil, false
		case v != math.Trunc(v) || math.Abs(v) >= 1e21:
			return v, true
		case math.Abs(v) < 1<<53: // exact as an integer
			return int64(v), true
		}
		// JSON's digits of a larger one are its shortest decimal, padded with zeros.
		digits := strconv.FormatFloat(v, 'f', -1, 64)
		if i, err := strconv.ParseInt(digits, 10, 64); err == nil {
			return i, true
		}
		if u, err := strconv.ParseUint(digits, 10, 64); err == nil {
			return u, true
		}
		return v, true
	case bool, nil, int64, int, int32:
		return v, true
	}
	return nil, false
}

// rebuild copies a tree of maps with K keys and []any, with string keys (key) and leaf's
// values, or returns false where key or leaf does.
func rebuild[K comparable](v any, key func(K) (string, bool), leaf func(any) (any, bool)) (any, bool) {
	switch v := v.(type) {
	case map[K]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := key(k)
			if !ok {
				return nil, false
			}
			c, ok := rebuild(e, key, leaf)
			if !ok {
				return nil, false
			}
			out[ks] = c
		}
		return out, true
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, ok := rebuild(e, key, leaf)
			if !ok {
				return nil, false
			}
			out[i] = c
		}
		return out, true
	}
	return leaf(v)
}

// decode is sigs.k8s.io/yaml.Unmarshal into a map, the values Split has always returned,
// without its JSON round trip (go-yaml's values made JSON-able, JSON encoding, JSON decoding),
// a fifth of the parse of phase 0's megabytes. It converts go-yaml v2's values to what that round
// trip makes of them: string keys, numbers as float64, nested maps as map[string]any. Anything
// the round trip would rewrite or refuse (keys that are not strings, invalid UTF-8, NaN and
// infinities, timestamps, a document that is not a map), and every error, is left to
// sigs.k8s.io/yaml itself (FuzzDecode).
func decode(doc []byte) (map[string]any, error) {
	var v any
	if err := yamlv2.Unmarshal(doc, &v); err == nil {
		if v == nil {
			return nil, nil
		}
		if m, ok := v.(map[any]any); ok {
			if out, ok := jsonValue(m); ok {
				return out.(map[string]any), nil
			}
		}
	}
	var m map[string]any
	err := yaml.Unmarshal(doc, &m)
	return m, err
}

// jsonValue is v as JSON encoding and decoding into an interface{} would return it, or false
// where the round trip could change it.
func jsonValue(v any) (any, bool) {
	return rebuild(v, func(k any) (string, bool) {
		ks, ok := k.(string)
		return ks, ok && utf8.ValidString(ks)
	}, jsonLeaf)
}

func jsonLeaf(v any) (any, bool) {
	switch v := v.(type) {
	case string:
		return v, utf8.ValidString(v)
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, !math.IsNaN(v) && !math.IsInf(v, 0)
	case bool, nil:
		return v, true
	}
	return nil, false
}
