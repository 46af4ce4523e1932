package spec

import (
	"strings"
	"testing"
)

const agentBase = `
apiVersion: bootcore.dev/v1alpha1
kind: Bootstrap
clusters:
  - name: infra
    talosVersion: v1.13.9
    kubernetesVersion: 1.35.4
    endpoint: https://10.10.0.10:6443
    fluxSystem: kubernetes/clusters/infra/flux-system
    settings: kubernetes/clusters/infra/cluster-settings.yaml
cni:
  helmRelease: kube-system/cilium
`

func TestAgentSpec(t *testing.T) {
	s, err := Parse([]byte(agentBase + `
agent:
  secrets:
    - name: flux-system/flux-system
      data:
        identity: {file: ~/.ssh/flux}
        known_hosts: {file: bootstrap/known_hosts}
    - name: external-secrets/onepassword-connect
      data:
        token: {env: OP_CONNECT_TOKEN}
        1password-credentials.json: {file: bootstrap/secrets/op.sops.yaml, key: stringData.credentials}
  handover:
    - {kind: Deployment, name: kube-system/coredns, replicasFrom: COREDNS_REPLICAS}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := s.AgentOrDefault()
	if len(a.Secrets) != 2 || a.Secrets[1].Data["token"].Env != "OP_CONNECT_TOKEN" {
		t.Errorf("secrets = %+v", a.Secrets)
	}
	if a.Flux.Operator != DefaultFluxOperator || a.Flux.Instance != DefaultFluxInstance {
		t.Errorf("flux defaults = %+v", a.Flux)
	}
	if strings.Join(a.Namespaces, ",") != "flux-system,external-secrets,cert-manager" {
		t.Errorf("namespaces = %v", a.Namespaces)
	}
	if len(a.Handover) != 1 {
		t.Errorf("handover = %v, want the one given (no defaults merged in)", a.Handover)
	}

	// No agent section: every default.
	s, err = Parse([]byte(agentBase))
	if err != nil {
		t.Fatal(err)
	}
	if a := s.AgentOrDefault(); len(a.Handover) != len(DefaultHandover) || len(a.Secrets) != 0 {
		t.Errorf("defaults = %+v", a)
	}
}

func TestAgentSpecErrors(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown field":     {"agent:\n  secretz: []\n", "secretz"},
		"unknown source":    {"agent:\n  secrets:\n    - name: a/b\n      data: {k: {vault: x}}\n", "vault"},
		"bad name":          {"agent:\n  secrets:\n    - name: b\n      data: {k: {env: X}}\n", `agent.secrets[0].name: "b" must be <namespace>/<name>`},
		"twice":             {"agent:\n  secrets:\n    - {name: a/b, data: {k: {env: X}}}\n    - {name: a/b, data: {k: {env: X}}}\n", "listed twice"},
		"no data":           {"agent:\n  secrets:\n    - name: a/b\n", "agent.secrets[a/b].data: at least one key"},
		"env and file":      {"agent:\n  secrets:\n    - {name: a/b, data: {k: {env: X, file: y}}}\n", "agent.secrets[a/b].data.k: set either env or file"},
		"neither":           {"agent:\n  secrets:\n    - {name: a/b, data: {k: {}}}\n", "agent.secrets[a/b].data.k: env or file is required"},
		"bad env":           {"agent:\n  secrets:\n    - {name: a/b, data: {k: {env: 1X}}}\n", "not an environment variable name"},
		"key without file":  {"agent:\n  secrets:\n    - {name: a/b, data: {k: {env: X, key: a}}}\n", "key needs file"},
		"bad secret key":    {"agent:\n  secrets:\n    - {name: a/b, data: {'a b': {env: X}}}\n", "not a valid Secret key"},
		"bad namespace":     {"agent:\n  namespaces: [Flux]\n", "agent.namespaces[0]"},
		"bad operator":      {"agent:\n  flux: {operator: flux-operator}\n", "agent.flux.operator"},
		"bad workload kind": {"agent:\n  handover: [{kind: StatefulSet, name: a/b}]\n", "agent.handover[0].kind"},
		"replicas on ds":    {"agent:\n  handover: [{kind: DaemonSet, name: a/b, replicasFrom: N}]\n", "agent.handover[0].replicasFrom"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(agentBase + tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
