package render

import (
	"os"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
)

// The values check with a compiled schema kept per process agrees with Helm's, and its errors are
// Helm's: on the published charts that carry a schema, values that pass and values that fail.
func TestSchemaValidationIsHelms(t *testing.T) {
	for _, c := range []struct {
		chart  string
		values []map[string]any
	}{
		{"cilium-1.19.6.tgz", []map[string]any{
			nil,
			{"kubeProxyReplacement": true, "k8sServicePort": 7445, "operator": map[string]any{"replicas": 2}},
			{"kubeProxyReplacement": 3.5},
			{"k8sServicePort": map[string]any{"port": 1}},
			{"operator": map[string]any{"replicas": "two"}},
		}},
		{"cert-manager-v1.19.1.tgz", []map[string]any{nil, {"crds": map[string]any{"enabled": true}}, {"crds": map[string]any{"enabled": "yes"}}}},
		{"external-secrets-2.9.0.tgz", []map[string]any{nil, {"installCRDs": true}, {"installCRDs": "yes"}}},
		{"flux-operator-0.49.0.tgz", []map[string]any{nil, {"installCRDs": true}, {"installCRDs": 1}}},
	} {
		ch, err := loader.Load(upstreamCharts + c.chart)
		if err != nil {
			t.Fatal(err)
		}
		failures := 0
		for _, v := range c.values {
			opts := chartutil.ReleaseOptions{Name: "r", Namespace: "n", Revision: 1, IsInstall: true}
			_, want := chartutil.ToRenderValuesWithSchemaValidation(ch, v, opts, nil, false)
			top, got := renderValues(ch, v, opts, nil)
			if (want == nil) != (got == nil) || (want != nil && want.Error() != got.Error()) {
				t.Errorf("%s with %v: got %v, Helm says %v", c.chart, v, got, want)
			}
			if want != nil {
				failures++
			} else if vals, _ := top["Values"].(chartutil.Values); !valuesPass(ch, vals) {
				t.Errorf("%s with %v: Helm passes the values, the compiled schema does not (Helm's check ran instead)", c.chart, v)
			}
		}
		if failures == 0 || failures == len(c.values) {
			t.Errorf("%s: %d of %d value sets fail Helm's schema check; the test wants both kinds", c.chart, failures, len(c.values))
		}
	}
}

// A schema that refers outside its file is left to Helm (here its file loader, as Helm's), and so
// is one that cannot compile.
func TestSchemaOutsideTheFileIsHelms(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "port.json"), []byte(`{"type": "integer"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := `{"type": "object", "properties": {"port": {"$ref": "file://` + filepath.ToSlash(dir) + `/port.json"}}}`
	for _, schema := range []string{ref, `{"type": "object", "properties": {"port": {"type": 7}}}`} {
		ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "demo", Version: "0.1.0"}, Schema: []byte(schema)}
		for _, v := range []map[string]any{{"port": 1}, {"port": "one"}} {
			opts := chartutil.ReleaseOptions{Name: "r", Namespace: "n"}
			_, want := chartutil.ToRenderValuesWithSchemaValidation(ch, v, opts, nil, false)
			_, got := renderValues(ch, v, opts, nil)
			if (want == nil) != (got == nil) || (want != nil && want.Error() != got.Error()) {
				t.Errorf("schema %s, values %v: got %v, Helm says %v", schema, v, got, want)
			}
		}
	}
}

// SameAgain answers true for a chart that renders the same every time and false for one with
// render-time randomness, whose objects then differ.
func TestSameAgain(t *testing.T) {
	in := Input{Chart: testChart(), ReleaseName: "r", Namespace: "n", KubeVersion: "1.35.4"}
	res, err := RenderRelease(in)
	if err != nil {
		t.Fatal(err)
	}
	if same, err := SameAgain(in, res); err != nil || !same {
		t.Fatalf("deterministic chart: same %v, err %v", same, err)
	}
	random := testChart()
	random.Templates = append(random.Templates, &chart.File{Name: "templates/token.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: token}\ndata: {token: {{ randAlphaNum 16 | quote }}}\n")})
	in.Chart = random
	if res, err = RenderRelease(in); err != nil {
		t.Fatal(err)
	}
	if same, err := SameAgain(in, res); err != nil || same {
		t.Fatalf("chart with randAlphaNum: same %v, err %v", same, err)
	}
	if same, _ := SameAgain(in, &Result{}); same {
		t.Fatal("a result without the engine's output is never the same")
	}
}
