package check

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootcore-dev/bootcore/internal/chartsource"
	"github.com/bootcore-dev/bootcore/internal/gen"
)

// The corpus (testdata/corpus) holds one minimal tree per shape of real GitOps repositories
// that check once reported falsely (issue 15), each with what Flux does there: not walked and
// listed, skipped with the reason, substituted, decrypted when an age key is given, or a true
// error. Each tree's findings are listed exactly: file:line, severity, check and a part of
// the message. The gen and patches findings every tree ends with (no chart registry here,
// nothing generated yet) are left out of the lists.

type want struct {
	at, severity, check, message string
}

func (w want) String() string {
	return fmt.Sprintf("%s %s [%s] …%s…", w.at, w.severity, w.check, w.message)
}

var corpus = map[string][]want{
	// A space or a zero-width character in a file name, an unused docs file, a broken YAML
	// file that .sourceignore leaves out of the artifact: nothing aborts the walk. A build
	// that reads such a name is not checked here (kustomize's in-memory file system refuses
	// it; Flux builds on disk).
	"illegal-names": {
		{"kubernetes/apps/tools/ks.yaml:18", Skipped, "tree", "Kustomization flux-system/overlays: not checked: its build reads kubernetes/apps/tools/overlays/Movies - Overlays.yml"},
	},
	// ${VAR} meant for the application: no postBuild, or substitute: disabled. A variable a
	// postBuild Kustomization does not define stays an error.
	"substitution-scope": {
		{"kubernetes/apps/o11y/app/app/configmap.yaml:2", Error, "substitution", `Kustomization o11y/echo: postBuild substitution in ConfigMap echo (kubernetes/apps/o11y/app/app/configmap.yaml): envsubst error: variable substitution failed: variable not set (strict mode): "SECRET_DOMAIN"`},
	},
	// The entry's own GitRepository (toboshii shape: flux-cluster) and one with the same URL
	// and branch in another spelling are this repository; another repository or branch is not.
	"other-gitrepository": {
		{"cluster/flux/apps.yaml:56", Error, "tree", "Kustomization flux-system/core: kustomize build cluster/core"},
		{"cluster/flux/apps.yaml:29", Skipped, "tree", "Kustomization flux-system/apps-dev: not walked: source GitRepository flux-system/home-ops-dev (https://github.com/example/home-ops branch dev) is another repository or ref"},
		{"cluster/flux/flux-system/flux-installation.yaml:13", Skipped, "tree", "Kustomization flux-system/flux-installation: not walked: source GitRepository flux-system/flux-installation (https://github.com/fluxcd/flux2 tag v2.7.0) is another repository or ref"},
	},
	// Secrets made in-cluster: an ExternalSecret's target, agent.secrets, bootstrapSecrets.
	"runtime-secrets": {
		{"kubernetes/apps/network/broken/ks.yaml:2", Error, "substitution", "Kustomization network/broken (kubernetes/apps/network/broken/ks.yaml): postBuild.substituteFrom Secret network/nowhere-secret is not produced by any Kustomization of this cluster (a Secret created outside Git before Flux runs belongs in bootstrapSecrets of bootstrap/bootcore.yaml: [network/nowhere-secret])"},
	},
	// Without an age key, variables of SOPS-encrypted Secrets (under data: or stringData:)
	// are known only in-cluster. Plain stringData keys are variables.
	"sops": {
		{"kubernetes/apps/settings/app/configmap.yaml:2", Error, "substitution", `Kustomization flux-system/settings: postBuild substitution in ConfigMap settings (kubernetes/apps/settings/app/configmap.yaml): envsubst error: variable substitution failed: variable not set (strict mode): "SECRET_DOMIAN"`},
	},
	// Remote bases and URL files need the network; the rest of the Kustomization is walked
	// (its HelmRelease's missing source is found).
	"remote-bases": {
		{"kubernetes/apps/storage/snapshot-controller/helmrelease.yaml:1", Error, "sources", "HelmRelease storage/snapshot-controller (kubernetes/apps/storage/snapshot-controller/helmrelease.yaml): spec.chart.spec.sourceRef: HelmRepository flux-system/piraeus is not applied by any Kustomization of this cluster"},
		{"kubernetes/apps/storage/snapshot-controller/kustomization.yaml:4", Skipped, "tree", "needs network: github.com/kubernetes-csi/external-snapshotter//client/config/crd?ref=v8.2.0 is not fetched offline"},
		{"kubernetes/apps/storage/snapshot-controller/kustomization.yaml:5", Skipped, "tree", "needs network: https://raw.githubusercontent.com/movetokube/postgres-operator/1.1.1/deploy/crds/db.movetokube.com_postgres_crd.yaml is not fetched offline"},
		{"kubernetes/apps/storage/snapshot-controller/kustomization.yaml:11", Skipped, "tree", "needs network: dashboard.json=https://raw.githubusercontent.com/kubernetes-csi/external-snapshotter/master/dashboard.json is not fetched offline"},
	},
	// valuesFrom Secret (optional or not) and chartRef HelmChart are fine for Flux; only the
	// boot release must not take values from a Secret.
	"gen-limits": {
		{"kubernetes/apps/kube-system/cilium/app/helmrelease.yaml:1", Error, "values", "HelmRelease kube-system/cilium (kubernetes/apps/kube-system/cilium/app/helmrelease.yaml): spec.valuesFrom[0] (Secret cilium-values): kind Secret is refused for a boot release"},
	},
	// OCIRepository, Bucket and ExternalArtifact sources are listed, with the reason.
	"other-sources": {
		{"kubernetes/apps/platform/ks.yaml:2", Skipped, "tree", "Kustomization flux-system/podinfo-oci: not walked: source OCIRepository flux-system/podinfo is not this repository"},
		{"kubernetes/apps/platform/ks.yaml:17", Skipped, "tree", "Kustomization flux-system/backups: not walked: source Bucket flux-system/minio is not this repository"},
		{"kubernetes/apps/platform/ks.yaml:32", Skipped, "tree", "Kustomization flux-system/generated: not walked: source ExternalArtifact flux-system/gen-manifests is not this repository"},
	},
	// Problems in apps unrelated to boot: check reports them (gen does not stop at them,
	// TestCorpusGenScope).
	"gen-scope": {
		{"kubernetes/apps/default/ks.yaml:2", Error, "tree", `Kustomization flux-system/moved-app (kubernetes/apps/default/ks.yaml): spec.path "kubernetes/apps/default/moved" does not exist in the repository`},
		{"kubernetes/apps/default/typo/configmap.yaml:2", Error, "substitution", `envsubst error: variable substitution failed: variable not set (strict mode): "APPP"`},
	},
	// No cluster-settings and no CNI release in the spec; a generated ConfigMap's problem is
	// reported at the generator entry of the kustomization that made it.
	"no-settings-no-cni": {
		{"bootstrap/bootcore.yaml:0", Skipped, "gen", "the spec names no cni.helmRelease"},
		{"apps/staging/kustomization.yaml:10", Error, "substitution", `postBuild substitution in ConfigMap podinfo-extra-66tk655m6g (apps/staging/kustomization.yaml): envsubst error: variable substitution failed: variable not set (strict mode): "REGION"`},
	},
}

func TestCorpus(t *testing.T) {
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("SOPS_AGE_KEY_FILE", "")
	for name, wants := range corpus {
		t.Run(name, func(t *testing.T) { checkCorpusTree(t, name, wants) })
	}
}

// With the age key the SOPS Secret is decrypted as kustomize-controller decrypts it: its keys
// are variables, so Flux's refusal of a key that is no variable name shows, and the document
// whose values were moved after encryption fails its MAC.
func TestCorpusSOPSWithKey(t *testing.T) {
	key, _ := filepath.Abs("../sopsage/testdata/test.agekey")
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("SOPS_AGE_KEY_FILE", key)
	checkCorpusTree(t, "sops", append([]want{
		{"kubernetes/apps/external-secrets/app/configmap.yaml:2", Error, "substitution", "Kustomization external-secrets/onepassword: postBuild substitution in ConfigMap connect (kubernetes/apps/external-secrets/app/configmap.yaml): envsubst error: '1password-credentials.json' var name is invalid"},
		{"kubernetes/apps/external-secrets/secret/data.sops.yaml:1", Error, "tree", "Secret onepassword-data (kubernetes/apps/external-secrets/secret/data.sops.yaml): SOPS decryption with the age key of SOPS_AGE_KEY/SOPS_AGE_KEY_FILE: data.1password-credentials.json: cannot decrypt value"},
	}, corpus["sops"]...))
}

func checkCorpusTree(t *testing.T, name string, wants []want) {
	t.Helper()
	r, err := Run(context.Background(), filepath.Join("testdata/corpus", name), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var got []Finding
	for _, f := range r.Findings {
		if f.Check == "patches" || f.Check == "gen" && (strings.Contains(f.Message, "needs network") || strings.Contains(f.Message, "fix the errors above first")) {
			continue
		}
		got = append(got, f)
	}
	match := func(f Finding, w want) bool {
		file := f.File
		if file == "" {
			file = "(repository)"
		}
		return fmt.Sprintf("%s:%d", file, f.Line) == w.at && f.Severity == w.severity && f.Check == w.check && strings.Contains(f.Message, w.message)
	}
	used := make([]bool, len(got))
outer:
	for _, w := range wants {
		for i, f := range got {
			if !used[i] && match(f, w) {
				used[i] = true
				continue outer
			}
		}
		t.Errorf("missing finding %s", w)
	}
	for i, f := range got {
		if !used[i] {
			t.Errorf("unexpected finding %s:%d %s [%s] %s", f.File, f.Line, f.Severity, f.Check, f.Message)
		}
	}
}

// gen walks only what leads to the boot releases: the corpus trees whose problems are all in
// unrelated apps get as far as fetching the boot chart, and fail there, naming it.
func TestCorpusGenScope(t *testing.T) {
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("SOPS_AGE_KEY_FILE", "")
	for _, name := range []string{"gen-scope", "substitution-scope", "runtime-secrets", "remote-bases", "sops", "other-gitrepository"} {
		_, err := gen.Run(context.Background(), gen.Options{Repo: filepath.Join("testdata/corpus", name), CacheDir: t.TempDir()})
		if err == nil || !chartsource.IsUnreachable(err) || !strings.Contains(err.Error(), "https://helm.cilium.io") || !strings.Contains(err.Error(), "HelmRelease kube-system/cilium") {
			t.Errorf("%s: gen error %v, want the cilium chart repository unreachable", name, err)
		}
	}
	// A problem on the way to the boot release still stops gen.
	_, err := gen.Run(context.Background(), gen.Options{Repo: "testdata/corpus/gen-limits", CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "kind Secret is refused for a boot release") {
		t.Errorf("gen-limits: gen error %v, want the boot release's Secret values refused", err)
	}
}

// An empty report is `"findings": []` in JSON (not null), and -o github turns findings into
// workflow commands with their file and line.
func TestReportFormats(t *testing.T) {
	var buf strings.Builder
	if err := (&Report{Findings: []Finding{}, Order: map[string][]string{}}).PrintJSON(&buf); err != nil || !strings.Contains(buf.String(), `"findings": []`) {
		t.Errorf("empty report JSON %q (%v), want \"findings\": []", buf.String(), err)
	}
	r, err := Run(context.Background(), "testdata/corpus/gen-scope", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	r.PrintGitHub(&buf, ".")
	want := "::error file=kubernetes/apps/default/ks.yaml,line=2,title=bootcore check [tree]::cluster main: Kustomization flux-system/moved-app"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("-o github output:\n%s\nwant a line starting %q", buf.String(), want)
	}
}
