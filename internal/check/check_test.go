package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bootcore-dev/bootcore/internal/testutil"
)

const lab = "../../integration/testdata/lab"

func labCopy(t *testing.T) string { return testutil.CopyDir(t, lab) }

func edit(t *testing.T, root, rel, old, new string) { testutil.Edit(t, root, rel, old, new) }

func TestCleanTreesPass(t *testing.T) {
	for _, repo := range []string{lab, "../.."} {
		r, err := Run(context.Background(), repo, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range r.Findings {
			if f.Severity == Error {
				t.Errorf("%s: %s:%d [%s] %s", repo, f.File, f.Line, f.Check, f.Message)
			}
		}
		if got := strings.Join(r.Order["infra"], " "); !strings.HasPrefix(got, "flux-system/cilium flux-system/coredns flux-system/cert-manager flux-system/external-secrets") {
			t.Errorf("%s: order = %s", repo, got)
		}
	}
	// The real tree cannot be rendered offline: that is said, not passed.
	r, _ := Run(context.Background(), "../..", t.TempDir())
	var skipped []string
	for _, f := range r.Findings {
		if f.Severity == Skipped {
			skipped = append(skipped, f.Check+": "+f.Message)
		}
	}
	if !strings.Contains(strings.Join(skipped, "\n"), "gen: gen --check needs network") {
		t.Errorf("real tree: gen must be reported as skipped for lack of network, got %v", skipped)
	}
}

const workloads = "kubernetes/clusters/infra/workloads.yaml"
const smoke = "kubernetes/workloads/infra/smoke.yaml"
const cilium = "kubernetes/infrastructure/networking/cilium/core/helmrelease.yaml"

// Each defect yields exactly its finding, located in the file that has it.
func TestDefects(t *testing.T) {
	release := func(extra string) string {
		return "---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: app, namespace: smoke}\nspec:\n  interval: 1h\n  chart:\n    spec:\n      chart: app\n      sourceRef: {kind: HelmRepository, name: charts}\n" + extra
	}
	cases := []struct {
		name   string
		mutate func(t *testing.T, root string)
		check  string
		file   string
		line   int
		want   string
	}{
		{"missing path", func(t *testing.T, root string) {
			edit(t, root, workloads, "path: ./kubernetes/workloads/infra", "path: ./kubernetes/workloads/nowhere")
		}, "tree", workloads, 3, `"kubernetes/workloads/nowhere" does not exist`},
		{"kustomize error", func(t *testing.T, root string) {
			edit(t, root, "kubernetes/workloads/infra/kustomization.yaml", "- smoke.yaml", "- smoke.yaml\n  - missing.yaml")
		}, "tree", workloads, 3, "missing.yaml"},
		{"unknown dependsOn", func(t *testing.T, root string) {
			edit(t, root, workloads, "- name: infrastructure", "- name: infrastructre")
		}, "dependsOn", workloads, 3, "flux-system/infrastructre"},
		{"cycle", func(t *testing.T, root string) {
			edit(t, root, "kubernetes/clusters/infra/infrastructure.yaml", "spec:\n", "spec:\n  dependsOn:\n    - name: workloads\n")
		}, "dependsOn", "", 0, "cycle: "},
		{"undefined variable", func(t *testing.T, root string) {
			edit(t, root, smoke, "${CLUSTER_NAME}", "${CLUSTER_NAEM}")
		}, "substitution", smoke, 0, "CLUSTER_NAEM"},
		{"dangling sourceRef", func(t *testing.T, root string) {
			edit(t, root, smoke, "managedBy: flux-system/workloads\n", "managedBy: flux-system/workloads\n"+release(""))
		}, "sources", smoke, 0, "HelmRepository smoke/charts"},
		{"dangling valuesFrom", func(t *testing.T, root string) {
			edit(t, root, smoke, "managedBy: flux-system/workloads\n", "managedBy: flux-system/workloads\n"+release("  valuesFrom: [{kind: ConfigMap, name: app-values}]\n")+
				"---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata: {name: charts, namespace: smoke}\nspec: {interval: 1h, url: https://charts.example.invalid}\n")
		}, "values", smoke, 0, "ConfigMap smoke/app-values"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := labCopy(t)
			tc.mutate(t, root)
			r, err := Run(context.Background(), root, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var errs []Finding
			for _, f := range r.Findings {
				if f.Severity == Error {
					errs = append(errs, f)
				}
			}
			if len(errs) != 1 {
				t.Fatalf("want exactly one error finding, got %d: %+v", len(errs), errs)
			}
			f := errs[0]
			if f.Check != tc.check || f.Cluster != "infra" || !strings.Contains(f.Message, tc.want) {
				t.Errorf("finding = %+v, want check %s mentioning %q", f, tc.check, tc.want)
			}
			if tc.file != "" && f.File != tc.file {
				t.Errorf("file = %s, want %s", f.File, tc.file)
			}
			if tc.line != 0 && f.Line != tc.line {
				t.Errorf("line = %d, want %d", f.Line, tc.line)
			}
			if f.File != "" && f.Line == 0 && tc.check != "tree" {
				t.Errorf("finding has a file but no line: %+v", f)
			}
			var buf bytes.Buffer
			if err := r.PrintJSON(&buf); err != nil || !json.Valid(buf.Bytes()) {
				t.Errorf("json output invalid: %v", err)
			}
		})
	}
}

// Committed patches are validated on their own: a hand edit that breaks phase separation is caught.
func TestCommittedPatches(t *testing.T) {
	root := labCopy(t)
	edit(t, root, "generated/infra/controlplane.yaml", "    - name: bootcore-cni\n      contents: |\n", "    - name: bootcore-cni\n      contents: |\n        apiVersion: v1\n        kind: Secret\n        metadata: {name: leaked, namespace: kube-system}\n        ---\n")
	r, err := Run(context.Background(), root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, f := range r.Findings {
		if f.Severity == Error {
			msgs = append(msgs, f.Check+" "+f.File+": "+f.Message)
		}
	}
	all := strings.Join(msgs, "\n")
	for _, w := range []string{"gen generated/infra/controlplane.yaml: stale", "patches generated/infra/controlplane.yaml: inline manifest bootcore-cni holds Secret leaked"} {
		if !strings.Contains(all, w) {
			t.Errorf("findings do not include %q:\n%s", w, all)
		}
	}
}

// Story AC7: the CNI HelmRelease must let helm-controller re-create what is removed after the
// hand-over. Both lab clusters share the HelmRelease, so each cluster reports it.
// It teaches by default (a warning, exit 0) and blocks when the spec sets
// cni.requireDriftDetection.
func TestCNIDriftDetection(t *testing.T) {
	for _, tc := range []struct {
		from, to, mode string
		require        bool
	}{
		{"  driftDetection:\n    mode: enabled\n", "", "disabled", false},
		{"mode: enabled", "mode: warn", "warn", false},
		{"  driftDetection:\n    mode: enabled\n", "", "disabled", true},
		{"mode: enabled", "mode: warn", "warn", true},
	} {
		root := labCopy(t)
		edit(t, root, cilium, tc.from, tc.to)
		sev := Warning
		if tc.require {
			sev = Error
			edit(t, root, "bootstrap/bootcore.yaml", "  helmRelease: kube-system/cilium\n", "  helmRelease: kube-system/cilium\n  requireDriftDetection: true\n")
		}
		r, err := Run(context.Background(), root, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if (r.Errors() > 0) != tc.require {
			t.Errorf("mode %s, require %v: %d errors", tc.mode, tc.require, r.Errors())
		}
		var clusters []string
		for _, f := range r.Findings {
			if f.Severity != sev || f.Check == "gen" {
				continue
			}
			clusters = append(clusters, f.Cluster)
			want := `HelmRelease kube-system/cilium, the CNI: spec.driftDetection.mode is "` + tc.mode + `", want "enabled"`
			if f.Check != "gitops" || f.File != cilium || f.Line == 0 || !strings.Contains(f.Message, want) {
				t.Errorf("mode %s: finding %+v, want [gitops] at %s naming %q", tc.mode, f, cilium, want)
			}
		}
		if strings.Join(clusters, " ") != "apps infra" {
			t.Errorf("mode %s: errors for clusters %v, want one each for apps and infra", tc.mode, clusters)
		}
	}
}

// check applies gen's cluster DNS rule to the committed patches: with Talos's CoreDNS off (the
// lab's static patches) and bootcore's DNS manifest gone from the control-plane patch, the
// hand-over would hang, so it is an error naming the spec field to set.
func TestCommittedPatchesWithoutClusterDNS(t *testing.T) {
	root := labCopy(t)
	edit(t, root, "generated/infra/controlplane.yaml", "    - name: bootcore-dns\n", "    - name: user-dns\n")
	r, err := Run(context.Background(), root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range r.Findings {
		if f.Severity == Error && f.Check == "patches" {
			all = append(all, f.File+": "+f.Message)
		}
	}
	want := "generated/infra/controlplane.yaml: " + "Talos's own CoreDNS is off and no boot release provides cluster DNS"
	if !strings.Contains(strings.Join(all, "\n"), want) || !strings.Contains(strings.Join(all, "\n"), "dns.helmRelease") {
		t.Errorf("patches findings do not include %q:\n%s", want, strings.Join(all, "\n"))
	}
}

// With Talos's own CoreDNS on and no DNS booted by bootcore, a Flux HelmRelease of the CoreDNS
// chart would fight Talos's over kube-system/kube-dns: a warning at the HelmRelease, naming the
// way out.
func TestTalosCoreDNSBesideAFluxCoreDNS(t *testing.T) {
	root := labCopy(t)
	edit(t, root, "patches/controlplane-common.yaml", "disabled: true", "disabled: false")
	edit(t, root, "bootstrap/bootcore.yaml", "dns:\n  helmRelease: kube-system/coredns\n", "")
	edit(t, root, "generated/infra/controlplane.yaml", "    - name: bootcore-dns\n", "    - name: user-dns\n")
	r, err := Run(context.Background(), root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, f := range r.Findings {
		if f.Severity == Warning && f.Check == "patches" && f.Cluster == "infra" {
			warnings = append(warnings, fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Message))
		}
	}
	want := "kubernetes/infrastructure/networking/coredns/helmrelease.yaml:"
	got := strings.Join(warnings, "\n")
	if len(warnings) != 1 || !strings.HasPrefix(got, want) || !strings.Contains(got, "HelmRelease kube-system/coredns installs CoreDNS while Talos's own CoreDNS is on") || !strings.Contains(got, "dns.helmRelease") {
		t.Errorf("want one warning at %s naming the conflict, got:\n%s", want, got)
	}
	for _, f := range r.Findings {
		// (apps keeps Talos's CoreDNS off, so without dns: its error is right.)
		if f.Severity == Error && strings.Contains(f.Message, "cluster DNS") && !strings.Contains(f.Message, `cluster "apps"`) {
			t.Errorf("unexpected cluster DNS error: %s", f.Message)
		}
	}
}
