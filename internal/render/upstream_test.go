package render

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The published charts (integration/testdata/upstream-charts, unmodified).
const upstreamCharts = "../../integration/testdata/upstream-charts/"

// helmApplies returns the documents Helm's kube client builds from a release manifest: its YAML
// reader splits at "---" lines and keeps each document's bytes as they are.
func helmApplies(t *testing.T, manifest string) []string {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	var docs []string
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(doc))
	}
}

// Defect 2 of issue 13: the boot render is what Helm applies, byte for byte per document. The
// real Cilium chart's cilium-envoy-config ends its document with a | block, whose final newline
// the old splitter trimmed off, so Helm's adoption rewrote that ConfigMap.
func TestDocumentsAreWhatHelmApplies(t *testing.T) {
	ch, err := loader.Load(upstreamCharts + "cilium-1.19.6.tgz")
	if err != nil {
		t.Fatal(err)
	}
	// Helm's own install, client-only dry run: the manifest helm install would apply.
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.ClientOnly, install.DryRun, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = "cilium", "kube-system"
	if install.KubeVersion, err = chartutil.ParseKubeVersion("1.35.4"); err != nil {
		t.Fatal(err)
	}
	rel, err := install.Run(ch, map[string]any{"hubble": map[string]any{"tls": map[string]any{"auto": map[string]any{"enabled": false}, "server": map[string]any{"existingSecret": "hubble-server-certs"}}}})
	if err != nil {
		t.Fatal(err)
	}

	var want []string
	for _, d := range helmApplies(t, rel.Manifest) {
		// The reader hands back the stream's first separator line with the first document.
		if d = strings.TrimPrefix(d, "---\n"); strings.TrimSpace(d) != "" {
			want = append(want, d)
		}
	}
	if got := splitManifests(rel.Manifest); !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("document %d differs from what Helm applies:\n got %q\nwant %q", i, got[i], want[i])
			}
		}
		t.Fatalf("%d documents, Helm applies %d", len(got), len(want))
	}

	objs, err := Split(rel.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(want) {
		t.Fatalf("%d objects, Helm applies %d documents", len(objs), len(want))
	}
	for i, doc := range want {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(objs[i].Object, m) {
			t.Errorf("%s %s from %s differs from what Helm applies", objs[i].GetKind(), objs[i].GetName(), objs[i].Template)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == "cilium-envoy-config" {
			v, _ := o.Object["data"].(map[string]any)["bootstrap-config.json"].(string)
			if !strings.HasSuffix(v, "}\n") {
				t.Errorf("cilium-envoy-config bootstrap-config.json ends %q, want its | block's final newline", v[max(0, len(v)-10):])
			}
			return
		}
	}
	t.Error("the real Cilium chart rendered no cilium-envoy-config")
}
