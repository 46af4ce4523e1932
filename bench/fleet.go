package bench

import (
	"fmt"
	"strings"
)

// A fleet repository (WriteFleet) is what an organisation with many Talos clusters keeps in one
// Git repository, the layout of Flux's multi-cluster examples (fluxcd/flux2-kustomize-helm-example)
// on the components of the lab tree (integration/testdata/lab):
//
//	kubernetes/clusters/<name>/flux-system/    each cluster's Flux entry (gotk-sync.yaml)
//	kubernetes/clusters/<name>/*.yaml           its cluster-settings ConfigMap and the Flux
//	                                            Kustomizations of its flavour's overlays
//	kubernetes/infrastructure/base/<component>  one HelmRelease and its HelmRepository per
//	                                            component, the published charts at their
//	                                            upstream repositories
//	kubernetes/infrastructure/<flavour>/        per-flavour overlays: a Flux Kustomization per
//	                                            component (dependsOn chain) whose kustomize
//	                                            overlay patches the base HelmRelease's values
//	kubernetes/apps/{base,<flavour>}            an application on the same pattern
//	bootstrap/bootcore.yaml                     every cluster, its Talos and Kubernetes versions
//	bootstrap/flavours/<flavour>/               the boot-only Cilium values, one file per flavour
//	patches/                                    static Talos patches per contract and flavour
//
// The three flavours are the chart sets: their values differ (Cilium's kube-proxy replacement,
// Hubble, operator replicas; CoreDNS replicas; cert-manager and external-secrets settings), and
// so do their Talos contract and Kubernetes version (edge lags one minor of each). Within a
// flavour the clusters differ where real clusters do: name, API endpoint, and the per-cluster
// variables of cluster-settings that Flux substitutes into the values; with
// FleetOptions.ClusterMesh among them Cilium's cluster.name and cluster.id, unique per cluster
// for ClusterMesh, as in the lab and the real tree.
type fleetFlavour struct {
	name, talos, kube, patch string
	// cilium, coredns, certManager, externalSecrets are the overlay's HelmRelease values,
	// merged by kustomize over the base's.
	cilium, coredns, certManager, externalSecrets string
}

var fleetFlavours = []fleetFlavour{
	{
		name: "prod", talos: "v1.14.1", kube: "1.35.4", patch: "patches/controlplane-common-v1.14.yaml",
		cilium: `    operator:
      replicas: 2
    bpf:
      masquerade: true
    bandwidthManager:
      enabled: true
`,
		coredns:         "    replicaCount: 3\n",
		certManager:     "    replicaCount: 2\n    webhook:\n      replicaCount: 2\n    podDisruptionBudget:\n      enabled: true\n",
		externalSecrets: "    replicaCount: 2\n    podDisruptionBudget:\n      enabled: true\n",
	},
	{
		name: "staging", talos: "v1.14.1", kube: "1.35.4", patch: "patches/controlplane-common-v1.14.yaml",
		cilium: `    operator:
      replicas: 1
    hubble:
      metrics:
        enabled:
          - dns
          - drop
          - tcp
          - flow
`,
		coredns:         "    replicaCount: 2\n",
		certManager:     "    replicaCount: 1\n",
		externalSecrets: "    replicaCount: 1\n",
	},
	{
		name: "edge", talos: "v1.13.9", kube: "1.34.3", patch: "patches/controlplane-common.yaml",
		// Small single-node sites: kube-proxy stays, Hubble is off.
		cilium: `    kubeProxyReplacement: false
    operator:
      replicas: 1
    hubble:
      enabled: false
`,
		coredns:         "    replicaCount: 1\n",
		certManager:     "    replicaCount: 1\n    resources:\n      requests:\n        cpu: 10m\n        memory: 32Mi\n",
		externalSecrets: "    replicaCount: 1\n    resources:\n      requests:\n        cpu: 10m\n        memory: 32Mi\n",
	},
}

// fleetOrder assigns flavours to clusters in the proportions of a fleet with many edge sites:
// of every 5 clusters 2 prod, 1 staging, 2 edge. The first 3 clusters cover the 3 flavours.
var fleetOrder = []int{0, 1, 2, 0, 2}

// FleetInfo describes what WriteFleet wrote.
type FleetInfo struct {
	Clusters []string
	Flavours map[string]string // cluster -> flavour
}

// FleetFlavours are the flavour names, for reports.
func FleetFlavours() []string {
	var names []string
	for _, f := range fleetFlavours {
		names = append(names, f.name)
	}
	return names
}

// FleetOptions choose between the two fleets the benchmarks measure.
type FleetOptions struct {
	// ClusterMesh gives every cluster its own Cilium identity (cluster.name and cluster.id from
	// its cluster-settings, as ClusterMesh needs and the lab sets them): then each cluster's CNI
	// render, and so its Talos config, is its own. Without it a cluster's boot releases are its
	// flavour's (Cilium's default identity), and the fleet shares 3 chart sets.
	ClusterMesh bool
}

// ciliumMeshValues are the values ClusterMesh adds to the Cilium HelmRelease.
const ciliumMeshValues = `    cluster:
      name: ${CLUSTER_NAME}
      id: ${CILIUM_CLUSTER_ID}
`

// WriteFleet writes a fleet repository of n clusters into dir (see fleetFlavour). The
// HelmReleases name the published charts at their upstream repositories; the spec's mirrors
// send bootcore to mirror (host:port of an integration/chartmirror serving
// integration/testdata/upstream-charts), as the lab's do.
func WriteFleet(dir string, n int, mirror string, opts FleetOptions) (*FleetInfo, error) {
	w := &writer{root: dir}
	info := &FleetInfo{Flavours: map[string]string{}}
	count := map[string]int{}
	var clusters strings.Builder
	for i := 0; i < n; i++ {
		f := fleetFlavours[fleetOrder[i%len(fleetOrder)]]
		count[f.name]++
		name := fmt.Sprintf("%s-%02d", f.name, count[f.name])
		info.Clusters = append(info.Clusters, name)
		info.Flavours[name] = f.name
		fi := fleetOrder[i%len(fleetOrder)]
		fmt.Fprintf(&clusters, `  - name: %[1]s
    talosVersion: %[2]s
    kubernetesVersion: %[3]s
    endpoint: https://10.%[4]d.%[5]d.10:6443
    fluxSystem: kubernetes/clusters/%[1]s/flux-system
    settings: kubernetes/clusters/%[1]s/cluster-settings.yaml
    cniValues: bootstrap/flavours/%[6]s/cilium-values.yaml
    controlPlanePatches:
      - %[7]s
      - patches/flavours/%[6]s.yaml
`, name, f.talos, f.kube, 10+fi, count[f.name], f.name, f.patch)

		base := "kubernetes/clusters/" + name
		w.file(base+"/flux-system/gotk-sync.yaml", gotkSync("fleet", name))
		w.file(base+"/flux-system/kustomization.yaml", kustomization("gotk-sync.yaml"))
		w.file(base+"/kustomization.yaml", kustomization("flux-system", "cluster-settings.yaml", "infrastructure.yaml", "apps.yaml"))
		w.file(base+"/cluster-settings.yaml", fmt.Sprintf(`---
# Per-cluster variables for Flux's postBuild substitution (and bootcore gen's, clusters[].settings).
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-settings
  namespace: flux-system
data:
  CLUSTER_NAME: %[1]q
  CLUSTER_FLAVOUR: %[2]q
  # Unique per cluster (1-255) so ClusterMesh needs no re-IP.
  CILIUM_CLUSTER_ID: "%[3]d"
  CLUSTER_DNS_IP: "10.96.0.10"
  CLUSTER_DOMAIN: %[1]s.k8s.example.internal
`, name, f.name, i+1))
		w.file(base+"/infrastructure.yaml", fluxKustomization("infrastructure", "./kubernetes/infrastructure/"+f.name, "", true))
		w.file(base+"/apps.yaml", fluxKustomization("apps", "./kubernetes/apps/"+f.name, "infrastructure", true))
	}
	w.file("bootstrap/bootcore.yaml", `# Synthetic fleet of bootcore's benchmarks (bench.WriteFleet); generated, do not edit.
apiVersion: bootcore.dev/v1alpha1
kind: Bootstrap
clusters:
`+clusters.String()+`
cni:
  helmRelease: kube-system/cilium
dns:
  helmRelease: kube-system/coredns
crds:
  - helmRelease: cert-manager/cert-manager
    values:
      crds:
        enabled: true
  - helmRelease: external-secrets/external-secrets
    values:
      installCRDs: true
  - helmRelease: flux-system/flux-operator
    values:
      installCRDs: true
mirrors:
`+fleetMirrors(mirror)+`
budget:
  maxConfigBytes: 4194304
output: generated
lock: bootstrap/bootcore.lock
`)
	w.file("patches/controlplane-common.yaml", "# Talos <= v1.13: CoreDNS boots from bootcore's manifests.\ncluster:\n  coreDNS:\n    disabled: true\n")
	w.file("patches/controlplane-common-v1.14.yaml", "# Talos >= v1.14: CoreDNS boots from bootcore's manifests.\napiVersion: v1alpha1\nkind: KubeCoreDNSConfig\nenabled: false\n")
	w.file("patches/flavours/prod.yaml", "machine:\n  sysctls:\n    net.core.somaxconn: \"65535\"\n    vm.max_map_count: \"262144\"\n")
	w.file("patches/flavours/staging.yaml", "machine:\n  sysctls:\n    net.core.somaxconn: \"65535\"\n")
	w.file("patches/flavours/edge.yaml", "machine:\n  sysctls:\n    net.core.somaxconn: \"4096\"\n  kubelet:\n    extraArgs:\n      max-pods: \"60\"\n")
	for _, f := range fleetFlavours {
		w.file("bootstrap/flavours/"+f.name+"/cilium-values.yaml", `# Boot-only Cilium values (bootcore gen merges them over the HelmRelease's): no render-time
# key material in the machine config; helm-controller creates the Hubble certificates later.
hubble:
  tls:
    auto:
      enabled: false
    server:
      existingSecret: hubble-server-certs
`)
	}
	writeFleetInfrastructure(w, opts)
	return info, w.err
}

func fleetMirrors(addr string) string {
	var b strings.Builder
	for _, u := range []struct{ upstream, path string }{
		{"https://helm.cilium.io", "http://%s/helm.cilium.io"},
		{"https://coredns.github.io/helm", "http://%s/coredns.github.io/helm"},
		{"https://charts.jetstack.io", "http://%s/charts.jetstack.io"},
		{"https://charts.external-secrets.io", "http://%s/charts.external-secrets.io"},
		{"oci://ghcr.io/controlplaneio-fluxcd/charts", "oci://%s/ghcr.io/controlplaneio-fluxcd/charts"},
	} {
		fmt.Fprintf(&b, "  - upstream: %s\n    mirror: %s\n", u.upstream, strings.Replace(fmt.Sprintf(u.path, addr), "http://oci://", "oci://", 1))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// fleetComponent is one component of the shared base.
type fleetComponent struct {
	name, namespace, path string
	repo, repoURL, chart  string
	version, values       string
	ociRepo               bool
	dependsOn             string
	overlay               func(fleetFlavour) string // the flavour's values, "" for none
}

var fleetComponents = []fleetComponent{
	{
		name: "cilium", namespace: "kube-system", path: "networking/cilium",
		repo: "cilium", repoURL: "https://helm.cilium.io", chart: "cilium", version: "1.19.6",
		values: `    ipam:
      mode: kubernetes
    kubeProxyReplacement: true
    k8sServiceHost: localhost
    k8sServicePort: 7445
    securityContext:
      capabilities:
        ciliumAgent: [CHOWN, KILL, NET_ADMIN, NET_RAW, IPC_LOCK, SYS_ADMIN, SYS_RESOURCE, DAC_OVERRIDE, FOWNER, SETGID, SETUID]
        cleanCiliumState: [NET_ADMIN, SYS_ADMIN, SYS_RESOURCE]
    cgroup:
      autoMount:
        enabled: false
      hostRoot: /sys/fs/cgroup
    hubble:
      enabled: true
      relay:
        enabled: false
      ui:
        enabled: false
`,
		overlay: func(f fleetFlavour) string { return f.cilium },
	},
	{
		name: "coredns", namespace: "kube-system", path: "networking/coredns", dependsOn: "cilium",
		repo: "coredns", repoURL: "https://coredns.github.io/helm", chart: "coredns", version: "1.46.2",
		values: `    fullnameOverride: coredns
    k8sAppLabelOverride: kube-dns
    service:
      name: kube-dns
      clusterIP: ${CLUSTER_DNS_IP}
    priorityClassName: system-cluster-critical
`,
		overlay: func(f fleetFlavour) string { return f.coredns },
	},
	{
		name: "cert-manager", namespace: "cert-manager", path: "security/cert-manager", dependsOn: "coredns",
		repo: "jetstack", repoURL: "https://charts.jetstack.io", chart: "cert-manager", version: "v1.19.1",
		values:  "    crds:\n      enabled: true\n      keep: true\n",
		overlay: func(f fleetFlavour) string { return f.certManager },
	},
	{
		name: "external-secrets", namespace: "external-secrets", path: "security/external-secrets", dependsOn: "cert-manager",
		repo: "external-secrets", repoURL: "https://charts.external-secrets.io", chart: "external-secrets", version: "2.9.0",
		values:  "    installCRDs: true\n    bitwarden-sdk-server:\n      enabled: false\n",
		overlay: func(f fleetFlavour) string { return f.externalSecrets },
	},
	{
		name: "flux-operator", namespace: "flux-system", path: "gitops/flux-operator", dependsOn: "external-secrets",
		repo: "controlplaneio-fluxcd", repoURL: "oci://ghcr.io/controlplaneio-fluxcd/charts", ociRepo: true, chart: "flux-operator", version: "0.49.0",
		values: "    installCRDs: true\n    priorityClassName: system-cluster-critical\n    rbac:\n      createAggregation: false\n    web:\n      rbac:\n        createRoles: false\n",
	},
}

func writeFleetInfrastructure(w *writer, opts FleetOptions) {
	for _, c := range fleetComponents {
		base := "kubernetes/infrastructure/base/" + c.path
		res := []string{"helmrepository.yaml", "helmrelease.yaml"}
		if c.namespace != "kube-system" {
			res = append([]string{"namespace.yaml"}, res...)
			w.file(base+"/namespace.yaml", fmt.Sprintf("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", c.namespace))
		}
		w.file(base+"/kustomization.yaml", kustomization(res...))
		typ := ""
		if c.ociRepo {
			typ = "  type: oci\n"
		}
		w.file(base+"/helmrepository.yaml", fmt.Sprintf("---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: %s\n  namespace: flux-system\nspec:\n%s  interval: 12h\n  url: %s\n", c.repo, typ, c.repoURL))
		if c.name == "cilium" && opts.ClusterMesh {
			c.values = ciliumMeshValues + c.values
		}
		w.file(base+"/helmrelease.yaml", fleetHelmRelease(c))
	}
	for _, f := range fleetFlavours {
		var ks []string
		for _, c := range fleetComponents {
			dir := "kubernetes/infrastructure/" + f.name + "/" + c.name
			ks = append(ks, c.name+"/ks.yaml")
			w.file(dir+"/ks.yaml", fluxKustomization(c.name, "./"+dir, c.dependsOn, true))
			values := ""
			if c.overlay != nil {
				values = c.overlay(f)
			}
			if values == "" {
				w.file(dir+"/kustomization.yaml", kustomization("../../base/"+c.path))
				continue
			}
			w.file(dir+"/kustomization.yaml", kustomization("../../base/"+c.path)+"patches:\n  - path: values.yaml\n")
			w.file(dir+"/values.yaml", fmt.Sprintf("---\n# %s values of the %s flavour.\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  values:\n%s", c.name, f.name, c.name, c.namespace, values))
		}
		w.file("kubernetes/infrastructure/"+f.name+"/kustomization.yaml", kustomization(ks...))

		replicas := map[string]int{"prod": 3, "staging": 1, "edge": 1}[f.name]
		w.file("kubernetes/apps/"+f.name+"/kustomization.yaml", kustomization("../base/podinfo")+"patches:\n  - path: podinfo-values.yaml\n")
		w.file("kubernetes/apps/"+f.name+"/podinfo-values.yaml", fmt.Sprintf(`---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: podinfo
spec:
  values:
    replicaCount: %d
    ingress:
      enabled: true
      hosts:
        - host: podinfo.${CLUSTER_DOMAIN}
          paths: [{path: /, pathType: Prefix}]
`, replicas))
	}
	w.file("kubernetes/apps/base/podinfo/kustomization.yaml", kustomization("namespace.yaml", "helmrepository.yaml", "helmrelease.yaml"))
	w.file("kubernetes/apps/base/podinfo/namespace.yaml", "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n")
	w.file("kubernetes/apps/base/podinfo/helmrepository.yaml", "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: podinfo\n  namespace: podinfo\nspec:\n  type: oci\n  interval: 1h\n  url: oci://ghcr.io/stefanprodan/charts\n")
	w.file("kubernetes/apps/base/podinfo/helmrelease.yaml", `---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: podinfo
spec:
  interval: 30m
  chart:
    spec:
      chart: podinfo
      version: 6.x
      sourceRef:
        kind: HelmRepository
        name: podinfo
  values:
    ui:
      message: ${CLUSTER_NAME}
`)
}

func fleetHelmRelease(c fleetComponent) string {
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
      version: %q
      sourceRef:
        kind: HelmRepository
        name: %s
        namespace: flux-system
      interval: 12h
  install:
    remediation:
      retries: 3
  upgrade:
    cleanupOnFail: true
    remediation:
      retries: 3
  values:
%s`, c.name, c.namespace, c.chart, c.version, c.repo, c.values)
}
