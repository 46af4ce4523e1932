package talos

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"go.yaml.in/yaml/v4"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// contracts are the two config contracts: v1alpha1-only Kubernetes config, and multi-doc.
var contracts = []string{"v1.13.9", "v1.14.1"}

const crds = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`

const apps = `apiVersion: v1
kind: Namespace
metadata:
  name: bootcore-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: bootcore-system
data:
  motd: |
    hello
    world
`

func options(talosVersion string) Options {
	return Options{
		ClusterName:       "infra",
		Endpoint:          "https://10.0.0.1:6443",
		TalosVersion:      talosVersion,
		KubernetesVersion: "v1.35.4",
		Manifests: []Manifest{
			{Name: "bootcore-crds", Contents: []byte(crds)},
			{Name: "bootcore-cni", Contents: []byte(apps)},
		},
		DisableKubeProxy: true,
	}
}

func multidoc(talosVersion string) bool { return !strings.HasPrefix(talosVersion, "v1.13.") }

// userPatch adds the user's own inline manifest in the form the contract uses.
func userPatch(talosVersion string) StaticPatch {
	if multidoc(talosVersion) {
		return StaticPatch{Name: "user.yaml", Data: []byte(`apiVersion: v1alpha1
kind: KubeInlineManifestConfig
name: user-extra
manifest: |
  apiVersion: v1
  kind: Namespace
  metadata:
    name: user
`)}
	}

	return StaticPatch{Name: "user.yaml", Data: []byte(`cluster:
  inlineManifests:
    - name: user-extra
      contents: |
        apiVersion: v1
        kind: Namespace
        metadata:
          name: user
`)}
}

func mustGenerate(t *testing.T, o Options) *Patches {
	t.Helper()

	p, err := Generate(o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}

	return p
}

func machineConfig(t *testing.T, o Options, role string, patches ...[]byte) config.Provider {
	t.Helper()

	cfg, err := MachineConfig(o, role, patches...)
	if err != nil {
		t.Fatalf("MachineConfig(%s): %v", role, err)
	}

	return cfg
}

func names(manifests []Manifest) []string {
	result := make([]string, len(manifests))
	for i, m := range manifests {
		result[i] = m.Name
	}

	return result
}

func forEachContract(t *testing.T, test func(t *testing.T, v string)) {
	for _, v := range contracts {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			test(t, v)
		})
	}
}

func TestValidate(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)

		report, err := Validate(o, mustGenerate(t, o))
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}

		if report.ControlPlaneBytes == 0 || report.WorkerBytes == 0 || report.PostHandoverBytes == 0 {
			t.Errorf("missing sizes: %+v", report)
		}

		if report.PostHandoverBytes >= report.ControlPlaneBytes {
			t.Errorf("post-handover config (%d bytes) is not smaller than the control-plane config (%d bytes)", report.PostHandoverBytes, report.ControlPlaneBytes)
		}

		want := map[string]int{"bootcore-crds": len(crds), "bootcore-cni": len(apps)}
		if len(report.ManifestBytes) != len(want) || report.ManifestBytes["bootcore-crds"] != want["bootcore-crds"] || report.ManifestBytes["bootcore-cni"] != want["bootcore-cni"] {
			t.Errorf("ManifestBytes = %v, want %v", report.ManifestBytes, want)
		}
	})
}

func TestControlPlaneConfig(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		p := mustGenerate(t, o)

		// The unpatched config deploys Flannel and kube-proxy, so the checks below mean something.
		base := machineConfig(t, o, RoleControlPlane)
		if base.K8sFlannelCNIConfig() == nil || !base.K8sProxyConfig().Enabled() {
			t.Fatal("generated config has no Flannel or no kube-proxy to begin with")
		}

		cfg := machineConfig(t, o, RoleControlPlane, p.ControlPlane)

		if got := InlineManifests(cfg); !slices.EqualFunc(got, o.Manifests, equalManifest) {
			t.Errorf("InlineManifests = %q, want the inputs %q", names(got), names(o.Manifests))
		}

		// machined deploys Flannel only when K8sFlannelCNIConfig() is non-nil, for both contracts.
		if cfg.K8sFlannelCNIConfig() != nil {
			t.Error("Flannel is still on")
		}

		if cfg.K8sProxyConfig().Enabled() {
			t.Error("kube-proxy is still on")
		}

		raw := cfg.RawV1Alpha1().ClusterConfig
		if multidoc(v) {
			if cfg.Has("KubeFlannelCNIConfig") || !cfg.Has("KubeProxyConfig") {
				t.Error("want KubeFlannelCNIConfig deleted and KubeProxyConfig kept (disabled)")
			}

			if raw.ClusterNetwork != nil || raw.ProxyConfig != nil || len(raw.ClusterInlineManifests) != 0 { //nolint:staticcheck // checking the legacy fields stay unset
				t.Error("the 1.14 patch touched v1alpha1 cluster.network, cluster.proxy or cluster.inlineManifests")
			}
		} else if raw.CNI().Name() != "none" {
			t.Errorf("cluster.network.cni.name = %q, want none", raw.CNI().Name())
		}
	})
}

func TestKubeProxyKept(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		o.DisableKubeProxy = false
		p := mustGenerate(t, o)

		if bytes.Contains(p.ControlPlane, []byte("proxy")) || bytes.Contains(p.ControlPlane, []byte("KubeProxyConfig")) {
			t.Errorf("patch touches kube-proxy:\n%s", p.ControlPlane)
		}

		if _, err := Validate(o, p); err != nil {
			t.Fatal(err)
		}

		if !machineConfig(t, o, RoleControlPlane, p.ControlPlane).K8sProxyConfig().Enabled() {
			t.Error("kube-proxy disabled")
		}
	})
}

func TestWorkerConfig(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		cfg := machineConfig(t, o, RoleWorker, mustGenerate(t, o).Worker)

		if got := InlineManifests(cfg); len(got) != 0 {
			t.Errorf("worker has inline manifests %q", names(got))
		}

		if cfg.K8sFlannelCNIConfig() != nil {
			t.Error("worker deploys Flannel")
		}

		if !multidoc(v) {
			raw := cfg.RawV1Alpha1().ClusterConfig
			if raw.CNI().Name() != "none" || raw.Proxy().Enabled() {
				t.Errorf("worker cni %q, proxy enabled %v; want none, false", raw.CNI().Name(), raw.Proxy().Enabled())
			}
		}
	})
}

func TestPostHandoverKeepsUserManifest(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		o.StaticPatches = []StaticPatch{userPatch(v)}
		p := mustGenerate(t, o)

		if _, err := Validate(o, p); err != nil {
			t.Fatalf("Validate: %v", err)
		}

		if got := names(InlineManifests(machineConfig(t, o, RoleControlPlane, p.ControlPlane))); len(got) != 3 {
			t.Errorf("control plane has %q, want the user's and bootcore's", got)
		}

		post := machineConfig(t, o, RoleControlPlane, p.ControlPlane, p.PostHandover)
		if got := names(InlineManifests(post)); !slices.Equal(got, []string{"user-extra"}) {
			t.Errorf("after handover: %q, want [user-extra]", got)
		}

		if post.K8sFlannelCNIConfig() != nil || post.K8sProxyConfig().Enabled() {
			t.Error("handover turned Flannel or kube-proxy back on")
		}
	})
}

// A repeated post-handover patch fails on the v1alpha1 contract (a list-item delete that finds
// nothing is "lookup failed") and is a no-op on the multi-doc one (a missing document is skipped).
func TestPostHandoverTwice(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		p := mustGenerate(t, o)

		_, err := MachineConfig(o, RoleControlPlane, p.ControlPlane, p.PostHandover, p.PostHandover)
		if multidoc(v) && err != nil {
			t.Errorf("want a no-op, got %v", err)
		}

		if !multidoc(v) && (err == nil || !strings.Contains(err.Error(), "lookup failed")) {
			t.Errorf("want lookup failed, got %v", err)
		}
	})
}

func TestStaticManifestNamedLikeBootcore(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		sp := userPatch(v)
		sp.Data = bytes.ReplaceAll(sp.Data, []byte("user-extra"), []byte("bootcore-cni"))
		o.StaticPatches = []StaticPatch{sp}

		_, err := Validate(o, mustGenerate(t, o))
		if err == nil || !strings.Contains(err.Error(), `"bootcore-cni"`) {
			t.Errorf("want an error naming bootcore-cni, got %v", err)
		}
	})
}

func TestLoadPatch(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		p := mustGenerate(t, options(v))

		for name, data := range map[string][]byte{"controlplane": p.ControlPlane, "worker": p.Worker, "post-handover": p.PostHandover} {
			if !bytes.HasPrefix(data, []byte(Header)) {
				t.Errorf("%s: first line is not %q", name, Header)
			}

			patch, err := configpatcher.LoadPatch(data)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}

			if _, ok := patch.(configpatcher.StrategicMergePatch); !ok {
				t.Errorf("%s: loaded as %T, want a strategic merge patch", name, patch)
			}

			// as talosctl reads --config-patch @file
			file := filepath.Join(t.TempDir(), name+".yaml")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}

			if _, err := configpatcher.LoadPatches([]string{"@" + file}); err != nil {
				t.Errorf("%s: LoadPatches: %v", name, err)
			}
		}
	})
}

func TestDeterministic(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		a, b := mustGenerate(t, options(v)), mustGenerate(t, options(v))

		if !bytes.Equal(a.ControlPlane, b.ControlPlane) || !bytes.Equal(a.Worker, b.Worker) || !bytes.Equal(a.PostHandover, b.PostHandover) {
			t.Error("two Generate calls differ")
		}
	})
}

// Generate reads only the contract, the manifests and DisableKubeProxy: gen shares its patches
// between clusters keyed on those alone (internal/gen, generate), so a field it starts to read
// must join that key.
func TestGenerateDependsOnlyOn(t *testing.T) {
	equal := func(a, b *Patches) bool {
		return bytes.Equal(a.ControlPlane, b.ControlPlane) && bytes.Equal(a.Worker, b.Worker) && bytes.Equal(a.PostHandover, b.PostHandover)
	}
	forEachContract(t, func(t *testing.T, v string) {
		base := mustGenerate(t, options(v))
		for name, change := range map[string]func(*Options){
			"ClusterName":       func(o *Options) { o.ClusterName = "other" },
			"Endpoint":          func(o *Options) { o.Endpoint = "https://10.9.9.9:6443" },
			"KubernetesVersion": func(o *Options) { o.KubernetesVersion = "1.34.3" },
			"BootDNS":           func(o *Options) { o.BootDNS = !o.BootDNS },
			"StaticPatches": func(o *Options) {
				o.StaticPatches = []StaticPatch{{Name: "p.yaml", Data: []byte("machine:\n  sysctls:\n    a.b: \"1\"\n")}}
			},
		} {
			o := options(v)
			change(&o)
			if !equal(mustGenerate(t, o), base) {
				t.Errorf("%s changes the patches", name)
			}
		}
		for name, change := range map[string]func(*Options){
			"TalosVersion":     func(o *Options) { o.TalosVersion = map[bool]string{true: "v1.13.9", false: "v1.14.1"}[multidoc(v)] },
			"DisableKubeProxy": func(o *Options) { o.DisableKubeProxy = !o.DisableKubeProxy },
			"Manifests":        func(o *Options) { o.Manifests[1].Contents = []byte(apps + "---\n" + crds) },
			"manifest name":    func(o *Options) { o.Manifests[1].Name = "bootcore-net" },
		} {
			o := options(v)
			change(&o)
			if equal(mustGenerate(t, o), base) {
				t.Errorf("%s does not change the patches", name)
			}
		}
	})
}

func TestGolden(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		p := mustGenerate(t, options(v))
		dir := filepath.Join("testdata", v[:strings.LastIndex(v, ".")])

		for name, got := range map[string][]byte{"controlplane": p.ControlPlane, "worker": p.Worker, "post-handover": p.PostHandover} {
			file := filepath.Join(dir, name+".yaml")

			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}

				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}

				continue
			}

			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./talos/ -run TestGolden -update)", err)
			}

			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file:\n%s", file, got)
			}
		}
	})
}

func TestInvalidStaticPatch(t *testing.T) {
	invalid := map[string]string{
		// both are install settings Talos refuses; 1.14 moved the install disk to UnattendedInstallConfig
		"v1.13.9": "machine:\n  install:\n    extraKernelArgs: [console=ttyS0]\n    grubUseUKICmdline: true\n",
		"v1.14.1": "apiVersion: v1alpha1\nkind: UnattendedInstallConfig\nprovisioning:\n  diskSelector:\n    match: 'disk.dev_path =='\n",
	}

	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		o.StaticPatches = []StaticPatch{{Name: "user.yaml", Data: []byte(invalid[v])}}

		_, err := Validate(o, mustGenerate(t, o))
		if err == nil {
			t.Fatal("no error")
		}

		for _, want := range []string{"controlplane config", `"infra"`, v, `static patch "user.yaml"`, "controlplane patch"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %s: %v", want, err)
			}
		}

		// 1.14 refuses the legacy fields the 1.13 patch sets.
		if multidoc(v) {
			o.StaticPatches = []StaticPatch{{Name: "legacy.yaml", Data: []byte("cluster:\n  network:\n    cni:\n      name: none\n")}}
			if _, err := Validate(o, mustGenerate(t, o)); err == nil || !strings.Contains(err.Error(), "KubeNetworkConfig") {
				t.Errorf("want the v1alpha1 network conflict, got %v", err)
			}
		}
	})
}

func TestBadEndpoint(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		p := mustGenerate(t, o)
		o.Endpoint = "https://bad host:6443"

		_, err := Validate(o, p)
		if err == nil || !strings.Contains(err.Error(), "controlplane config") {
			t.Errorf("want an error naming the role, got %v", err)
		}
	})
}

func TestManifestNames(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		for _, name := range []string{"Bootcore-CRDs", "bootcore_crds", "", "-crds", "crds.", strings.Repeat("a", 254)} {
			o := options(v)
			o.Manifests[0].Name = name

			_, err := Generate(o)
			if err == nil || !strings.Contains(err.Error(), "DNS-1123") || !strings.Contains(err.Error(), name) {
				t.Errorf("name %q: want a DNS-1123 error naming it, got %v", name, err)
			}
		}

		o := options(v)
		o.Manifests[1].Name = o.Manifests[0].Name

		if _, err := Generate(o); err == nil || !strings.Contains(err.Error(), `"bootcore-crds"`) || !strings.Contains(err.Error(), "duplicate") {
			t.Errorf("duplicate name: got %v", err)
		}
	})
}

func TestManifestContents(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		for name, contents := range map[string]string{"empty": " \n", "invalid": "a: [b\n"} {
			o := options(v)
			o.Manifests[1].Contents = []byte(contents)

			if _, err := Generate(o); err == nil || !strings.Contains(err.Error(), `"bootcore-cni"`) {
				t.Errorf("%s contents: want an error naming the manifest, got %v", name, err)
			}
		}

		// Contents a literal block cannot hold (trailing spaces) are quoted and survive;
		// leading blank lines are dropped for both contracts, as the v1alpha1 loader drops them.
		o := options(v)
		o.Manifests[1].Contents = []byte("\n\napiVersion: v1   \nkind: Namespace\nmetadata:\n  name: x\n")
		p := mustGenerate(t, o)

		if _, err := Validate(o, p); err != nil {
			t.Fatal(err)
		}

		got := InlineManifests(machineConfig(t, o, RoleControlPlane, p.ControlPlane))
		if want := "apiVersion: v1   \nkind: Namespace\nmetadata:\n  name: x\n"; len(got) != 2 || string(got[1].Contents) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func TestContractSelection(t *testing.T) {
	for version, multi := range map[string]bool{"v1.12.0": false, "1.13.9": false, "v1.14.0": true, "v1.15.2": true, "v2.0.0": true} {
		o := options(version)
		p := mustGenerate(t, o)

		if got := bytes.Contains(p.ControlPlane, []byte("kind: KubeInlineManifestConfig")); got != multi {
			t.Errorf("%s: multi-doc patch = %v, want %v", version, got, multi)
		}
	}
}

// Bad input returns errors; nothing panics.
func TestBadInput(t *testing.T) {
	good := options("v1.14.1")
	p := mustGenerate(t, good)

	garbage := [][]byte{
		nil, []byte("[{"), []byte("---\n- a\n"), []byte("\x00\xff"), []byte("$patch: delete\n"),
		[]byte("cluster:\n  inlineManifests:\n    - $patch: delete\n"), []byte("apiVersion: v1alpha1\n$patch: delete\n"),
		[]byte("kind: Nope\napiVersion: v9\n"), []byte("machine: 5\n"),
	}

	for _, g := range garbage {
		o := good
		o.StaticPatches = []StaticPatch{{Name: "garbage.yaml", Data: g}}

		if _, err := Validate(o, p); err == nil {
			t.Errorf("static patch %q: no error", g)
		}

		if _, err := Validate(good, &Patches{ControlPlane: g, Worker: g, PostHandover: g}); err == nil {
			t.Errorf("patches %q: no error", g)
		}
	}

	for name, o := range map[string]Options{
		"no version":     func() Options { o := good; o.TalosVersion = ""; return o }(),
		"bad version":    func() Options { o := good; o.TalosVersion = "banana"; return o }(),
		"no manifests":   func() Options { o := good; o.Manifests = nil; return o }(),
		"no cluster":     func() Options { o := good; o.ClusterName = ""; return o }(),
		"no endpoint":    func() Options { o := good; o.Endpoint = ""; return o }(),
		"no k8s version": func() Options { o := good; o.KubernetesVersion = ""; return o }(),
	} {
		if _, err := Validate(o, p); err == nil {
			t.Errorf("%s: Validate: no error", name)
		}
	}

	if _, err := Validate(good, nil); err == nil {
		t.Error("nil patches: no error")
	}

	if _, err := MachineConfig(good, "master"); err == nil {
		t.Error("role master: no error")
	}

	// the control-plane patch carries a control-plane-only document
	if _, err := MachineConfig(good, RoleWorker, p.ControlPlane); err == nil || !strings.Contains(err.Error(), "worker config") {
		t.Errorf("control-plane patch on a worker: got %v", err)
	}

	var compacted compact
	if _, err := MachineConfig(good, RoleWorker, p.ControlPlane); !errors.As(err, &compacted) {
		t.Errorf("validation error is not unwrappable: %v", err)
	}
}

func equalManifest(a, b Manifest) bool {
	return a.Name == b.Name && bytes.Equal(a.Contents, b.Contents)
}

// coreDNSOff is the static patch a user writes to turn Talos's CoreDNS off, per contract (the
// v1alpha1 field is refused next to a KubeCoreDNSConfig document from v1.14).
func coreDNSOff(talosVersion string) StaticPatch {
	if multidoc(talosVersion) {
		return StaticPatch{Name: "no-coredns.yaml", Role: RoleControlPlane, Data: []byte("apiVersion: v1alpha1\nkind: KubeCoreDNSConfig\nenabled: false\n")}
	}

	return StaticPatch{Name: "no-coredns.yaml", Role: RoleControlPlane, Data: []byte("cluster:\n  coreDNS:\n    disabled: true\n")}
}

// Exactly one cluster DNS boots: Talos's own CoreDNS, or the boot manifests' (BootDNS) with
// Talos's off. Off with nothing in its place would hang the hand-over (Flux's pods resolve
// their sources through cluster DNS); both on would fight over Service kube-system/kube-dns.
func TestClusterDNSExactlyOnce(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		for _, c := range []struct {
			name      string
			bootDNS   bool
			talosOff  bool
			wantError string
		}{
			{"Talos's CoreDNS only", false, false, ""},
			{"boot DNS with Talos's off", true, true, ""},
			{"neither", false, true, "no boot release provides cluster DNS"},
			{"both", true, false, "Talos's own CoreDNS is still on"},
		} {
			o := options(v)
			o.BootDNS = c.bootDNS
			if c.talosOff {
				o.StaticPatches = []StaticPatch{coreDNSOff(v)}
			}
			_, err := Validate(o, mustGenerate(t, o))
			switch {
			case c.wantError == "" && err != nil:
				t.Errorf("%s: %v", c.name, err)
			case c.wantError != "" && (err == nil || !strings.Contains(err.Error(), c.wantError)):
				t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.wantError)
			case c.name == "neither" && !strings.Contains(err.Error(), "dns.helmRelease"):
				t.Errorf("%s: %v does not name the spec field to set", c.name, err)
			}
		}
	})
}

// The sizes gen holds against the budget are those of the configs a user generates (with the
// contract's RSA service-account key), although validation runs on an ECDSA bundle.
func TestValidationBundleSizes(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		o := options(v)
		p := mustGenerate(t, o)

		report, err := Validate(o, p)
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}

		contract, err := config.ParseContractFromVersion(v)
		if err != nil {
			t.Fatal(err)
		}

		if !contract.UseRSAServiceAccountKey() {
			t.Fatalf("contract %s: expected the RSA service-account key (the test compares against it)", v)
		}

		rsaBundle, err := secrets.NewBundle(secrets.NewFixedClock(bundleTime), contract)
		if err != nil {
			t.Fatal(err)
		}

		rsaKey := rsaBundle.Certs.K8sServiceAccount.Key
		// A PKCS#1 key's integers vary by a leading byte or so: its PEM by a few bytes.
		if d := len(rsaKey) - rsaServiceAccountKeyPEMBytes; d < -8 || d > 8 || bytes.Count(rsaKey, []byte("\n")) != rsaServiceAccountKeyPEMLines {
			t.Fatalf("the RSA service-account key is %d bytes in %d lines, the constants say %d in %d",
				len(rsaKey), bytes.Count(rsaKey, []byte("\n")), rsaServiceAccountKeyPEMBytes, rsaServiceAccountKeyPEMLines)
		}

		userSize := func(role string, patches ...[]byte) int {
			typ := machine.TypeControlPlane
			if role == RoleWorker {
				typ = machine.TypeWorker
			}

			in, err := generate.NewInput(o.ClusterName, o.Endpoint, o.kubernetesVersion(),
				generate.WithVersionContract(contract), generate.WithSecretsBundle(rsaBundle), generate.WithInstallDisk("/dev/sda"))
			if err != nil {
				t.Fatal(err)
			}

			cfg, err := in.Config(typ)
			if err != nil {
				t.Fatal(err)
			}

			var named []namedPatch
			for _, sp := range o.StaticPatches {
				if sp.appliesTo(role) {
					named = append(named, namedPatch{label: sp.Name, data: sp.Data})
				}
			}

			for _, data := range patches {
				named = append(named, namedPatch{label: "patch", data: data})
			}

			if cfg, err = applyPatches(o, role, cfg, named...); err != nil {
				t.Fatal(err)
			}

			encoded, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
			if err != nil {
				t.Fatal(err)
			}

			return len(encoded)
		}

		// ECDSA signatures vary by a byte or two each; the key's difference is thousands of bytes.
		const slack = 16
		for _, c := range []struct {
			name     string
			reported int
			user     int
		}{
			{"controlplane", report.ControlPlaneBytes, userSize(RoleControlPlane, p.ControlPlane)},
			{"post-handover", report.PostHandoverBytes, userSize(RoleControlPlane, p.ControlPlane, p.PostHandover)},
			{"worker", report.WorkerBytes, userSize(RoleWorker, p.Worker)},
		} {
			if d := c.reported - c.user; d < -slack || d > slack {
				t.Errorf("%s config: reported %d bytes, the user's (RSA key) is %d", c.name, c.reported, c.user)
			}
		}
	})
}

// The YAML encoder writes a stream of documents as each one's encoding joined by "---", also for
// contents the literal style has to mark (chomping, indentation) or cannot hold.
func TestEncodeDocsIsEncodePatch(t *testing.T) {
	for _, contents := range []string{"a: 1\n", "a: 1", "a: 1\n\n\n", " leading: space\n", "x\n\n", "", "tab\there\n", "trailing \nspace\n", "a: |+\n  x\n\n", "\n\nb: 2\n", "# comment\n---\nc: 3\n"} {
		docs := []*yaml.Node{
			document("KubeFlannelCNIConfig", str("$patch"), str("delete")),
			document("KubeInlineManifestConfig", str("name"), str("m1"), str("manifest"), literal(contents)),
			document("KubeInlineManifestConfig", str("name"), str("m2"), str("manifest"), literal(contents+"d: 4\n")),
		}
		want, err := encodePatch(docs)
		if err != nil {
			t.Fatal(err)
		}
		c := &Cache{}
		for range 2 { // encoded, then from the cache
			got, err := c.encodeDocs(docs, []string{"", "m1 " + contents, ""})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("contents %q:\nencodeDocs:\n%s\nencodePatch:\n%s", contents, got, want)
			}
		}
	}
}

// A Cache changes no result: Generate's patches and Validate's sizes are those of calls without
// one, for clusters that share it with other names, endpoints, static patches and manifests.
func TestCacheIsTransparent(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		c := &Cache{}
		variants := []func(*Options){
			func(*Options) {},
			func(o *Options) { o.ClusterName, o.Endpoint = "other-cluster", "https://192.168.100.200:6443" },
			func(o *Options) { o.Manifests[1].Contents = []byte(apps + "---\n" + crds) },
			func(o *Options) { o.DisableKubeProxy = false },
			func(o *Options) { o.StaticPatches = []StaticPatch{userPatch(v)} },
		}
		for i, change := range variants {
			o := options(v)
			change(&o)
			want := mustGenerate(t, o)
			wantSizes, err := Validate(o, want)
			if err != nil {
				t.Fatal(err)
			}
			o.Cache = c
			for range 2 {
				got := mustGenerate(t, o)
				if !bytes.Equal(got.ControlPlane, want.ControlPlane) || !bytes.Equal(got.Worker, want.Worker) || !bytes.Equal(got.PostHandover, want.PostHandover) {
					t.Fatalf("variant %d: patches differ with a Cache", i)
				}
				sizes, err := Validate(o, got)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(sizes, wantSizes) {
					t.Fatalf("variant %d: sizes %+v with a Cache, %+v without", i, sizes, wantSizes)
				}
			}
		}
	})
}

// On the v1alpha1 contract a Cache measures a config as the config with its inline manifests'
// contents replaced by a placeholder plus each contents' own size (v1alpha1Size): the lab's real
// configs (its v1.13 and v1.14 clusters' committed patches, with and without the post-handover
// patch and a user's own inline manifest) and contents the literal style has to mark or cannot
// hold measure what machinery's EncodeBytes of the whole config measures.
func TestV1alpha1SizeIsWholeSize(t *testing.T) {
	lab := filepath.Join("..", "integration", "testdata", "lab")
	read := func(path ...string) []byte {
		data, err := os.ReadFile(filepath.Join(append([]string{lab}, path...)...))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	check := func(t *testing.T, o Options, c *Cache, label string, patches ...[]byte) {
		t.Helper()
		static, err := staticConfig(o, RoleControlPlane)
		if err != nil {
			t.Fatal(err)
		}
		var named []namedPatch
		for _, p := range patches {
			named = append(named, namedPatch{label: label, data: p})
		}
		cfg, err := applyPatches(o, RoleControlPlane, static, named...)
		if err != nil {
			t.Fatal(err)
		}
		want, err := wholeSize(o, cfg)
		if err != nil {
			t.Fatal(err)
		}
		before, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // measured, then from the cache
			got, err := c.encodedSize(o, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: %d bytes with a Cache, EncodeBytes gives %d", label, got, want)
			}
		}
		after, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("%s: measuring changed the config", label)
		}
	}
	for _, cl := range []struct{ name, talos, static string }{
		{"infra", "v1.13.9", "controlplane-common.yaml"},
		{"apps", "v1.14.1", "controlplane-common-v1.14.yaml"},
	} {
		t.Run(cl.name, func(t *testing.T) {
			o := Options{ClusterName: cl.name, Endpoint: "https://127.0.0.1:6443", TalosVersion: cl.talos, KubernetesVersion: "1.35.4",
				StaticPatches: []StaticPatch{{Name: cl.static, Data: read("patches", cl.static), Role: RoleControlPlane}}}
			cp, post := read("generated", cl.name, "controlplane.yaml"), read("generated", cl.name, "post-handover.yaml")
			c := &Cache{}
			check(t, o, c, "controlplane", cp)
			check(t, o, c, "post-handover", cp, post)
			o.StaticPatches = append(o.StaticPatches, userPatch(cl.talos))
			check(t, o, c, "controlplane with a user manifest", cp)
			check(t, o, c, "post-handover with a user manifest", cp, post)
		})
	}
	o := options("v1.13.9")
	c := &Cache{}
	for _, contents := range []string{"a: 1\n", "a: 1", "a: 1\n\n\n", " leading: space\n", "x\n\n", "tab\there\n", "trailing \nspace\n", "a: |+\n  x\n\n", "\n\nb: 2\n", "# comment\n---\nc: 3\n", "placeholder\n", strings.Repeat("long line ", 40) + "\n", "\"quoted\": 'x'\n"} {
		var items []*yaml.Node
		for i, m := range []string{contents, contents + "d: 4\n", crds} {
			items = append(items, mapping(str("name"), str(fmt.Sprintf("m%d", i)), str("contents"), literal(m)))
		}
		patch, err := encodePatch([]*yaml.Node{mapping(str("cluster"), mapping(str("inlineManifests"), sequence(items...)))})
		if err != nil {
			t.Fatal(err)
		}
		check(t, o, c, fmt.Sprintf("contents %q", contents), patch)
	}
}

// Validate loads byte-identical patches once per Cache (Cache.loadPatch) and shares them between
// clusters: their reports are those of calls without a Cache, for clusters that differ in name,
// endpoint and static patches, and the shared patches still encode as freshly loaded ones after
// every cluster has applied them, the post-handover patch's deletes included (were the
// control-plane patch's manifests deleted from the shared patch, the next cluster's control-plane
// config would lack them).
func TestSharedPatchesAreTransparent(t *testing.T) {
	forEachContract(t, func(t *testing.T, v string) {
		p := mustGenerate(t, options(v))
		c := &Cache{}
		variants := []func(*Options){
			func(*Options) {},
			func(o *Options) { o.ClusterName, o.Endpoint = "other-cluster", "https://192.168.100.200:6443" },
			func(o *Options) { o.StaticPatches = []StaticPatch{userPatch(v)} },
			func(o *Options) { o.ClusterName = "third" },
		}
		for i, change := range variants {
			o := options(v)
			change(&o)
			want, err := Validate(o, p)
			if err != nil {
				t.Fatal(err)
			}
			o.Cache = c
			for range 2 {
				got, err := Validate(o, p)
				if err != nil {
					t.Fatalf("variant %d with a shared Cache: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("variant %d: report %+v with a shared Cache, %+v without", i, got, want)
				}
			}
		}
		// Every patch and document the Cache loaded is what a Cache that only loads the same
		// patches holds.
		fresh := &Cache{}
		for _, data := range [][]byte{p.ControlPlane, p.Worker, p.PostHandover} {
			if _, err := fresh.loadDocs(data); err != nil {
				t.Fatal(err)
			}
		}
		if len(c.patches) != len(fresh.patches) || len(c.patches) < 3 {
			t.Fatalf("the Cache holds %d patches, a fresh one %d", len(c.patches), len(fresh.patches))
		}
		for key, shared := range c.patches {
			want, ok := fresh.patches[key]
			if !ok {
				t.Fatalf("the Cache holds a patch a fresh one does not")
			}
			got := shared.(configpatcher.StrategicMergePatch).Documents()
			if !reflect.DeepEqual(got, want.(configpatcher.StrategicMergePatch).Documents()) {
				t.Errorf("a shared patch changed while the clusters applied it:\n%#v", got)
			}
		}
		// The control-plane patch's manifests were loaded on their own, for patches that differ
		// elsewhere to share.
		if len(c.patches) < 5 {
			t.Fatalf("the Cache holds %d patches: the control-plane patch was not loaded in pieces", len(c.patches))
		}
	})
}

// On the v1alpha1 contract a Cache encodes the control-plane patch as its head and its inline
// manifests' list items, each encoded once (encodeV1alpha1): the result is encodePatch's, also for
// contents the literal style has to mark or cannot hold, and with or without kube-proxy.
func TestEncodeV1alpha1IsEncodePatch(t *testing.T) {
	c := &Cache{}
	for _, contents := range []string{"a: 1\n", "a: 1", "a: 1\n\n\n", " leading: space\n", "x\n\n", "", "tab\there\n", "trailing \nspace\n", "a: |+\n  x\n\n", "\n\nb: 2\n", "# comment\n---\nc: 3\n", "placeholder\n", strings.Repeat("long line ", 40) + "\n", "\"quoted\": 'x'\n", crds} {
		for _, proxy := range []bool{false, true} {
			o := options("v1.13.9")
			o.DisableKubeProxy = proxy
			manifests := []Manifest{{Name: "m1", Contents: []byte(contents)}, {Name: "m2", Contents: []byte(contents + "d: 4\n")}, {Name: "bootcore-crds", Contents: []byte(crds)}}
			cp, _, _ := v1alpha1Patches(o, manifests)
			want, err := encodePatch(cp)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // encoded, then from the cache
				got, err := c.encodeV1alpha1(cp[0], manifests)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("contents %q:\nencodeV1alpha1:\n%s\nencodePatch:\n%s", contents, got, want)
				}
			}
		}
	}
	if len(c.docs) == 0 {
		t.Fatal("nothing was encoded through the Cache")
	}
	for key, data := range c.docs {
		if len(data) == 0 {
			t.Errorf("%s: not spliced, encoded whole", key)
		}
	}
}

// loadDocs loads a patch document by document and gives what LoadPatch gives for the whole: the
// lab's v1.14 patches, streams with markers it leaves to the loader, selectors after the first
// document, and patches that do not load.
func TestLoadDocsIsLoadPatch(t *testing.T) {
	lab := filepath.Join("..", "integration", "testdata", "lab", "generated")
	var inputs [][]byte
	for _, cluster := range []string{"apps", "infra"} {
		for _, name := range []string{"controlplane.yaml", "post-handover.yaml", "worker.yaml"} {
			data, err := os.ReadFile(filepath.Join(lab, cluster, name))
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, data)
		}
	}
	// v1alpha1 control-plane patches (loadV1alpha1): contents the literal style has to mark or
	// cannot hold, and shapes it leaves to the loader.
	for _, contents := range []string{"a: 1\n", "a: 1", "a: 1\n\n\n", " leading: space\n", "x\n\n", "tab\there\n", "trailing \nspace\n", "a: |+\n  x\n\n", "\n\nb: 2\n", "# comment\n---\nc: 3\n", strings.Repeat("long line ", 40) + "\n", "\"quoted\": 'x'\n", crds} {
		for _, proxy := range []bool{false, true} {
			o := options("v1.13.9")
			o.DisableKubeProxy = proxy
			cp, _, _ := v1alpha1Patches(o, []Manifest{{Name: "m1", Contents: []byte(contents)}, {Name: "m2", Contents: []byte(contents + "d: 4\n")}})
			data, err := encodePatch(cp)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, data)
		}
	}
	item := "    - name: m\n      contents: |\n        a: 1\n"
	for _, s := range []string{
		"cluster:\n  inlineManifests:\n" + item,
		"cluster:\n  inlineManifests:\n" + item + item,
		"cluster:\n  inlineManifests:\n" + item + "    - name: n\n      $patch: delete\n",
		"cluster:\n  inlineManifests:\n" + item + "machine:\n  sysctls:\n    a: \"1\"\n",
		"machine:\n  sysctls:\n    a: \"1\"\ncluster:\n  inlineManifests:\n" + item,
		"cluster:\n  proxy:\n    disabled: true\n  inlineManifests:\n" + item + "    - name: n\n      contents: |\n        b: 2\n",
		"cluster:\n  inlineManifests:\n" + item + "    - name: n\n      unknown: 1\n",
		"cluster:\n  inlineManifests:\n" + item + "    - name: n\n      contents: |\n        b: 2",
		"cluster:\n  inlineManifests:\n    - name: m\n      contents: |-\n        a: 1\n\n        b: 2\n" + item,
		"cluster:\n  inlineManifests: []\n",
		"cluster:\n  inlineManifests:\n",
	} {
		inputs = append(inputs, []byte(s))
	}
	manifest := "apiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: m\nmanifest: |\n  a: 1\n  ---\n  b: 2\n"
	for _, s := range []string{
		"# head\n---\n" + manifest,
		manifest + "---\n" + strings.Replace(manifest, "name: m", "name: n", 1),
		manifest + "---\napiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: m\n$patch: delete\n",
		manifest + "--- \n" + manifest,
		manifest + "...\n---\n" + manifest,
		manifest + "---\n",
		manifest + "---\n---\n" + manifest,
		manifest + "---\nnot: a config\n",
		manifest + "---\n- op: add\n",
		manifest + "---\nmachine:\n  sysctls:\n    a: \"1\"\n",
		"machine:\n  sysctls:\n    a: \"1\"\n---\n" + manifest,
		manifest + "---\n" + manifest,
	} {
		inputs = append(inputs, []byte(s))
	}
	c := &Cache{}
	for _, data := range inputs {
		want, wantErr := configpatcher.LoadPatch(data)
		for range 2 { // loaded, then from the cache
			got, err := c.loadDocs(data)
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Fatalf("%.200q: error %v, LoadPatch's %v", data, err, wantErr)
			}
			if err != nil {
				continue
			}
			if reflect.TypeOf(got) != reflect.TypeOf(want) && !isStrategic(got, want) {
				t.Fatalf("%.200q: a %T, LoadPatch gives a %T", data, got, want)
			}
			if smp, ok := want.(configpatcher.StrategicMergePatch); ok {
				if !reflect.DeepEqual(got.(configpatcher.StrategicMergePatch).Documents(), smp.Documents()) {
					t.Errorf("%.200q: documents differ from LoadPatch's", data)
				}
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%.200q: differs from LoadPatch's", data)
			}
		}
	}
	if _, ok := c.patches[sha256.Sum256([]byte("---\n"+manifest))]; !ok {
		t.Fatal("no document was loaded on its own")
	}
	if _, ok := c.patches[sha256.Sum256([]byte("cluster:\n  inlineManifests:\n"+item))]; !ok {
		t.Fatal("no v1alpha1 inline manifest was loaded on its own")
	}
}

func isStrategic(patches ...configpatcher.Patch) bool {
	for _, p := range patches {
		if _, ok := p.(configpatcher.StrategicMergePatch); !ok {
			return false
		}
	}
	return true
}
