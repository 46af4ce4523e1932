package gen

import (
	"fmt"
	"sort"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/internal/render"
)

// Helm's ownership metadata: with it helm-controller (and plain Helm) adopt what Talos created.
const (
	managedByLabel      = "app.kubernetes.io/managed-by"
	releaseNameAnno     = "meta.helm.sh/release-name"
	releaseNamespaceAnn = "meta.helm.sh/release-namespace"
	// helm-controller's post-renderer adds these origin labels; adding them at boot means
	// its first reconcile finds nothing to change.
	fluxNameLabel      = "helm.toolkit.fluxcd.io/name"
	fluxNamespaceLabel = "helm.toolkit.fluxcd.io/namespace"
)

// clusterScoped lists the built-in kinds that take no namespace. CRD kinds add their own scope.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "CustomResourceDefinition": true, "StorageClass": true,
	"PriorityClass": true, "ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"APIService": true, "CSIDriver": true, "CSINode": true, "IngressClass": true, "RuntimeClass": true,
	"VolumeAttachment": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true, "FlowSchema": true,
	"PriorityLevelConfiguration": true, "CertificateSigningRequest": true, "ComponentStatus": true,
	"DeviceClass": true, "IPAddress": true, "ServiceCIDR": true, "VolumeAttributesClass": true,
}

func isCRD(o *unstructured.Unstructured) bool {
	return o.GetKind() == "CustomResourceDefinition" && strings.HasPrefix(o.GetAPIVersion(), "apiextensions.k8s.io/")
}

// ownedBy stamps Helm's ownership metadata and helm-controller's origin labels.
func ownedBy(o *unstructured.Unstructured, release, namespace, hrName, hrNamespace string) {
	labels := o.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[managedByLabel] = "Helm"
	labels[fluxNameLabel] = hrName
	labels[fluxNamespaceLabel] = hrNamespace
	o.SetLabels(labels)
	annotations := o.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[releaseNameAnno] = release
	annotations[releaseNamespaceAnn] = namespace
	o.SetAnnotations(annotations)
}

// crdScopes maps "group/Kind" of each CRD to whether it is cluster-scoped.
func crdScopes(crds []*unstructured.Unstructured) map[string]bool {
	scopes := map[string]bool{}
	for _, c := range crds {
		group, _, _ := unstructured.NestedString(c.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(c.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(c.Object, "spec", "scope")
		scopes[group+"/"+kind] = scope == "Cluster"
	}
	return scopes
}

// setNamespace gives namespaced objects the release namespace, as Helm does at install time;
// Talos would otherwise create them in "default".
func setNamespace(o *unstructured.Unstructured, namespace string, crdCluster map[string]bool) {
	if o.GetNamespace() != "" || clusterScoped[o.GetKind()] || crdCluster[o.GroupVersionKind().Group+"/"+o.GetKind()] {
		return
	}
	o.SetNamespace(namespace)
}

// inCRDDir tells whether a rendered file is from a chart's crds/ directory ("<chart>/crds/x.yaml",
// or a subchart's "<chart>/charts/<sub>/crds/x.yaml"), which Helm installs outside the release,
// as opposed to a template such as "<chart>/templates/crds/x.yaml", which is part of it.
func inCRDDir(template string) bool {
	parts := strings.Split(template, "/")
	i := 1
	for i+1 < len(parts) && parts[i] == "charts" {
		i += 2
	}
	return i < len(parts)-1 && parts[i] == "crds"
}

// BootValuesHint is the boot-only Cilium values the README recommends (section "Boot-only values
// (Cilium)"); a test renders the real chart with the README's block and checks it matches.
const BootValuesHint = "hubble.tls.auto.enabled: false and hubble.tls.server.existingSecret: hubble-server-certs"

// knownFixes names the boot-only values that switch off templates gen must refuse.
var knownFixes = []struct{ template, fix string }{
	{"templates/cilium-ca-secret.yaml", "set " + BootValuesHint + " in %s (boot-only); hubble.tls.auto.method: cronJob would add a Job, which breaks talosctl upgrade-k8s"},
	{"templates/hubble/tls-helm/", "set " + BootValuesHint + " in %s (boot-only); Flux re-creates the certificates after hand-over"},
	{"templates/hubble/tls-provided/", "hubble.tls.auto.enabled: false needs hubble.tls.server.existingSecret: hubble-server-certs next to it in %s, or the chart renders a Secret from hubble.tls.server.cert/key"},
	{"templates/hubble/tls-cronjob/", "set " + BootValuesHint + " in %s (boot-only) instead of hubble.tls.auto.method: cronJob"},
}

// fixFor returns the hint for a refused template; file is where the release's boot-only
// values go (the cluster's cniValues file, dns.values of the spec).
func fixFor(template, file string) string {
	for _, k := range knownFixes {
		if strings.Contains(template, k.template) {
			return fmt.Sprintf(k.fix, file)
		}
	}
	return "switch the template off with a boot-only value in " + file + "; Flux creates it after hand-over"
}

// refuse returns the guard errors of phase-1 objects: CRDs, Secrets, Jobs and private keys never
// boot. origin names the release (and its boot-values file), valuesAt is where boot-only values go.
func refuse(objs []render.Object, origin, valuesAt string) error {
	var problems []string
	for _, o := range objs {
		switch {
		case isCRD(o.Unstructured):
			problems = append(problems, fmt.Sprintf("CustomResourceDefinition %s from %s: phase 1 must not contain CRDs (they belong to phase 0, spec crds:)", o.GetName(), o.Template))
		case o.GetKind() == "Secret" && o.GetAPIVersion() == "v1":
			problems = append(problems, fmt.Sprintf("Secret %s from %s: secrets must not enter the machine config; %s", o.GetName(), o.Template, fixFor(o.Template, valuesAt)))
		case o.GetKind() == "Job" && strings.HasPrefix(o.GetAPIVersion(), "batch/"):
			problems = append(problems, fmt.Sprintf("Job %s from %s: a Job in inline manifests breaks talosctl upgrade-k8s (immutable spec); %s", o.GetName(), o.Template, fixFor(o.Template, valuesAt)))
		default:
			if field, ok := render.PrivateKey(o.Object); ok {
				problems = append(problems, fmt.Sprintf("%s %s from %s: field %s holds a private key, which must not enter the machine config; %s", o.GetKind(), o.GetName(), o.Template, field, fixFor(o.Template, valuesAt)))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: refused by the boot guards:\n  - %s", origin, strings.Join(problems, "\n  - "))
}

// hookFate says what happens to the CNI chart's hooks, which never boot: helm-controller installs
// the release at hand-over (no Helm release exists yet), and Helm runs the install hooks then.
func hookFate(hr *helmv2.HelmRelease) string {
	if hr.GetInstall().DisableHooks {
		return "never run: Talos does not run chart hooks, and spec.install.disableHooks makes helm-controller skip them at hand-over"
	}
	return "not in the boot manifest (Talos does not run chart hooks); helm-controller runs the pre-install and post-install hooks when it installs the release at hand-over"
}

// differingTemplates compares two renders and names the templates whose output changed:
// render-time randomness (genCA, randAlphaNum, now) would make every gen a drift.
func differingTemplates(a, b []render.Object) []string {
	enc := func(objs []render.Object) map[string]string {
		m := map[string]string{}
		for _, o := range objs {
			data, _ := render.Encode([]*unstructured.Unstructured{o.Unstructured})
			m[o.Template] += string(data)
		}
		return m
	}
	ea, eb := enc(a), enc(b)
	set := map[string]bool{}
	for t, v := range ea {
		if eb[t] != v {
			set[t] = true
		}
	}
	for t := range eb {
		if _, ok := ea[t]; !ok {
			set[t] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// stripDescriptions removes description strings from a CRD's schemas. A property that is
// itself named "description" is a map, not a string, and stays.
func stripDescriptions(v any) {
	switch n := v.(type) {
	case map[string]any:
		if _, ok := n["description"].(string); ok {
			delete(n, "description")
		}
		for _, child := range n {
			stripDescriptions(child)
		}
	case []any:
		for _, child := range n {
			stripDescriptions(child)
		}
	}
}

func stripCRD(crd *unstructured.Unstructured) {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		if vm, ok := v.(map[string]any); ok {
			stripDescriptions(vm["schema"])
		}
	}
	_ = unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions")
}

// valueChanges lists the dotted paths whose value differs between before and after.
func valueChanges(before, after map[string]any) []string {
	var out []string
	var walk func(prefix string, a, b any)
	walk = func(prefix string, a, b any) {
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if aok && bok {
			keys := map[string]bool{}
			for k := range am {
				keys[k] = true
			}
			for k := range bm {
				keys[k] = true
			}
			for k := range keys {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, am[k], bm[k])
			}
			return
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			out = append(out, fmt.Sprintf("%s: %s -> %s", prefix, show(a), show(b)))
		}
	}
	walk("", before, after)
	sort.Strings(out)
	return out
}

func show(v any) string {
	if v == nil {
		return "(unset)"
	}
	if v == "" {
		return `""`
	}
	return fmt.Sprintf("%v", v)
}
