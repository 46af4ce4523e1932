package talosapi

import (
	"errors"
	"github.com/bootcore-dev/bootcore/talos"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
)

var names = talos.Manifests

const lab = "../../integration/testdata/lab/generated"

// labConfig is a control-plane config of the lab cluster with gen's controlplane.yaml applied,
// plus extra (a user's own patch).
func labConfig(t *testing.T, cluster, version string, extra ...string) config.Provider {
	t.Helper()
	contract, err := config.ParseContractFromVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := secrets.NewBundle(secrets.NewFixedClock(time.Unix(1_700_000_000, 0)), contract)
	if err != nil {
		t.Fatal(err)
	}
	in, err := generate.NewInput(cluster, "https://127.0.0.1:6443", "1.35.4", generate.WithVersionContract(contract),
		generate.WithSecretsBundle(bundle), generate.WithInstallDisk("/dev/sda"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := in.Config(machine.TypeControlPlane)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(filepath.Join(lab, cluster, "controlplane.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range append([]string{string(cp)}, extra...) {
		p, err := configpatcher.LoadPatch([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		out, err := configpatcher.Apply(configpatcher.WithConfig(cfg), []configpatcher.Patch{p})
		if err != nil {
			t.Fatal(err)
		}
		if cfg, err = out.Config(); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func postHandover(t *testing.T, cluster string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(lab, cluster, "post-handover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The post-handover patch removes bootcore's manifests on both contracts and keeps the user's.
func TestPatchConfigKeepsUserManifests(t *testing.T) {
	for _, tc := range []struct{ cluster, version, user string }{
		{"infra", "v1.13.9", "cluster:\n  inlineManifests:\n    - name: mine\n      contents: |\n        apiVersion: v1\n        kind: Namespace\n        metadata:\n          name: mine\n"},
		{"apps", "v1.14.1", "apiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: mine\nmanifest: |\n  apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: mine\n"},
	} {
		t.Run(tc.cluster, func(t *testing.T) {
			cfg := labConfig(t, tc.cluster, tc.version, tc.user)
			if got := Present(cfg, append(names, "mine")); !slices.Equal(got, append(names, "mine")) {
				t.Fatalf("before: %v", got)
			}
			patched, err := PatchConfig(cfg, postHandover(t, tc.cluster), names)
			if err != nil {
				t.Fatal(err)
			}
			if got := Present(patched, append(names, "mine")); !slices.Equal(got, []string{"mine"}) {
				t.Errorf("after: %v, want only the user's manifest", got)
			}
		})
	}
}

// On the v1alpha1 contract a second application of the patch fails in configpatcher, which
// is why Release checks for bootcore's manifests before patching.
func TestPatchConfigTwiceOnV1Alpha1Fails(t *testing.T) {
	cfg := labConfig(t, "infra", "v1.13.9")
	patched, err := PatchConfig(cfg, postHandover(t, "infra"), names)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PatchConfig(patched, postHandover(t, "infra"), names); err == nil || !strings.Contains(err.Error(), "lookup failed") {
		t.Errorf("second application: %v, want configpatcher's lookup failure", err)
	}
}

// A patch that would remove a manifest that is not bootcore's, or leave one of bootcore's,
// is refused before anything is sent.
func TestPatchConfigRefusesWrongPatch(t *testing.T) {
	user := "apiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: mine\nmanifest: |\n  apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: mine\n"
	cfg := labConfig(t, "apps", "v1.14.1", user)
	tooMuch := string(postHandover(t, "apps")) + "\n---\napiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: mine\n$patch: delete\n"
	if _, err := PatchConfig(cfg, []byte(tooMuch), names); err == nil || !strings.Contains(err.Error(), `"mine"`) {
		t.Errorf("removing the user's manifest: %v", err)
	}
	tooLittle := "apiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: bootcore-cni\n$patch: delete\n"
	if _, err := PatchConfig(cfg, []byte(tooLittle), names); err == nil || !strings.Contains(err.Error(), "leaves inline manifest(s) bootcore-crds") {
		t.Errorf("leaving bootcore-crds: %v", err)
	}
	if _, err := PatchConfig(cfg, []byte("{not yaml"), names); err == nil || !strings.Contains(err.Error(), "loading the post-handover patch") {
		t.Errorf("broken patch: %v", err)
	}
}

// A missing talosconfig is an error naming it and is not created (machinery's
// clientconfig.Open would create it); a context that does not exist is named with the others.
func TestNewErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "talosconfig")
	if _, err := New(Options{Talosconfig: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing talosconfig was created: %v", err)
	}
	path := filepath.Join(t.TempDir(), "talosconfig")
	cfg := "context: a\ncontexts:\n  a:\n    endpoints: [127.0.0.1]\n    nodes: [10.0.0.2]\n  b:\n    endpoints: [127.0.0.2]\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Talosconfig: path, Context: "c"}); err == nil || !strings.Contains(err.Error(), `no context "c" (contexts: a, b)`) {
		t.Errorf("unknown context: %v", err)
	}
	c, err := New(Options{Talosconfig: path, Context: "b", Nodes: []string{"10.0.0.9"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !slices.Equal(c.Nodes(), []string{"10.0.0.9"}) || !strings.Contains(c.Describe(), "context b, endpoints 127.0.0.2") {
		t.Errorf("nodes %v, %s", c.Nodes(), c.Describe())
	}
	t.Setenv("TALOSCONFIG", path)
	c, err = New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !slices.Equal(c.Nodes(), []string{"10.0.0.2"}) {
		t.Errorf("$TALOSCONFIG context a: nodes %v", c.Nodes())
	}
}
