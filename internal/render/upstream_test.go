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

// helmInstall is how bootcore rendered before RenderRelease did Helm's steps itself: Helm's
// install, client-only dry run (`helm template`), its manifest split into objects.
func helmInstall(in Input) (*Result, error) {
	kv, err := chartutil.ParseKubeVersion(in.KubeVersion)
	if err != nil {
		return nil, err
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.ClientOnly, install.DryRun, install.Replace, install.DisableHooks = true, true, true, true
	install.IncludeCRDs = in.IncludeCRDDir
	install.ReleaseName, install.Namespace, install.KubeVersion = in.ReleaseName, in.Namespace, kv
	values := in.Values
	if values == nil {
		values = map[string]any{}
	}
	rel, err := install.Run(in.Chart, copyValues(values))
	if err != nil {
		return nil, err
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

// RenderRelease renders the published charts into exactly the objects, in exactly the order,
// and the hooks that Helm's install renders, with the values bootcore boots them with.
func TestRenderReleaseIsHelmInstall(t *testing.T) {
	v := func(doc string) map[string]any {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	boot := "hubble: {tls: {auto: {enabled: false}, server: {existingSecret: hubble-server-certs}}}\nkubeProxyReplacement: true\nk8sServiceHost: 127.0.0.1\nk8sServicePort: 7445\n"
	for _, c := range []struct {
		name, pkg, release, namespace string
		values                        map[string]any
		crdDir                        bool
	}{
		{"cilium boot values", "cilium-1.19.6.tgz", "cilium", "kube-system", v(boot), false},
		{"cilium with hooks", "cilium-1.19.6.tgz", "cilium", "kube-system", v("hubble: {tls: {auto: {enabled: true, method: cronJob}}}\nclustermesh: {useAPIServer: true, mcsapi: {enabled: true, corednsAutoConfigure: {enabled: true}}}\n"), false},
		{"cert-manager CRDs", "cert-manager-v1.19.1.tgz", "cert-manager", "cert-manager", v("crds: {enabled: true}"), true},
		{"external-secrets CRDs", "external-secrets-2.9.0.tgz", "external-secrets", "external-secrets", v("installCRDs: true"), true},
		{"flux-operator CRDs", "flux-operator-0.49.0.tgz", "flux-operator", "flux-system", v("installCRDs: true"), true},
		{"coredns", "coredns-1.46.2.tgz", "coredns", "kube-system", v("service: {clusterIP: 10.96.0.10}\nk8sAppLabelOverride: kube-dns\n"), false},
		{"flux-instance", "flux-instance-0.49.0.tgz", "flux", "flux-system", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			load := func() Input {
				ch, err := loader.Load(upstreamCharts + c.pkg)
				if err != nil {
					t.Fatal(err)
				}
				return Input{Chart: ch, ReleaseName: c.release, Namespace: c.namespace, Values: c.values, KubeVersion: "1.35.4", IncludeCRDDir: c.crdDir}
			}
			want, err := helmInstall(load())
			if err != nil {
				t.Fatal(err)
			}
			// Objects with random content (generated certificates) compare by identity only.
			again, err := helmInstall(load())
			if err != nil {
				t.Fatal(err)
			}
			got, err := RenderRelease(load())
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Objects) != len(want.Objects) {
				t.Fatalf("%d objects, Helm's install renders %d", len(got.Objects), len(want.Objects))
			}
			for i := range want.Objects {
				g, w := got.Objects[i], want.Objects[i]
				random := !reflect.DeepEqual(w.Object, again.Objects[i].Object)
				if g.Template != w.Template || g.GetKind() != w.GetKind() || g.GetName() != w.GetName() || !random && !reflect.DeepEqual(g.Object, w.Object) {
					t.Fatalf("object %d: %s %s from %s, Helm's install renders %s %s from %s (or its content differs)",
						i, g.GetKind(), g.GetName(), g.Template, w.GetKind(), w.GetName(), w.Template)
				}
			}
			if !reflect.DeepEqual(got.Hooks, want.Hooks) {
				t.Errorf("hooks %v, Helm's install has %v", got.Hooks, want.Hooks)
			}
			if c.name == "cilium with hooks" && len(want.Hooks) == 0 {
				t.Error("the hooks case rendered no hook")
			}
		})
	}
}
