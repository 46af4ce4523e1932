package render

import (
	"fmt"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
)

func testChart() *chart.Chart {
	return &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: "v2", Name: "demo", Version: "0.1.0"},
		Values:   map[string]any{"replicas": 1},
		Templates: []*chart.File{
			{Name: "templates/deploy.yaml", Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
spec:
  replicas: {{ .Values.replicas }}
---
# an empty document is dropped
`)},
			{Name: "templates/cm.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: kube-{{ .Capabilities.KubeVersion.Minor }}}
`)},
			{Name: "templates/hook.yaml", Data: []byte(`apiVersion: batch/v1
kind: Job
metadata:
  name: hook
  annotations: {"helm.sh/hook": post-install}
`)},
		},
		Files: []*chart.File{{Name: "crds/crd.yaml", Data: []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
`)}},
	}
}

func TestRenderLikeHelmTemplate(t *testing.T) {
	in := Input{Chart: testChart(), ReleaseName: "rel", Namespace: "ns", Values: map[string]any{"replicas": 3}, KubeVersion: "1.35.4"}
	objs, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range objs {
		got[o.GetKind()+"/"+o.GetName()] = o.Template
	}
	want := map[string]string{"Deployment/rel": "demo/templates/deploy.yaml", "ConfigMap/kube-35": "demo/templates/cm.yaml"}
	if len(got) != len(want) {
		t.Fatalf("objects = %v, want %v (hooks and crds/ excluded)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s from %q, want %q", k, got[k], v)
		}
	}
	// Helm install order: ConfigMap before Deployment.
	if objs[0].GetKind() != "ConfigMap" {
		t.Errorf("first object %s, want ConfigMap (Helm's install order)", objs[0].GetKind())
	}
	if r, _, _ := unstructuredInt(objs[1].Object, "spec", "replicas"); r != 3 {
		t.Errorf("replicas = %v, want 3 from values", r)
	}
	if in.Values["replicas"] != 3 {
		t.Errorf("Render changed the caller's values: %v", in.Values)
	}

	in.IncludeCRDDir = true
	objs, err = Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].GetKind() != "CustomResourceDefinition" || objs[0].Template != "demo/crds/crd.yaml" {
		t.Errorf("with IncludeCRDDir the crds/ file comes first, got %s from %s", objs[0].GetKind(), objs[0].Template)
	}
}

func TestRenderErrors(t *testing.T) {
	c := testChart()
	c.Templates = append(c.Templates, &chart.File{Name: "templates/bad.yaml", Data: []byte("{{ fail \"boom\" }}")})
	if _, err := Render(Input{Chart: c, ReleaseName: "r", Namespace: "n", KubeVersion: "1.35.4"}); err == nil {
		t.Error("a failing template must fail the render")
	}
	if _, err := Render(Input{Chart: testChart(), ReleaseName: "r", Namespace: "n", KubeVersion: "not-a-version"}); err == nil {
		t.Error("a bad kubernetes version must be an error")
	}
	if _, err := Split("---\n# Source: x/templates/a.yaml\nmetadata: {name: a}\n"); err == nil {
		t.Error("an object without apiVersion/kind must be an error")
	}
}

func unstructuredInt(m map[string]any, path ...string) (float64, bool, error) {
	var cur any = m
	for _, p := range path {
		cur = cur.(map[string]any)[p]
	}
	switch v := cur.(type) {
	case float64:
		return v, true, nil
	case int64:
		return float64(v), true, nil
	}
	return 0, false, nil
}

// Helm's manifest rules at their edges: NOTES.txt, partials, comment-only and multi-document
// templates, unknown hook events, Helm 2's test-success, unknown kinds, a multi-document crds/
// file, a block scalar ending a document. RenderRelease agrees with Helm's install on each.
func TestRenderReleaseEdgesLikeHelmInstall(t *testing.T) {
	c := testChart()
	c.Templates = append(c.Templates,
		&chart.File{Name: "templates/NOTES.txt", Data: []byte("thanks for installing {{ .Release.Name }}\n")},
		&chart.File{Name: "templates/_helpers.tpl", Data: []byte(`{{- define "x" }}kind: Secret{{ end }}`)},
		&chart.File{Name: "templates/comments.yaml", Data: []byte("# only a comment\n---\n\n---\n# another\n")},
		&chart.File{Name: "templates/multi.yaml", Data: []byte("apiVersion: example.com/v1\nkind: Zebra\nmetadata: {name: z}\n---\napiVersion: example.com/v1\nkind: Aardvark\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: space}\n")},
		&chart.File{Name: "templates/a-first.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: block}\ndata:\n  script: |\n    echo hi\n")},
		&chart.File{Name: "templates/hooks.yaml", Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: unknown, annotations: {helm.sh/hook: post-dinner}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: t, annotations: {helm.sh/hook: \" Test-Success , pre-install\"}}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, annotations: {helm.sh/hook: pre-install}}\n")},
	)
	c.Files = append(c.Files, &chart.File{Name: "crds/more.yaml", Data: []byte("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.example.com}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: b.example.com}\n")})
	for _, crds := range []bool{false, true} {
		in := Input{Chart: c, ReleaseName: "rel", Namespace: "ns", KubeVersion: "1.35.4", IncludeCRDDir: crds}
		want, err := helmInstall(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RenderRelease(in)
		if err != nil {
			t.Fatal(err)
		}
		describe := func(r *Result) string {
			var b strings.Builder
			for _, o := range r.Objects {
				fmt.Fprintf(&b, "%s %s %s %v\n", o.Template, o.GetKind(), o.GetName(), o.Object)
			}
			fmt.Fprintf(&b, "hooks %v\n", r.Hooks)
			return b.String()
		}
		if g, w := describe(got), describe(want); g != w {
			t.Errorf("IncludeCRDDir %v:\n%s\nHelm's install:\n%s", crds, g, w)
		}
		if len(want.Objects) < 7 || len(want.Hooks) != 3 {
			t.Errorf("IncludeCRDDir %v: the chart's edges rendered %d objects and %d hooks", crds, len(want.Objects), len(want.Hooks))
		}
	}
}
