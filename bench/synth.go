// Package bench holds bootcore's benchmarks (`make bench`, see bench.mk and docs/benchmarks.md)
// and the generators of the synthetic repositories they run on:
//
//   - WriteChartRepo: a repository shaped like integration/testdata/lab (bootstrap spec with two
//     clusters, a Flux tree whose HelmReleases use GitRepository charts ./charts/<name>) with
//     charts of realistic size: a Cilium-like CNI chart with ~110 templates and cert-manager- and
//     external-secrets-like charts whose templated CRDs (with description fields) weigh ~1.3 MB
//     and ~2 MB, so results do not depend on charts that cannot be downloaded here.
//   - WriteScaleTree: a one-cluster repository with n Flux Kustomizations, each applying one
//     HelmRelease, for the parse (fluxtree.Load) and lint (internal/check) scale benchmarks.
//
// Everything is generated deterministically (fixed seeds) into a directory chosen by the caller;
// nothing large is committed.
package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// ChartRepoConfig sizes the synthetic chart repository.
type ChartRepoConfig struct {
	// CRDScale multiplies the CRD byte targets (1: ~1.3 MB cert-manager, ~2 MB external-secrets).
	CRDScale float64
}

// ChartRepoInfo describes what WriteChartRepo wrote, for the report.
type ChartRepoInfo struct {
	Clusters []string
	Charts   []ChartInfo
}

// ChartInfo sizes one chart.
type ChartInfo struct {
	Name      string
	Templates int // files under templates/, _helpers.tpl included
	CRDs      int
	CRDBytes  int // bytes of the templated CRD files
	Bytes     int // all chart files
}

// Synthetic clusters: the two Talos config contracts, as in the lab tree.
var chartRepoClusters = []struct{ name, talos, patch string }{
	{"alpha", "v1.13.9", "patches/controlplane-common.yaml"},
	{"beta", "v1.14.1", "patches/controlplane-common-v1.14.yaml"},
}

// KubeVersion is the Kubernetes version of the synthetic clusters (chart capabilities).
const KubeVersion = "1.35.4"

// WriteChartRepo writes the synthetic chart repository into dir.
func WriteChartRepo(dir string, cfg ChartRepoConfig) (*ChartRepoInfo, error) {
	if cfg.CRDScale <= 0 {
		cfg.CRDScale = 1
	}
	w := &writer{root: dir}
	info := &ChartRepoInfo{}

	var clusters strings.Builder
	for i, c := range chartRepoClusters {
		info.Clusters = append(info.Clusters, c.name)
		fmt.Fprintf(&clusters, `  - name: %[1]s
    talosVersion: %[2]s
    kubernetesVersion: %[3]s
    endpoint: https://10.0.%[4]d.10:6443
    fluxSystem: kubernetes/clusters/%[1]s/flux-system
    settings: kubernetes/clusters/%[1]s/cluster-settings.yaml
    cniValues: bootstrap/clusters/%[1]s/cilium-values.yaml
    controlPlanePatches:
      - %[5]s
`, c.name, c.talos, KubeVersion, i+1, c.patch)
		w.file("bootstrap/clusters/"+c.name+"/cilium-values.yaml", `# Boot-only values (bootcore gen merges them over the HelmRelease's values).
hubble:
  tls:
    auto:
      enabled: false
`)
		w.file("kubernetes/clusters/"+c.name+"/flux-system/gotk-sync.yaml", gotkSync("synthetic", c.name))
		w.file("kubernetes/clusters/"+c.name+"/flux-system/kustomization.yaml", kustomization("gotk-sync.yaml"))
		w.file("kubernetes/clusters/"+c.name+"/kustomization.yaml", kustomization("flux-system", "cluster-settings.yaml", "infrastructure.yaml"))
		w.file("kubernetes/clusters/"+c.name+"/cluster-settings.yaml", fmt.Sprintf(`---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-settings
  namespace: flux-system
data:
  CLUSTER_NAME: %q
  CILIUM_CLUSTER_ID: "%d"
`, c.name, i+1))
		w.file("kubernetes/clusters/"+c.name+"/infrastructure.yaml", fluxKustomization("infrastructure", "./kubernetes/infrastructure", "", true))
	}
	w.file("bootstrap/bootcore.yaml", `# Synthetic repository of bootcore's benchmarks (bench.WriteChartRepo); generated, do not edit.
apiVersion: bootcore.dev/v1alpha1
kind: Bootstrap
clusters:
`+clusters.String()+`cni:
  helmRelease: kube-system/cilium
crds:
  - helmRelease: cert-manager/cert-manager
    values:
      crds:
        enabled: true
  - helmRelease: external-secrets/external-secrets
    values:
      installCRDs: true
# ~3.3 MB of CRDs do not fit the default 4 MiB once Talos indents them into the config;
# 10 MiB is what Talos >= 1.13 accepts in practice (see README, budget).
budget:
  maxConfigBytes: 10485760
output: generated
`)
	// Talos's own CoreDNS stays on: the synthetic tree has no CoreDNS release to boot (dns:).
	w.file("patches/controlplane-common.yaml", "machine:\n  sysctls:\n    net.core.somaxconn: \"65535\"\n")
	w.file("patches/controlplane-common-v1.14.yaml", "machine:\n  sysctls:\n    net.core.somaxconn: \"65535\"\n")

	releases := []struct{ name, ns, path, values, depends string }{
		{"cilium", "kube-system", "networking/cilium", ciliumHRValues, ""},
		{"cert-manager", "cert-manager", "security/cert-manager", "    crds:\n      enabled: true\n      keep: true\n    controller:\n      replicas: 2\n", "cilium"},
		{"external-secrets", "external-secrets", "security/external-secrets", "    installCRDs: true\n    controller:\n      replicas: 2\n", "cert-manager"},
	}
	var ksFiles []string
	for _, r := range releases {
		base := "kubernetes/infrastructure/" + r.path
		ksFiles = append(ksFiles, r.path+"/ks.yaml")
		w.file(base+"/ks.yaml", fluxKustomization(r.name, "./"+base, r.depends, true))
		res := []string{"helmrelease.yaml"}
		if r.ns != "kube-system" {
			res = append([]string{"namespace.yaml"}, res...)
			w.file(base+"/namespace.yaml", fmt.Sprintf("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", r.ns))
		}
		w.file(base+"/kustomization.yaml", kustomization(res...))
		w.file(base+"/helmrelease.yaml", helmRelease(r.name, r.ns, "./charts/"+r.name, r.values))
	}
	w.file("kubernetes/infrastructure/kustomization.yaml", kustomization(ksFiles...))

	for _, ch := range []chartDef{ciliumChart(), certManagerChart(cfg.CRDScale), externalSecretsChart(cfg.CRDScale)} {
		info.Charts = append(info.Charts, w.chart(ch))
	}
	return info, w.err
}

const ciliumHRValues = `    cluster:
      name: ${CLUSTER_NAME}
      id: ${CILIUM_CLUSTER_ID}
    ipam:
      mode: kubernetes
    kubeProxyReplacement: true
    k8sServiceHost: localhost
    k8sServicePort: 7445
    cgroup:
      autoMount:
        enabled: false
      hostRoot: /sys/fs/cgroup
    agent:
      securityContext:
        capabilities:
          add: [CHOWN, KILL, NET_ADMIN, NET_RAW, IPC_LOCK, SYS_ADMIN, SYS_RESOURCE, DAC_OVERRIDE, FOWNER, SETGID, SETUID]
          drop: [ALL]
    operator:
      replicas: 2
    hubble:
      enabled: true
    hubbleRelay:
      enabled: true
    hubbleUi:
      enabled: true
`

// WriteScaleTree writes a one-cluster repository whose Flux tree has n app Kustomizations
// (kubernetes/apps/app-NNNN/ks.yaml, in dependsOn chains of 10), each applying a Namespace and
// one HelmRelease from a shared HelmRepository, with postBuild substitution; plus the CNI
// Kustomization gen renders (a small in-repository chart) and the cluster entry.
func WriteScaleTree(dir string, n int) error {
	w := &writer{root: dir}
	w.file("bootstrap/bootcore.yaml", `# Synthetic scale tree of bootcore's benchmarks (bench.WriteScaleTree); generated, do not edit.
apiVersion: bootcore.dev/v1alpha1
kind: Bootstrap
clusters:
  - name: scale
    talosVersion: v1.14.1
    kubernetesVersion: `+KubeVersion+`
    endpoint: https://10.0.9.10:6443
    fluxSystem: kubernetes/clusters/scale/flux-system
    settings: kubernetes/clusters/scale/cluster-settings.yaml
cni:
  helmRelease: kube-system/cilium
output: generated
`)
	w.file("kubernetes/clusters/scale/flux-system/gotk-sync.yaml", gotkSync("scale", "scale"))
	w.file("kubernetes/clusters/scale/flux-system/kustomization.yaml", kustomization("gotk-sync.yaml"))
	w.file("kubernetes/clusters/scale/kustomization.yaml", kustomization("flux-system", "cluster-settings.yaml", "cni.yaml", "apps.yaml"))
	w.file("kubernetes/clusters/scale/cluster-settings.yaml", `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-settings
  namespace: flux-system
data:
  CLUSTER_NAME: scale
  CILIUM_CLUSTER_ID: "9"
  DOMAIN: scale.example.com
`)
	w.file("kubernetes/clusters/scale/cni.yaml", fluxKustomization("cni", "./kubernetes/cni", "", true))
	w.file("kubernetes/clusters/scale/apps.yaml", fluxKustomization("apps", "./kubernetes/apps", "cni", false))
	w.file("kubernetes/cni/kustomization.yaml", kustomization("helmrelease.yaml"))
	w.file("kubernetes/cni/helmrelease.yaml", helmRelease("cilium", "kube-system", "./charts/cni", "    cluster:\n      name: ${CLUSTER_NAME}\n      id: ${CILIUM_CLUSTER_ID}\n    kubeProxyReplacement: true\n"))
	w.chart(chartDef{name: "cni", values: map[string]any{
		"cluster": map[string]any{"name": "default", "id": 0}, "kubeProxyReplacement": false,
		"agent": componentValues("quay.io/cilium/cilium", true, 1),
	}, files: map[string]string{
		"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: cilium-config
  namespace: {{ .Release.Namespace }}
data:
  cluster-name: {{ .Values.cluster.name | quote }}
  cluster-id: {{ .Values.cluster.id | quote }}
  kube-proxy-replacement: {{ .Values.kubeProxyReplacement | toString | quote }}
`,
	}, components: []component{{key: "agent", name: "cilium", kind: "DaemonSet"}}})

	apps := []string{"helmrepository.yaml"}
	w.file("kubernetes/apps/helmrepository.yaml", `---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 1h
  url: https://charts.example.com/apps
`)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("app-%04d", i)
		base := "kubernetes/apps/" + name
		apps = append(apps, name+"/ks.yaml")
		depends := ""
		if i%10 != 1 {
			depends = fmt.Sprintf("app-%04d", i-1)
		}
		w.file(base+"/ks.yaml", fluxKustomization(name, "./"+base, depends, true))
		w.file(base+"/kustomization.yaml", kustomization("namespace.yaml", "helmrelease.yaml"))
		w.file(base+"/namespace.yaml", fmt.Sprintf("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    cluster: ${CLUSTER_NAME}\n", name))
		w.file(base+"/helmrelease.yaml", fmt.Sprintf(`---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: %[1]s
  namespace: %[1]s
spec:
  interval: 30m
  chart:
    spec:
      chart: app
      version: 1.%[2]d.x
      sourceRef:
        kind: HelmRepository
        name: apps
        namespace: flux-system
  install:
    remediation:
      retries: 3
  values:
    replicaCount: %[3]d
    ingress:
      enabled: true
      hosts:
        - host: %[1]s.${DOMAIN}
          paths: [{path: /, pathType: Prefix}]
    env:
      CLUSTER: ${CLUSTER_NAME}
      APP: %[1]s
    resources:
      requests: {cpu: 10m, memory: 64Mi}
`, name, i%7, 1+i%3))
	}
	w.file("kubernetes/apps/kustomization.yaml", kustomization(apps...))
	return w.err
}

// --- Flux objects -------------------------------------------------------------------------

// gotkSync is a cluster's Flux entry, as flux bootstrap writes it: the Git source of repo and
// the Kustomization of kubernetes/clusters/<cluster>.
func gotkSync(repo, cluster string) string {
	return fmt.Sprintf(`---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m
  ref:
    branch: main
  url: https://git.example.com/%s.git
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m
  path: ./kubernetes/clusters/%s
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
`, repo, cluster)
}

func kustomization(resources ...string) string {
	var b strings.Builder
	b.WriteString("---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, r := range resources {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	return b.String()
}

func fluxKustomization(name, path, dependsOn string, substitute bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: %s
  namespace: flux-system
spec:
`, name)
	if dependsOn != "" {
		fmt.Fprintf(&b, "  dependsOn:\n    - name: %s\n", dependsOn)
	}
	fmt.Fprintf(&b, `  interval: 10m
  retryInterval: 30s
  path: %s
  prune: true
  wait: true
  timeout: 5m
  sourceRef:
    kind: GitRepository
    name: flux-system
`, path)
	if substitute {
		b.WriteString("  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n        name: cluster-settings\n")
	}
	return b.String()
}

func helmRelease(name, ns, chart, values string) string {
	return fmt.Sprintf(`---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: %s
  namespace: %s
spec:
  interval: 10m
  chart:
    spec:
      chart: %s
      sourceRef:
        kind: GitRepository
        name: flux-system
        namespace: flux-system
      reconcileStrategy: Revision
  driftDetection:
    mode: enabled
  install:
    remediation:
      retries: 3
  upgrade:
    cleanupOnFail: true
    remediation:
      retries: 3
  values:
%s`, name, ns, chart, values)
}

// --- charts -------------------------------------------------------------------------------

// chartDef is one synthetic chart: generic workload components (9 templates each), extra
// files, and values.
type chartDef struct {
	name       string
	values     map[string]any
	files      map[string]string // extra files (templates/..., crds/...), relative to the chart
	crdFiles   map[string]bool   // which of files are CRDs (sizes for the report)
	components []component
}

// component is a workload with its ServiceAccount, RBAC, ConfigMap, Service and PDB.
type component struct {
	key  string // values key, e.g. "agent"
	name string // object name, e.g. "cilium-agent"
	kind string // DaemonSet | Deployment | StatefulSet
}

func (w *writer) chart(c chartDef) ChartInfo {
	info := ChartInfo{Name: c.name}
	base := "charts/" + c.name + "/"
	add := func(path, content string) {
		w.file(base+path, content)
		info.Bytes += len(content)
		if strings.HasPrefix(path, "templates/") {
			info.Templates++
		}
	}
	add("Chart.yaml", fmt.Sprintf("apiVersion: v2\nname: %s\ndescription: Synthetic %s-like chart of bootcore's benchmarks\ntype: application\nversion: 1.0.0\nappVersion: 1.0.0\nkubeVersion: \">= 1.21.0-0\"\n", c.name, c.name))
	values, err := yaml.Marshal(c.values)
	if err != nil {
		w.fail(err)
	}
	add("values.yaml", string(values))
	add("templates/_helpers.tpl", strings.ReplaceAll(helpersTpl, "__P__", c.name))
	for _, comp := range c.components {
		for _, t := range componentTemplates(c.name, comp) {
			add("templates/"+comp.key+"/"+t.name, t.content)
		}
	}
	for _, p := range sortedKeys(c.files) {
		add(p, c.files[p])
		if c.crdFiles[p] {
			info.CRDs++
			info.CRDBytes += len(c.files[p])
		}
	}
	return info
}

const helpersTpl = `{{/* Common labels. */}}
{{- define "__P__.labels" -}}
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of one component: (list $ "component"). */}}
{{- define "__P__.componentLabels" -}}
{{- $root := index . 0 -}}
{{ include "__P__.labels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Image reference with optional digest. */}}
{{- define "__P__.image" -}}
{{- if .digest -}}
{{ printf "%s:%s@%s" .repository .tag .digest }}
{{- else -}}
{{ printf "%s:%s" .repository .tag }}
{{- end -}}
{{- end }}

{{/* Name of a component's ServiceAccount: (list $ component-values "name"). */}}
{{- define "__P__.serviceAccountName" -}}
{{- $c := index . 1 -}}
{{- if $c.serviceAccount.create -}}
{{ default (index . 2) $c.serviceAccount.name }}
{{- else -}}
{{ default "default" $c.serviceAccount.name }}
{{- end -}}
{{- end }}
`

type tmpl struct{ name, content string }

// componentTemplates returns the 9 templates of one workload component.
func componentTemplates(chart string, c component) []tmpl {
	r := strings.NewReplacer("__P__", chart, "__K__", c.key, "__N__", c.name, "__KIND__", c.kind)
	rng := rand.New(rand.NewPCG(uint64(len(chart)), uint64(len(c.key)*31+len(c.name))))
	var rules strings.Builder
	groups := []string{`""`, "apps", "networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io", "policy", "rbac.authorization.k8s.io", "apiextensions.k8s.io", chart + ".io"}
	resources := []string{"pods", "nodes", "services", "endpoints", "namespaces", "configmaps", "events", "leases", "endpointslices", "networkpolicies", "ingresses", "daemonsets", "deployments", "customresourcedefinitions", "pods/status", "nodes/status"}
	for i := 0; i < 12+rng.IntN(8); i++ {
		fmt.Fprintf(&rules, "  - apiGroups: [%s]\n    resources:\n", groups[rng.IntN(len(groups))])
		for j := 0; j < 1+rng.IntN(4); j++ {
			fmt.Fprintf(&rules, "      - %s\n", resources[rng.IntN(len(resources))])
		}
		rules.WriteString("    verbs: [get, list, watch")
		if rng.IntN(3) == 0 {
			rules.WriteString(", create, update, patch, delete")
		}
		rules.WriteString("]\n")
	}
	strategy := "updateStrategy"
	if c.kind == "Deployment" {
		strategy = "strategy"
	}
	replicas := "  replicas: {{ $c.replicas }}\n"
	if c.kind == "DaemonSet" {
		replicas = ""
	}
	service := ""
	if c.kind == "StatefulSet" {
		service = "  serviceName: __N__\n"
	}
	workload := strings.ReplaceAll(workloadTpl, "__REPLICAS__", replicas+service)
	workload = strings.ReplaceAll(workload, "__STRATEGY__", strategy)
	return []tmpl{
		{"serviceaccount.yaml", r.Replace(serviceAccountTpl)},
		{"clusterrole.yaml", r.Replace(clusterRoleTpl) + rules.String() + "{{- end }}\n"},
		{"clusterrolebinding.yaml", r.Replace(clusterRoleBindingTpl)},
		{"role.yaml", r.Replace(roleTpl)},
		{"rolebinding.yaml", r.Replace(roleBindingTpl)},
		{"configmap.yaml", r.Replace(componentConfigMapTpl)},
		{"service.yaml", r.Replace(serviceTpl)},
		{strings.ToLower(c.kind) + ".yaml", r.Replace(workload)},
		{"poddisruptionbudget.yaml", r.Replace(pdbTpl)},
	}
}

const serviceAccountTpl = `{{- $c := .Values.__K__ -}}
{{- if and $c.enabled $c.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "__P__.serviceAccountName" (list $ $c "__N__") }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
  {{- with $c.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ $c.serviceAccount.automount }}
{{- end }}
`

const clusterRoleTpl = `{{- $c := .Values.__K__ -}}
{{- if and $c.enabled $c.rbac.create }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: __N__
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
rules:
`

const clusterRoleBindingTpl = `{{- $c := .Values.__K__ -}}
{{- if and $c.enabled $c.rbac.create }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: __N__
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: __N__
subjects:
  - kind: ServiceAccount
    name: {{ include "__P__.serviceAccountName" (list $ $c "__N__") }}
    namespace: {{ $.Release.Namespace }}
{{- end }}
`

const roleTpl = `{{- $c := .Values.__K__ -}}
{{- if and $c.enabled $c.rbac.create }}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: __N__
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, watch, create, update, patch]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update]
    {{- with $c.rbac.resourceNames }}
    resourceNames:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
`

const roleBindingTpl = `{{- $c := .Values.__K__ -}}
{{- if and $c.enabled $c.rbac.create }}
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: __N__
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: __N__
subjects:
  - kind: ServiceAccount
    name: {{ include "__P__.serviceAccountName" (list $ $c "__N__") }}
    namespace: {{ $.Release.Namespace }}
{{- end }}
`

const componentConfigMapTpl = `{{- $c := .Values.__K__ -}}
{{- if $c.enabled }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: __N__-config
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
data:
  {{- range $k, $v := $c.config }}
  {{ $k | kebabcase }}: {{ $v | toString | quote }}
  {{- end }}
  log-level: {{ $c.logLevel | default "info" | quote }}
  {{- if $c.extraConfig }}
  extra.yaml: |
    {{- toYaml $c.extraConfig | nindent 4 }}
  {{- end }}
{{- end }}
`

const serviceTpl = `{{- $c := .Values.__K__ -}}
{{- if and $c.enabled $c.service.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: __N__
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
  {{- with $c.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $c.service.type }}
  selector:
    app.kubernetes.io/name: __N__
  ports:
    {{- range $name, $port := $c.ports }}
    - name: {{ $name }}
      port: {{ $port }}
      targetPort: {{ $name }}
      protocol: TCP
    {{- end }}
{{- end }}
`

const workloadTpl = `{{- $c := .Values.__K__ -}}
{{- if $c.enabled }}
apiVersion: apps/v1
kind: __KIND__
metadata:
  name: __N__
  namespace: {{ $.Release.Namespace }}
  labels:
    app.kubernetes.io/name: __N__
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
  {{- with $c.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
__REPLICAS__  selector:
    matchLabels:
      app.kubernetes.io/name: __N__
  {{- with $c.updateStrategy }}
  __STRATEGY__:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/__K__/configmap.yaml") $ | sha256sum }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        app.kubernetes.io/name: __N__
        {{- include "__P__.componentLabels" (list $ "__N__") | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "__P__.serviceAccountName" (list $ $c "__N__") }}
      automountServiceAccountToken: true
      {{- if $c.hostNetwork }}
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      {{- end }}
      priorityClassName: {{ $c.priorityClassName | quote }}
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $c.initContainers }}
      initContainers:
        {{- range $name := $c.initContainers }}
        - name: {{ $name }}
          image: {{ include "__P__.image" $c.image | quote }}
          imagePullPolicy: {{ $c.image.pullPolicy }}
          command: [/init.sh, {{ $name | quote }}]
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
          resources:
            {{- toYaml $c.initResources | nindent 12 }}
          securityContext:
            {{- toYaml $c.securityContext | nindent 12 }}
        {{- end }}
      {{- end }}
      containers:
        - name: __K__
          image: {{ include "__P__.image" $c.image | quote }}
          imagePullPolicy: {{ $c.image.pullPolicy }}
          command: [/usr/bin/__N__]
          args:
            - --config-dir=/etc/__N__
            - --log-level={{ $c.logLevel | default "info" }}
            {{- range $c.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: K8S_NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            {{- if $.Values.k8sServiceHost }}
            - name: KUBERNETES_SERVICE_HOST
              value: {{ $.Values.k8sServiceHost | quote }}
            - name: KUBERNETES_SERVICE_PORT
              value: {{ $.Values.k8sServicePort | toString | quote }}
            {{- end }}
            {{- range $k, $v := $c.env }}
            - name: {{ $k }}
              value: {{ $v | toString | quote }}
            {{- end }}
          ports:
            {{- range $name, $port := $c.ports }}
            - name: {{ $name }}
              containerPort: {{ $port }}
              {{- if $c.hostNetwork }}
              hostPort: {{ $port }}
              {{- end }}
              protocol: TCP
            {{- end }}
          {{- with $c.ports.health }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: {{ . }}
            periodSeconds: 30
            failureThreshold: 10
          readinessProbe:
            httpGet:
              path: /readyz
              port: {{ . }}
            periodSeconds: 30
          startupProbe:
            httpGet:
              path: /healthz
              port: {{ . }}
            failureThreshold: 105
            periodSeconds: 2
          {{- end }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $c.securityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/__N__
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- with $c.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: __N__-config
        - name: tmp
          emptyDir: {}
        {{- with $c.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end }}
`

const pdbTpl = `{{- $c := .Values.__K__ -}}
{{- if and $c.enabled $c.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: __N__
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "__P__.componentLabels" (list $ "__N__") | nindent 4 }}
spec:
  {{- with $c.pdb.maxUnavailable }}
  maxUnavailable: {{ . }}
  {{- end }}
  selector:
    matchLabels:
      app.kubernetes.io/name: __N__
{{- end }}
`

// componentValues are the values of one generic component.
func componentValues(image string, enabled bool, replicas int) map[string]any {
	config := map[string]any{}
	for i, k := range []string{"metricsEnabled", "pprofEnabled", "leaderElection", "gcInterval", "syncPeriod", "qps", "burst", "maxConcurrentReconciles", "healthCheckInterval", "clusterDomain", "enableTracing", "tracingEndpoint"} {
		switch i % 3 {
		case 0:
			config[k] = i%2 == 0
		case 1:
			config[k] = fmt.Sprintf("%dm", 5*(i+1))
		default:
			config[k] = 10 * (i + 1)
		}
	}
	return map[string]any{
		"enabled":  enabled,
		"replicas": replicas,
		"image": map[string]any{
			"repository": image, "tag": "v1.19.6", "pullPolicy": "IfNotPresent",
			"digest": "sha256:" + strings.Repeat("5f3a9c", 10) + "0123",
		},
		"logLevel":                      "info",
		"priorityClassName":             "system-cluster-critical",
		"terminationGracePeriodSeconds": 30,
		"hostNetwork":                   false,
		"annotations":                   map[string]any{},
		"podAnnotations":                map[string]any{"prometheus.io/scrape": "true"},
		"podLabels":                     map[string]any{},
		"nodeSelector":                  map[string]any{"kubernetes.io/os": "linux"},
		"tolerations":                   []any{map[string]any{"operator": "Exists"}},
		"affinity": map[string]any{"podAntiAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": []any{
			map[string]any{"topologyKey": "kubernetes.io/hostname", "labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": image[strings.LastIndex(image, "/")+1:]}}},
		}}},
		"podSecurityContext": map[string]any{"seccompProfile": map[string]any{"type": "RuntimeDefault"}},
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
			"capabilities": map[string]any{"drop": []any{"ALL"}},
		},
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
			"limits":   map[string]any{"memory": "1Gi"},
		},
		"initResources":     map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "16Mi"}},
		"initContainers":    []any{},
		"updateStrategy":    map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxUnavailable": 1}},
		"extraArgs":         []any{},
		"env":               map[string]any{"GOMEMLIMIT": "900MiB", "GODEBUG": "madvdontneed=1"},
		"extraVolumes":      []any{},
		"extraVolumeMounts": []any{},
		"extraConfig":       map[string]any{},
		"ports":             map[string]any{"metrics": 9962, "health": 9879},
		"service":           map[string]any{"enabled": true, "type": "ClusterIP", "annotations": map[string]any{}},
		"pdb":               map[string]any{"enabled": true, "maxUnavailable": 1},
		"rbac":              map[string]any{"create": true, "resourceNames": []any{}},
		"serviceAccount":    map[string]any{"create": true, "name": "", "automount": true, "annotations": map[string]any{}},
		"config":            config,
	}
}

// ciliumChart: 12 components (5 on with the synthetic HelmRelease's values) and a
// ~300-key cilium-config ConfigMap: ~110 templates, like upstream Cilium.
func ciliumChart() chartDef {
	comps := []struct {
		key, name, kind string
		on              bool
	}{
		{"agent", "cilium", "DaemonSet", true},
		{"operator", "cilium-operator", "Deployment", true},
		{"envoy", "cilium-envoy", "DaemonSet", true},
		{"hubbleRelay", "hubble-relay", "Deployment", false},
		{"hubbleUi", "hubble-ui", "Deployment", false},
		{"clustermesh", "clustermesh-apiserver", "Deployment", false},
		{"nodeinit", "cilium-nodeinit", "DaemonSet", false},
		{"preflight", "cilium-pre-flight-check", "DaemonSet", false},
		{"spireServer", "spire-server", "StatefulSet", false},
		{"spireAgent", "spire-agent", "DaemonSet", false},
		{"etcdOperator", "cilium-etcd-operator", "Deployment", false},
		{"dnsProxy", "standalone-dns-proxy", "DaemonSet", false},
	}
	values := map[string]any{
		"cluster":              map[string]any{"name": "default", "id": 0},
		"ipam":                 map[string]any{"mode": "cluster-pool"},
		"kubeProxyReplacement": false,
		"k8sServiceHost":       "",
		"k8sServicePort":       "",
		"cgroup":               map[string]any{"autoMount": map[string]any{"enabled": true}, "hostRoot": "/run/cilium/cgroupv2"},
		"hubble": map[string]any{"enabled": true, "tls": map[string]any{
			"enabled": true, "auto": map[string]any{"enabled": true, "method": "helm"},
		}},
	}
	def := chartDef{name: "cilium", values: values, files: map[string]string{}}
	for _, c := range comps {
		v := componentValues("quay.io/cilium/"+c.name, c.on, 1)
		if c.kind == "DaemonSet" {
			v["hostNetwork"] = true
			v["priorityClassName"] = "system-node-critical"
			v["initContainers"] = []any{"config", "mount-cgroup", "apply-sysctl-overwrites", "mount-bpf-fs", "clean-cilium-state"}
		}
		values[c.key] = v
		def.components = append(def.components, component{key: c.key, name: c.name, kind: c.kind})
	}
	// cilium-config: ~300 keys, a third of them conditional, as upstream's configmap template.
	rng := rand.New(rand.NewPCG(7, 7))
	config := map[string]any{}
	var cm strings.Builder
	cm.WriteString(`{{- if .Values.agent.enabled }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: cilium-config
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "cilium.labels" . | nindent 4 }}
data:
  cluster-name: {{ .Values.cluster.name | quote }}
  cluster-id: {{ .Values.cluster.id | quote }}
  ipam: {{ .Values.ipam.mode | quote }}
  kube-proxy-replacement: {{ .Values.kubeProxyReplacement | toString | quote }}
  {{- if .Values.k8sServiceHost }}
  k8s-service-host: {{ .Values.k8sServiceHost | quote }}
  k8s-service-port: {{ .Values.k8sServicePort | toString | quote }}
  {{- end }}
  cgroup-root: {{ .Values.cgroup.hostRoot | quote }}
  enable-hubble: {{ .Values.hubble.enabled | toString | quote }}
  {{- if and .Values.hubble.enabled .Values.hubble.tls.enabled }}
  hubble-disable-tls: "false"
  hubble-tls-auto: {{ .Values.hubble.tls.auto.enabled | toString | quote }}
  hubble-tls-cert-file: /var/lib/cilium/tls/hubble/server.crt
  hubble-tls-key-file: /var/lib/cilium/tls/hubble/server.key
  {{- end }}
`)
	for i := 0; i < 300; i++ {
		key := camel(words(rng, 2+rng.IntN(2))) + fmt.Sprint(i)
		switch i % 3 {
		case 0:
			config[key] = rng.IntN(2) == 0
			fmt.Fprintf(&cm, "  {{- if .Values.config.%s }}\n  %s: \"true\"\n  {{- end }}\n", key, kebab(key))
		case 1:
			config[key] = strings.Join(words(rng, 1+rng.IntN(3)), "-")
			fmt.Fprintf(&cm, "  %s: {{ .Values.config.%s | quote }}\n", kebab(key), key)
		default:
			config[key] = rng.IntN(65536)
			fmt.Fprintf(&cm, "  %s: {{ .Values.config.%s | toString | quote }}\n", kebab(key), key)
		}
	}
	cm.WriteString("{{- end }}\n")
	values["config"] = config
	def.files["templates/cilium-configmap.yaml"] = cm.String()
	def.files["templates/cilium-secrets-namespace.yaml"] = `{{- if .Values.agent.enabled }}
apiVersion: v1
kind: Namespace
metadata:
  name: cilium-secrets
  labels:
    {{- include "cilium.labels" . | nindent 4 }}
{{- end }}
`
	return def
}

// certManagerChart: controller, webhook and cainjector, and 6 templated CRDs (~1.3 MB) behind
// crds.enabled / installCRDs, like upstream cert-manager.
func certManagerChart(scale float64) chartDef {
	values := map[string]any{
		"crds":        map[string]any{"enabled": false, "keep": true},
		"installCRDs": false,
	}
	def := chartDef{name: "cert-manager", values: values, files: map[string]string{}, crdFiles: map[string]bool{}}
	for _, c := range []struct{ key, name string }{{"controller", "cert-manager"}, {"webhook", "cert-manager-webhook"}, {"cainjector", "cert-manager-cainjector"}} {
		values[c.key] = componentValues("quay.io/jetstack/"+c.name, true, 1)
		def.components = append(def.components, component{key: c.key, name: c.name, kind: "Deployment"})
	}
	crds := []crdDef{
		{"Certificate", "certificates", "Namespaced", 1, 200_000},
		{"CertificateRequest", "certificaterequests", "Namespaced", 1, 80_000},
		{"Issuer", "issuers", "Namespaced", 1, 370_000},
		{"ClusterIssuer", "clusterissuers", "Cluster", 1, 370_000},
		{"Order", "orders", "Namespaced", 1, 50_000},
		{"Challenge", "challenges", "Namespaced", 1, 95_000},
	}
	for i, c := range crds {
		path := "templates/crd-cert-manager.io_" + c.plural + ".yaml"
		def.files[path] = crdTemplate("cert-manager", "{{- if or .Values.crds.enabled .Values.installCRDs }}", "cert-manager.io", c, scale, uint64(100+i))
		def.crdFiles[path] = true
	}
	return def
}

// externalSecretsChart: controller, webhook and cert-controller, and 19 templated CRDs (~2 MB,
// the big ones with two served versions) behind installCRDs, like upstream external-secrets.
func externalSecretsChart(scale float64) chartDef {
	values := map[string]any{"installCRDs": false}
	def := chartDef{name: "external-secrets", values: values, files: map[string]string{}, crdFiles: map[string]bool{}}
	for _, c := range []struct{ key, name string }{{"controller", "external-secrets"}, {"webhook", "external-secrets-webhook"}, {"certController", "external-secrets-cert-controller"}} {
		values[c.key] = componentValues("ghcr.io/external-secrets/"+c.name, true, 1)
		def.components = append(def.components, component{key: c.key, name: c.name, kind: "Deployment"})
	}
	crds := []crdDef{
		{"ExternalSecret", "externalsecrets", "Namespaced", 2, 116_000},
		{"ClusterExternalSecret", "clusterexternalsecrets", "Cluster", 2, 123_000},
		{"SecretStore", "secretstores", "Namespaced", 2, 400_000},
		{"ClusterSecretStore", "clustersecretstores", "Cluster", 2, 400_000},
		{"PushSecret", "pushsecrets", "Namespaced", 1, 54_000},
		{"ClusterPushSecret", "clusterpushsecrets", "Cluster", 1, 62_000},
		{"ClusterGenerator", "clustergenerators", "Cluster", 1, 123_000},
		{"ACRAccessToken", "acraccesstokens", "Namespaced", 1, 19_000},
		{"ECRAuthorizationToken", "ecrauthorizationtokens", "Namespaced", 1, 19_000},
		{"Fake", "fakes", "Namespaced", 1, 8_000},
		{"GCRAccessToken", "gcraccesstokens", "Namespaced", 1, 15_000},
		{"GithubAccessToken", "githubaccesstokens", "Namespaced", 1, 15_000},
		{"Password", "passwords", "Namespaced", 1, 8_000},
		{"QuayAccessToken", "quayaccesstokens", "Namespaced", 1, 12_000},
		{"STSSessionToken", "stssessiontokens", "Namespaced", 1, 19_000},
		{"UUID", "uuids", "Namespaced", 1, 6_000},
		{"VaultDynamicSecret", "vaultdynamicsecrets", "Namespaced", 1, 69_000},
		{"Webhook", "webhooks", "Namespaced", 1, 31_000},
		{"Grafana", "grafanas", "Namespaced", 1, 19_000},
	}
	for i, c := range crds {
		group := "external-secrets.io"
		if i >= 6 {
			group = "generators.external-secrets.io"
		}
		path := "templates/crds/" + c.plural + ".yaml"
		def.files[path] = crdTemplate("external-secrets", "{{- if .Values.installCRDs }}", group, c, scale, uint64(200+i))
		def.crdFiles[path] = true
	}
	return def
}

type crdDef struct {
	kind, plural, scope string
	versions            int
	bytes               int // target size of the file
}

// crdTemplate renders one templated CRD file of about c.bytes*scale bytes, most of it
// openAPIV3Schema properties with description fields.
func crdTemplate(chart, guard, group string, c crdDef, scale float64, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	target := int(float64(c.bytes) * scale / float64(c.versions))
	g := &schemaGen{rng: rng}
	spec := map[string]any{}
	size := 0
	for i := 0; size < target*85/100; i++ {
		name := camel(words(rng, 1+rng.IntN(2)))
		if _, dup := spec[name]; dup {
			name += fmt.Sprint(i)
		}
		p := g.property(0)
		spec[name] = p
		size += estimate(p, 16)
	}
	status := map[string]any{}
	for size < target {
		p := g.property(1)
		status[camel(words(rng, 2))+fmt.Sprint(len(status))] = p
		size += estimate(p, 16)
	}
	schema := map[string]any{
		"type":        "object",
		"description": g.description(2),
		"properties": map[string]any{
			"apiVersion": map[string]any{"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
			"kind":       map[string]any{"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
			"metadata":   map[string]any{"type": "object"},
			"spec":       map[string]any{"type": "object", "description": g.description(2), "properties": spec},
			"status":     map[string]any{"type": "object", "description": g.description(1), "properties": status},
		},
	}
	var versions []any
	names := []string{"v1", "v1beta1"}
	for v := 0; v < c.versions; v++ {
		versions = append(versions, map[string]any{
			"name": names[v], "served": true, "storage": v == 0,
			"schema":       map[string]any{"openAPIV3Schema": schema},
			"subresources": map[string]any{"status": map[string]any{}},
			"additionalPrinterColumns": []any{
				map[string]any{"jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "name": "Ready", "type": "string"},
				map[string]any{"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
			},
		})
	}
	body, err := yaml.Marshal(map[string]any{
		"group": group, "scope": c.scope, "versions": versions,
		"names": map[string]any{
			"kind": c.kind, "listKind": c.kind + "List", "plural": c.plural,
			"singular": strings.ToLower(c.kind), "categories": []any{chart},
		},
	})
	if err != nil {
		panic(err) // plain maps of strings, numbers and bools always marshal
	}
	var b strings.Builder
	fmt.Fprintf(&b, `%s
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %s.%s
  labels:
    {{- include "%s.labels" . | nindent 4 }}
  {{- if and .Values.crds .Values.crds.keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
spec:
`, guard, c.plural, group, chart)
	for _, line := range strings.SplitAfter(string(body), "\n") {
		if line != "" {
			b.WriteString("  " + line)
		}
	}
	b.WriteString("{{- end }}\n")
	return b.String()
}

// estimate approximates the YAML bytes of v nested indent spaces deep.
func estimate(v any, indent int) int {
	data, _ := yaml.Marshal(v)
	return len(data) + strings.Count(string(data), "\n")*indent
}

type schemaGen struct{ rng *rand.Rand }

// property returns a random openAPIV3Schema property at depth.
func (g *schemaGen) property(depth int) map[string]any {
	r := g.rng.IntN(100)
	switch {
	case depth < 5 && r < 25:
		props := map[string]any{}
		n := 2 + g.rng.IntN(7)
		var required []any
		for i := 0; i < n; i++ {
			name := camel(words(g.rng, 1+g.rng.IntN(2)))
			props[name] = g.property(depth + 1)
			if g.rng.IntN(4) == 0 {
				required = append(required, name)
			}
		}
		p := map[string]any{"type": "object", "description": g.description(1 + g.rng.IntN(3)), "properties": props}
		if len(required) > 0 {
			sort.Slice(required, func(i, j int) bool { return required[i].(string) < required[j].(string) })
			p["required"] = dedupe(required)
		}
		return p
	case depth < 5 && r < 33:
		return map[string]any{"type": "array", "description": g.description(1 + g.rng.IntN(2)), "items": g.property(depth + 1)}
	case r < 60:
		p := map[string]any{"type": "string", "description": g.description(1 + g.rng.IntN(4))}
		if g.rng.IntN(5) == 0 {
			p["enum"] = []any{"Alpha", "Beta", "Gamma"}
		}
		return p
	case r < 80:
		return map[string]any{"type": "integer", "format": "int32", "description": g.description(1 + g.rng.IntN(2))}
	case r < 90:
		return map[string]any{"type": "boolean", "description": g.description(1 + g.rng.IntN(2))}
	default:
		return map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": g.description(1)}
	}
}

func (g *schemaGen) description(sentences int) string {
	var b strings.Builder
	for i := 0; i < sentences; i++ {
		w := words(g.rng, 8+g.rng.IntN(14))
		w[0] = strings.ToUpper(w[0][:1]) + w[0][1:]
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(strings.Join(w, " ") + ".")
	}
	return b.String()
}

var vocabulary = strings.Fields(`the certificate issuer secret resource reference name namespace key value field
	object status condition ready renewal duration private public authority request order challenge solver
	acme http dns webhook selector label annotation template pod service account token provider store
	remote version property path data external generator refresh interval policy creation deletion target
	when this is set used by controller should must may will default specified otherwise empty list map`)

func words(rng *rand.Rand, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = vocabulary[rng.IntN(len(vocabulary))]
	}
	return out
}

func camel(ws []string) string {
	s := ws[0]
	for _, w := range ws[1:] {
		s += strings.ToUpper(w[:1]) + w[1:]
	}
	return s
}

func kebab(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('-')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func dedupe(s []any) []any {
	var out []any
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writer writes files under root and keeps the first error.
type writer struct {
	root string
	err  error
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) file(rel, content string) {
	if w.err != nil {
		return
	}
	p := filepath.Join(w.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.fail(err)
		return
	}
	w.fail(os.WriteFile(p, []byte(content), 0o644))
}
