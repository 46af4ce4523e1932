// Package talosemu is an EMULATION, for tests, of what a Talos control-plane
// node does with the manifests of its machine config. It is not Talos
// code and does not boot anything: it builds the machine config with Talos'
// own machinery (generate + configpatcher + validation, as `talosctl gen
// config --config-patch-control-plane` would), reads its inline manifests from
// both contracts (v1alpha1 cluster.inlineManifests and Talos 1.14
// KubeInlineManifestConfig documents), and applies them to a test-bed cluster
// with the semantics of Talos >= 1.13 as described in FIELD-NOTES.md
// ("Talos: inline manifests"):
//
//   - manifests sorted by ID ("99-<name>"), objects flattened, then
//     Namespaces first, CRDs second (each by name), everything else in file
//     order;
//   - an object in the inventory is skipped, even when deleted (never
//     re-created); an existing object is only added to the inventory
//     (backfill); a missing one is created by server-side apply with field
//     manager "talos" (no force) and annotated with the owning inventory,
//     unless its manifest names another inventory (an error);
//   - inventory ConfigMap kube-system/talos-bootstrap-manifests-inventory,
//     written with github.com/siderolabs/go-kubernetes/kubernetes/ssa;
//   - errors of one object (a kind the API server does not know yet, an
//     invalid object) are collected and the run goes on; any other error
//     (Forbidden, Conflict, connection) aborts the run and empties the
//     inventory, as Talos's applyManifests writes the nil set apply returns;
//     a failed run is retried with backoff;
//   - runs of several control-plane nodes are serialised (Talos: an etcd
//     mutex; here: a Lease used as a lock, see lock.go).
//
// Talos's own bootstrap manifests (CoreDNS, kube-proxy, Flannel, bootstrap
// RBAC and token) are applied with the inline manifests, with Talos's IDs and
// unless the config turns each off (bootstrap.go). `talosctl upgrade-k8s`'s
// manifest sync is UpgradeK8sSync (upgrade.go). Not emulated: extra manifest
// URLs.
package talosemu

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

// ConfigOptions are the `talosctl gen config` inputs of the emulated node.
type ConfigOptions struct {
	ClusterName       string // default "lab"
	Endpoint          string // default "https://127.0.0.1:6443"
	KubernetesVersion string // default "1.35.4"
	TalosVersion      string // version contract, default "v1.14"
}

// MachineConfig generates a control-plane machine config and applies the
// patches (YAML, strategic merge, as in --config-patch-control-plane), then
// validates it as a metal node would.
func MachineConfig(opts ConfigOptions, patches ...[]byte) (config.Provider, error) {
	if opts.ClusterName == "" {
		opts.ClusterName = "lab"
	}
	if opts.Endpoint == "" {
		opts.Endpoint = "https://127.0.0.1:6443"
	}
	if opts.KubernetesVersion == "" {
		opts.KubernetesVersion = "1.35.4"
	}
	if opts.TalosVersion == "" {
		opts.TalosVersion = "v1.14"
	}
	contract, err := config.ParseContractFromVersion(opts.TalosVersion)
	if err != nil {
		return nil, err
	}
	bundle, err := secrets.NewBundle(secrets.NewFixedClock(time.Now()), contract)
	if err != nil {
		return nil, err
	}
	in, err := generate.NewInput(opts.ClusterName, opts.Endpoint, opts.KubernetesVersion,
		generate.WithVersionContract(contract),
		generate.WithSecretsBundle(bundle),
		generate.WithInstallDisk("/dev/sda"), // metal validation requires an install disk
	)
	if err != nil {
		return nil, err
	}
	cfg, err := in.Config(machine.TypeControlPlane)
	if err != nil {
		return nil, err
	}
	if len(patches) > 0 {
		var loaded []configpatcher.Patch
		for i, p := range patches {
			patch, err := configpatcher.LoadPatch(p)
			if err != nil {
				return nil, fmt.Errorf("patch %d: %w", i+1, err)
			}
			loaded = append(loaded, patch)
		}
		out, err := configpatcher.Apply(configpatcher.WithConfig(cfg), loaded)
		if err != nil {
			return nil, err
		}
		if cfg, err = out.Config(); err != nil {
			return nil, err
		}
	}
	if _, err := cfg.Validate(metalMode{}, validation.WithLocal()); err != nil {
		return nil, fmt.Errorf("machine config validation: %w", err)
	}
	return cfg, nil
}

// MachineConfigFromFiles is MachineConfig with patches read from files.
func MachineConfigFromFiles(opts ConfigOptions, patchFiles ...string) (config.Provider, error) {
	var patches [][]byte
	for _, f := range patchFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		patches = append(patches, data)
	}
	return MachineConfig(opts, patches...)
}

// metalMode is the validation RuntimeMode of a Talos node installed on
// metal; machinery ships no implementation of the interface.
type metalMode struct{}

func (metalMode) String() string        { return "metal" }
func (metalMode) RequiresInstall() bool { return true }
func (metalMode) InContainer() bool     { return false }

// Manifest is one inline manifest as Talos' manifest controller sees it.
type Manifest struct {
	ID       string // "99-<name>", the sort key Talos uses for inline manifests
	Name     string
	Contents string
}

// InlineManifests returns the inline manifests of a machine config, from
// both contracts, sorted by ID.
func InlineManifests(cfg config.Config) []Manifest {
	var out []Manifest
	for _, m := range cfg.K8sInlineManifestConfigs() {
		out = append(out, Manifest{ID: "99-" + m.Name(), Name: m.Name(), Contents: m.Contents()})
	}
	return sortManifests(out)
}

func sortManifests(ms []Manifest) []Manifest {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	return ms
}
