// Package spec defines bootstrap/bootcore.yaml, the small file that tells bootcore which
// clusters exist and which Flux HelmReleases become Talos inline manifests at boot.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultPath is where the spec lives, relative to the repository root.
const DefaultPath = "bootstrap/bootcore.yaml"

// APIVersion and Kind identify the spec document.
const (
	APIVersion = "bootcore.dev/v1alpha1"
	Kind       = "Bootstrap"
)

// DefaultMaxConfigBytes is the smallest limit any Talos version puts on a machine config
// (gRPC's 4 MiB default in maintenance mode of Talos <= 1.12).
const DefaultMaxConfigBytes = 4 << 20

// Values of Spec.CRDDescriptions.
const (
	CRDDescriptionsKeep  = "keep"
	CRDDescriptionsStrip = "strip"
)

// DefaultOutput is where gen writes its patches, relative to the repository root.
const DefaultOutput = "generated"

// Spec is the whole bootstrap spec.
type Spec struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Clusters booted from this repository.
	Clusters []Cluster `json:"clusters"`
	// CNI is the phase-1 HelmRelease, installed by Talos at boot and adopted by Flux later.
	CNI CNI `json:"cni"`
	// DNS is the cluster DNS release (CoreDNS), booted by Talos right after the CNI and adopted
	// by Flux like it: Flux's own pods resolve their Git and chart hosts through it, so it cannot
	// wait for Flux. Talos's built-in CoreDNS must then be off (a static patch).
	DNS *Release `json:"dns,omitempty"`
	// CRDs are the phase-0 sources: only their CustomResourceDefinitions are kept.
	CRDs []CRDSource `json:"crds,omitempty"`
	// CRDDescriptions is CRDDescriptionsKeep (default) or CRDDescriptionsStrip: strip drops the
	// description fields of the phase-0 CRD schemas to save machine-config bytes. It lives in the
	// spec so that gen, gen --check and check render the same bytes.
	CRDDescriptions string `json:"crdDescriptions,omitempty"`
	// Mirrors rewrite chart repository URLs, for air-gapped users.
	Mirrors []Mirror `json:"mirrors,omitempty"`
	// Budget limits the size of what gen emits.
	Budget Budget `json:"budget,omitempty"`
	// Output is the directory gen writes to, relative to the repository root.
	Output string `json:"output,omitempty"`
	// Lock is the chart lock file, relative to the repository root.
	Lock string `json:"lock,omitempty"`
	// Agent configures the post-boot hand-over to Flux (see agent.go).
	Agent *Agent `json:"agent,omitempty"`
	// GitRepository says which Flux GitRepository is this repository (walk scope).
	GitRepository *GitRepository `json:"gitRepository,omitempty"`
	// BootstrapSecrets ("namespace/name") are Secrets created outside Git before Flux runs
	// (a bootstrap script, a secret manager); substitution counts them as provided at runtime.
	BootstrapSecrets []string `json:"bootstrapSecrets,omitempty"`
}

// GitRepository names the Flux GitRepository that is this repository, by name or by URL.
// Kustomizations of any other source are not walked (listed as skipped). Default: the one
// the cluster's entry reconciles itself from, else flux-system/flux-system.
type GitRepository struct {
	// Name is "<namespace>/<name>".
	Name string `json:"name,omitempty"`
	// URL matches GitRepositories by spec.url (https, ssh and scp-like spellings are equal).
	URL string `json:"url,omitempty"`
}

// Cluster is one Talos cluster.
type Cluster struct {
	Name string `json:"name"`
	// TalosVersion selects the machine-config contract (v1.14+ uses KubeInlineManifestConfig documents).
	TalosVersion string `json:"talosVersion"`
	// KubernetesVersion is used for chart capabilities and for generating the validation config.
	KubernetesVersion string `json:"kubernetesVersion"`
	// Endpoint is the cluster's Kubernetes API endpoint, e.g. https://10.0.0.10:6443.
	Endpoint string `json:"endpoint"`
	// FluxSystem is the directory holding the cluster's Flux entry (gotk-sync.yaml, kustomization.yaml).
	FluxSystem string `json:"fluxSystem"`
	// Settings is the cluster-settings ConfigMap file used by postBuild.substituteFrom
	// (optional: a tree may have none).
	Settings string `json:"settings,omitempty"`
	// CNIValues is a values file with boot-only overrides of the CNI HelmRelease's values.
	CNIValues string `json:"cniValues,omitempty"`
	// Patches are the user's static Talos patches for every node (talosctl --config-patch);
	// gen applies them before its own when validating, so the validated config is the real one.
	Patches []string `json:"patches,omitempty"`
	// ControlPlanePatches and WorkerPatches apply to one role only
	// (talosctl --config-patch-control-plane / --config-patch-worker).
	ControlPlanePatches []string `json:"controlPlanePatches,omitempty"`
	WorkerPatches       []string `json:"workerPatches,omitempty"`
}

// CNI is the phase-1 release.
type CNI struct {
	Release `json:",inline"`
	// RequireDriftDetection makes check's drift-detection rule (story AC7) an error instead
	// of a warning.
	RequireDriftDetection bool `json:"requireDriftDetection,omitempty"`
}

// Release names a Flux HelmRelease in the GitOps tree.
type Release struct {
	// HelmRelease is "<namespace>/<name>".
	HelmRelease string `json:"helmRelease"`
	// Values are merged over the HelmRelease's values at boot only (phase 0: what makes a chart emit its CRDs).
	Values map[string]any `json:"values,omitempty"`
}

// CRDSource is one phase-0 source: a HelmRelease whose chart's CRDs are kept, or a file or
// directory of plain CRD manifests in the repository (e.g. Gateway API CRDs).
type CRDSource struct {
	Release `json:",inline"`
	// Path is a YAML file or directory of CRDs, relative to the repository root. Anything
	// but a CustomResourceDefinition in it is an error.
	Path string `json:"path,omitempty"`
}

// Mirror maps an upstream chart repository URL prefix to a mirror.
type Mirror struct {
	Upstream string `json:"upstream"`
	Mirror   string `json:"mirror"`
}

// Budget limits sizes.
type Budget struct {
	// MaxConfigBytes is the largest machine config (base config plus patches) allowed.
	MaxConfigBytes int64 `json:"maxConfigBytes,omitempty"`
}

// Namespace and Name split Release.HelmRelease.
func (r Release) Namespace() string { ns, _, _ := strings.Cut(r.HelmRelease, "/"); return ns }
func (r Release) Name() string      { _, n, _ := strings.Cut(r.HelmRelease, "/"); return n }

// Cluster returns the named cluster.
func (s *Spec) Cluster(name string) (Cluster, bool) {
	for _, c := range s.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return Cluster{}, false
}

// ClusterNames lists the clusters in spec order.
func (s *Spec) ClusterNames() []string {
	names := make([]string, 0, len(s.Clusters))
	for _, c := range s.Clusters {
		names = append(names, c.Name)
	}
	return names
}

// Load reads and validates the spec at path. Unknown fields are errors.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap spec: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a spec document.
func Parse(data []byte) (*Spec, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty spec")
	}
	var s Spec
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("invalid spec: %w", err)
	}
	s.applyDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Spec) applyDefaults() {
	if s.Budget.MaxConfigBytes == 0 {
		s.Budget.MaxConfigBytes = DefaultMaxConfigBytes
	}
	if s.Output == "" {
		s.Output = DefaultOutput
	}
	if s.Lock == "" {
		s.Lock = "bootstrap/bootcore.lock"
	}
	if s.CRDDescriptions == "" {
		s.CRDDescriptions = CRDDescriptionsKeep
	}
}

var (
	dns1123     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	versionLike = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?$`)
)

// Validate reports the first problem, naming the field.
func (s *Spec) Validate() error {
	if s.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion: want %q, got %q", APIVersion, s.APIVersion)
	}
	if s.Kind != Kind {
		return fmt.Errorf("kind: want %q, got %q", Kind, s.Kind)
	}
	if len(s.Clusters) == 0 {
		return errors.New("clusters: at least one cluster is required")
	}
	seen := map[string]bool{}
	for i, c := range s.Clusters {
		field := fmt.Sprintf("clusters[%d]", i)
		if !dns1123.MatchString(c.Name) {
			return fmt.Errorf("%s.name: %q is not a DNS-1123 label", field, c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("%s.name: duplicate cluster %q", field, c.Name)
		}
		seen[c.Name] = true
		field = fmt.Sprintf("clusters[%s]", c.Name)
		if !versionLike.MatchString(c.TalosVersion) {
			return fmt.Errorf("%s.talosVersion: %q is not a version like v1.13.0", field, c.TalosVersion)
		}
		if !versionLike.MatchString(c.KubernetesVersion) {
			return fmt.Errorf("%s.kubernetesVersion: %q is not a version like 1.35.4", field, c.KubernetesVersion)
		}
		if !strings.HasPrefix(c.Endpoint, "https://") {
			return fmt.Errorf("%s.endpoint: %q must be an https:// URL", field, c.Endpoint)
		}
		if c.FluxSystem == "" {
			return fmt.Errorf("%s.fluxSystem: required", field)
		}
		for name, p := range map[string]string{"fluxSystem": c.FluxSystem, "settings": c.Settings, "cniValues": c.CNIValues} {
			if err := relPath(p); err != nil {
				return fmt.Errorf("%s.%s: %w", field, name, err)
			}
		}
		for name, list := range map[string][]string{"patches": c.Patches, "controlPlanePatches": c.ControlPlanePatches, "workerPatches": c.WorkerPatches} {
			for j, p := range list {
				if err := relPath(p); err != nil || p == "" {
					return fmt.Errorf("%s.%s[%d]: %q must be a path inside the repository", field, name, j, p)
				}
			}
		}
	}
	if s.CNI.HelmRelease != "" || len(s.CNI.Values) > 0 {
		if err := s.CNI.validate("cni"); err != nil {
			return err
		}
	}
	if s.DNS != nil {
		if err := s.DNS.validate("dns"); err != nil {
			return err
		}
		if s.DNS.HelmRelease == s.CNI.HelmRelease {
			return fmt.Errorf("dns.helmRelease: %q is the CNI release too", s.DNS.HelmRelease)
		}
	}
	releases := map[string]bool{}
	for i, r := range s.CRDs {
		field := fmt.Sprintf("crds[%d]", i)
		switch {
		case r.Path != "" && r.HelmRelease != "":
			return fmt.Errorf("%s: set either helmRelease or path, not both", field)
		case r.Path != "":
			if err := relPath(r.Path); err != nil {
				return fmt.Errorf("%s.path: %w", field, err)
			}
			if len(r.Values) > 0 {
				return fmt.Errorf("%s.values: only a helmRelease source takes values", field)
			}
			continue
		}
		if err := r.validate(field); err != nil {
			return err
		}
		if releases[r.HelmRelease] {
			return fmt.Errorf("%s.helmRelease: %q listed twice", field, r.HelmRelease)
		}
		releases[r.HelmRelease] = true
	}
	if s.CRDDescriptions != CRDDescriptionsKeep && s.CRDDescriptions != CRDDescriptionsStrip {
		return fmt.Errorf("crdDescriptions: want %q or %q, got %q", CRDDescriptionsKeep, CRDDescriptionsStrip, s.CRDDescriptions)
	}
	for i, m := range s.Mirrors {
		if m.Upstream == "" || m.Mirror == "" {
			return fmt.Errorf("mirrors[%d]: upstream and mirror are required", i)
		}
	}
	if s.Budget.MaxConfigBytes < 0 {
		return errors.New("budget.maxConfigBytes: must be positive")
	}
	if err := relPath(s.Output); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := relPath(s.Lock); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if s.Agent != nil {
		if err := s.Agent.validate(s); err != nil {
			return err
		}
	}
	if g := s.GitRepository; g != nil {
		if (g.Name == "") == (g.URL == "") {
			return errors.New("gitRepository: set either name or url")
		}
		if g.Name != "" {
			if ns, name, ok := strings.Cut(g.Name, "/"); !ok || !dns1123.MatchString(ns) || name == "" {
				return fmt.Errorf("gitRepository.name: %q must be <namespace>/<name>", g.Name)
			}
		}
	}
	for i, id := range s.BootstrapSecrets {
		if ns, name, ok := strings.Cut(id, "/"); !ok || !dns1123.MatchString(ns) || name == "" {
			return fmt.Errorf("bootstrapSecrets[%d]: %q must be <namespace>/<name>", i, id)
		}
	}
	return nil
}

func (r Release) validate(field string) error {
	ns, name, ok := strings.Cut(r.HelmRelease, "/")
	if !ok || !dns1123.MatchString(ns) || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%s.helmRelease: %q must be <namespace>/<name>", field, r.HelmRelease)
	}
	return nil
}

// relPath accepts empty or a clean relative path that stays inside the repository.
func relPath(p string) error {
	if p == "" {
		return nil
	}
	if filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") {
		return fmt.Errorf("%q must be a path inside the repository", p)
	}
	return nil
}
