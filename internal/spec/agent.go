package spec

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Agent configures `bootcore agent`, the run-once hand-over of a booted cluster to Flux.
// Every field is optional: the defaults are the story's core (see DefaultAgent).
type Agent struct {
	// Namespaces are created before the bootstrap Secrets.
	// Default: flux-system, external-secrets, cert-manager.
	Namespaces []string `json:"namespaces,omitempty"`
	// Secrets are the bootstrap Secrets, built from environment variables or files named
	// here (never from values in Git). Files may be SOPS-encrypted with age.
	Secrets []AgentSecret `json:"secrets,omitempty"`
	// Flux says how Flux is installed.
	Flux AgentFlux `json:"flux,omitempty"`
	// Handover lists the workloads that must be Available before the cluster counts as
	// handed over. Default: the story's (CoreDNS with COREDNS_REPLICAS replicas, cert-manager,
	// cert-manager-webhook, external-secrets, flux-operator).
	Handover []AgentWorkload `json:"handover,omitempty"`
}

// AgentSecret is one bootstrap Secret.
type AgentSecret struct {
	// Name is "<namespace>/<name>".
	Name string `json:"name"`
	// Type is the Secret type; default Opaque.
	Type string `json:"type,omitempty"`
	// Data maps each key of the Secret to where its value comes from.
	Data map[string]SecretSource `json:"data"`
}

// SecretSource is where one Secret value comes from: exactly one of Env or File.
type SecretSource struct {
	// Env names an environment variable holding the value.
	Env string `json:"env,omitempty"`
	// File is a path (relative to the repository root, absolute, or ~/...) whose content is
	// the value. With Key, the file is a YAML or JSON document and the value is at Key; a
	// document with SOPS metadata is decrypted first (age keys only: SOPS_AGE_KEY,
	// SOPS_AGE_KEY_FILE or the sops default key file).
	File string `json:"file,omitempty"`
	// Key is a dotted path into the document in File, e.g. "stringData.token".
	Key string `json:"key,omitempty"`
}

// AgentFlux configures the Flux installation.
type AgentFlux struct {
	// Operator and Instance are the HelmReleases ("<namespace>/<name>") of the flux-operator and
	// flux-instance charts. The agent installs the same charts with the same release names,
	// namespaces and values, so that helm-controller adopts them.
	// Default: flux-system/flux-operator and flux-system/flux-instance.
	Operator string `json:"operator,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Manifests is a local directory with a kustomization of the Flux install manifests, used
	// by `--flux-install=manifests` (air-gapped). Relative to the repository root or absolute.
	Manifests string `json:"manifests,omitempty"`
}

// AgentWorkload is a Deployment or DaemonSet that must be rolled out at hand-over.
type AgentWorkload struct {
	// Kind is Deployment or DaemonSet.
	Kind string `json:"kind"`
	// Name is "<namespace>/<name>".
	Name string `json:"name"`
	// ReplicasFrom names a cluster-settings key holding the expected replica count.
	ReplicasFrom string `json:"replicasFrom,omitempty"`
}

// Defaults of the agent section.
var (
	DefaultAgentNamespaces = []string{"flux-system", "external-secrets", "cert-manager"}
	DefaultFluxOperator    = "flux-system/flux-operator"
	DefaultFluxInstance    = "flux-system/flux-instance"
	DefaultHandover        = []AgentWorkload{
		{Kind: "Deployment", Name: "kube-system/coredns", ReplicasFrom: "COREDNS_REPLICAS"},
		{Kind: "Deployment", Name: "cert-manager/cert-manager"},
		{Kind: "Deployment", Name: "cert-manager/cert-manager-webhook"},
		{Kind: "Deployment", Name: "external-secrets/external-secrets"},
		{Kind: "Deployment", Name: "flux-system/flux-operator"},
	}
)

// AgentOrDefault returns the agent section with defaults filled in; a spec without one gets
// the defaults.
func (s *Spec) AgentOrDefault() Agent {
	var a Agent
	if s.Agent != nil {
		a = *s.Agent
	}
	if len(a.Namespaces) == 0 {
		a.Namespaces = append([]string(nil), DefaultAgentNamespaces...)
	}
	if a.Flux.Operator == "" {
		a.Flux.Operator = DefaultFluxOperator
	}
	if a.Flux.Instance == "" {
		a.Flux.Instance = DefaultFluxInstance
	}
	if len(a.Handover) == 0 {
		a.Handover = append([]AgentWorkload(nil), DefaultHandover...)
	}
	return a
}

// SplitName splits "<namespace>/<name>".
func SplitName(id string) (namespace, name string) {
	namespace, name, _ = strings.Cut(id, "/")
	return namespace, name
}

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretKey   = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	secretTypes = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9./]*$`)
)

func (a *Agent) validate(*Spec) error {
	for i, ns := range a.Namespaces {
		if !dns1123.MatchString(ns) {
			return fmt.Errorf("agent.namespaces[%d]: %q is not a DNS-1123 label", i, ns)
		}
	}
	seen := map[string]bool{}
	for i, sec := range a.Secrets {
		field := fmt.Sprintf("agent.secrets[%d]", i)
		if err := namespacedName(sec.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if seen[sec.Name] {
			return fmt.Errorf("%s.name: Secret %q listed twice", field, sec.Name)
		}
		seen[sec.Name] = true
		field = fmt.Sprintf("agent.secrets[%s]", sec.Name)
		if sec.Type != "" && !secretTypes.MatchString(sec.Type) {
			return fmt.Errorf("%s.type: %q is not a Secret type", field, sec.Type)
		}
		if len(sec.Data) == 0 {
			return fmt.Errorf("%s.data: at least one key is required", field)
		}
		keys := make([]string, 0, len(sec.Data))
		for k := range sec.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !secretKey.MatchString(k) {
				return fmt.Errorf("%s.data: %q is not a valid Secret key", field, k)
			}
			if err := sec.Data[k].validate(); err != nil {
				return fmt.Errorf("%s.data.%s: %w", field, k, err)
			}
		}
	}
	for name, id := range map[string]string{"operator": a.Flux.Operator, "instance": a.Flux.Instance} {
		if id == "" {
			continue
		}
		if err := namespacedName(id); err != nil {
			return fmt.Errorf("agent.flux.%s: %w", name, err)
		}
	}
	for i, w := range a.Handover {
		field := fmt.Sprintf("agent.handover[%d]", i)
		if w.Kind != "Deployment" && w.Kind != "DaemonSet" {
			return fmt.Errorf("%s.kind: %q must be Deployment or DaemonSet", field, w.Kind)
		}
		if err := namespacedName(w.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if w.ReplicasFrom != "" && w.Kind != "Deployment" {
			return fmt.Errorf("%s.replicasFrom: only a Deployment has a replica count", field)
		}
	}
	return nil
}

func (s SecretSource) validate() error {
	switch {
	case s.Env != "" && s.File != "":
		return errors.New("set either env or file, not both")
	case s.Env == "" && s.File == "":
		return errors.New("env or file is required")
	case s.Env != "" && !envName.MatchString(s.Env):
		return fmt.Errorf("env: %q is not an environment variable name", s.Env)
	case s.Key != "" && s.File == "":
		return errors.New("key needs file")
	}
	return nil
}

func namespacedName(id string) error {
	ns, name, ok := strings.Cut(id, "/")
	if !ok || !dns1123.MatchString(ns) || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%q must be <namespace>/<name>", id)
	}
	return nil
}
