package talosapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"

	"github.com/bootcore-dev/bootcore/talos"
)

// Present lists which of names are inline manifests of cfg (both contracts: v1alpha1
// cluster.inlineManifests and KubeInlineManifestConfig documents), in the order of names.
func Present(cfg config.Config, names []string) []string {
	have := map[string]bool{}
	for _, m := range talos.InlineManifests(cfg) {
		have[m.Name] = true
	}
	var out []string
	for _, n := range names {
		if have[n] {
			out = append(out, n)
		}
	}
	return out
}

// PatchConfig applies patch to cfg with configpatcher, as talosctl patch machineconfig does,
// and checks the result before it goes to a node: it validates, none of names is left, and
// every other inline manifest (the user's own) is kept.
func PatchConfig(cfg config.Provider, patch []byte, names []string) (config.Provider, error) {
	p, err := configpatcher.LoadPatch(patch)
	if err != nil {
		return nil, fmt.Errorf("loading the post-handover patch: %w", err)
	}
	out, err := configpatcher.Apply(configpatcher.WithConfig(cfg), []configpatcher.Patch{p})
	if err != nil {
		return nil, fmt.Errorf("applying the post-handover patch to the machine config: %w", err)
	}
	patched, err := out.Config()
	if err != nil {
		return nil, fmt.Errorf("loading the patched machine config: %w", err)
	}
	// The node validates again in its own runtime mode; this catches a broken result before
	// it is sent, with the checks that do not depend on the platform.
	if _, err := patched.ValidateAsClient(anyMode{}, validation.WithLocal()); err != nil {
		return nil, fmt.Errorf("the patched machine config is invalid: %w", err)
	}
	if left := Present(patched, names); len(left) > 0 {
		return nil, fmt.Errorf("the post-handover patch leaves inline manifest(s) %s", strings.Join(left, ", "))
	}
	kept := Present(patched, userManifests(cfg, names))
	for _, m := range userManifests(cfg, names) {
		if !slices.Contains(kept, m) {
			return nil, fmt.Errorf("the post-handover patch removes the inline manifest %q, which is not bootcore's", m)
		}
	}
	return patched, nil
}

// userManifests are the names of cfg's inline manifests that are not among names (bootcore's).
func userManifests(cfg config.Config, names []string) []string {
	var out []string
	for _, m := range talos.InlineManifests(cfg) {
		if !slices.Contains(names, m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// anyMode is a runtime mode without install or container requirements: the client does not
// know the node's platform, so it leaves the platform's checks to the node.
type anyMode struct{}

func (anyMode) String() string        { return "client" }
func (anyMode) RequiresInstall() bool { return false }
func (anyMode) InContainer() bool     { return false }
