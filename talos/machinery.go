package talos

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

// Report gives the sizes of the full configs (encoded without comments) so callers can
// enforce a budget: Talos <= 1.12 accepts 4 MiB over gRPC, later versions about 10 MiB in practice.
type Report struct {
	ControlPlaneBytes int `json:"controlPlaneBytes"`
	WorkerBytes       int `json:"workerBytes"`
	PostHandoverBytes int `json:"postHandoverBytes"`
	// ManifestBytes is the size of each of bootcore's manifests, by name.
	ManifestBytes map[string]int
}

// MachineConfig returns the config machinery generates for o and role ("controlplane" or
// "worker"), with o.StaticPatches and then patches applied, validated for a metal install.
func MachineConfig(o Options, role string, patches ...[]byte) (cfg config.Provider, err error) {
	defer recoverTo(&err, "%s config %s", role, o.context())

	cfg, err = staticConfig(o, role)
	if err != nil {
		return nil, err
	}

	named := make([]namedPatch, len(patches))
	for i, p := range patches {
		named[i] = namedPatch{label: fmt.Sprintf("%s patch #%d", role, i+1), data: p}
	}

	if cfg, err = applyPatches(o, role, cfg, named...); err != nil {
		return nil, err
	}

	if err = validate(o, role, cfg, named...); err != nil {
		return nil, err
	}

	return cfg, nil
}

// Validate applies p to the configs machinery generates for o (after o.StaticPatches),
// validates each role and the post-handover state, and reports the config sizes.
func Validate(o Options, p *Patches) (report *Report, err error) {
	defer recoverTo(&err, "validating patches %s", o.context())

	if p == nil {
		return nil, fmt.Errorf("validating patches %s: no patches", o.context())
	}

	manifests, err := checkManifests(o)
	if err != nil {
		return nil, err
	}

	report = &Report{ManifestBytes: make(map[string]int, len(manifests))}
	for _, m := range manifests {
		report.ManifestBytes[m.Name] = len(m.Contents)
	}

	// Loaded once per Cache for byte-identical patches and documents (Cache.loadDocs): no config of Validate's
	// leaves it.
	cpPatch := namedPatch{label: "controlplane patch", data: p.ControlPlane, shared: true}
	workerPatch := namedPatch{label: "worker patch", data: p.Worker, shared: true}
	postPatch := namedPatch{label: "post-handover patch", data: p.PostHandover, shared: true}

	contract, err := parseContract(o)
	if err != nil {
		return nil, err
	}

	// control plane
	static, err := staticConfig(o, RoleControlPlane)
	if err != nil {
		return nil, err
	}

	userManifests := InlineManifests(static)
	for _, m := range userManifests {
		if _, ok := report.ManifestBytes[m.Name]; ok {
			var names []string
			for _, sp := range o.StaticPatches {
				if sp.appliesTo(RoleControlPlane) {
					names = append(names, fmt.Sprintf("%q", sp.Name))
				}
			}
			return nil, fmt.Errorf("static patches %s %s %s: inline manifest %q is also one of bootcore's; rename it", strings.Join(names, ", "), RoleControlPlane, o.context(), m.Name)
		}
	}

	cp, err := applyPatches(o, RoleControlPlane, static, cpPatch)
	if err != nil {
		return nil, err
	}

	if err = report.add(o, RoleControlPlane, cp, &report.ControlPlaneBytes, cpPatch); err != nil {
		return nil, err
	}

	if err = checkControlPlane(o, contract, cp, manifests, userManifests, cpPatch); err != nil {
		return nil, err
	}

	// post-handover, on top of the control-plane config
	post, err := applyPatches(o, RoleControlPlane, cp, postPatch)
	if err != nil {
		return nil, err
	}

	if err = report.add(o, RoleControlPlane, post, &report.PostHandoverBytes, cpPatch, postPatch); err != nil {
		return nil, err
	}

	if err = checkHandedOver(o, post, manifests, userManifests, postPatch); err != nil {
		return nil, err
	}

	// worker
	if static, err = staticConfig(o, RoleWorker); err != nil {
		return nil, err
	}

	worker, err := applyPatches(o, RoleWorker, static, workerPatch)
	if err != nil {
		return nil, err
	}

	if err = report.add(o, RoleWorker, worker, &report.WorkerBytes, workerPatch); err != nil {
		return nil, err
	}

	if cfg := worker.K8sFlannelCNIConfig(); cfg != nil {
		return nil, fmt.Errorf("worker patch %s: the worker config still deploys Flannel", o.context())
	}

	return report, nil
}

// InlineManifests returns the inline manifests in cfg, from KubeInlineManifestConfig documents
// and from v1alpha1 cluster.inlineManifests, in config order. Only control-plane nodes apply them.
func InlineManifests(cfg config.Config) []Manifest {
	if cfg == nil {
		return nil
	}

	var result []Manifest

	for _, m := range cfg.K8sInlineManifestConfigs() {
		result = append(result, Manifest{Name: m.Name(), Contents: []byte(m.Contents())})
	}

	return result
}

// add validates cfg and records its encoded size.
func (r *Report) add(o Options, role string, cfg config.Provider, size *int, patches ...namedPatch) error {
	if err := validate(o, role, cfg, patches...); err != nil {
		return err
	}

	n, err := o.Cache.encodedSize(o, cfg)
	if err != nil {
		return fmt.Errorf("%s config %s: encoding: %w", role, o.context(), err)
	}

	*size = n

	return nil
}

// The service-account key machinery generates for contracts that use RSA (x509.NewRSAKey: 4096
// bits, PKCS#1 PEM) is 3243 bytes (give or take a few) in 51 lines; a v1alpha1 config holds it in base64 (4324
// bytes), the KubeServiceAccountConfig document (v1.14) as an indented literal block.
// TestValidationBundleSizes checks these against a freshly generated RSA bundle.
const (
	rsaServiceAccountKeyPEMBytes = 3243
	rsaServiceAccountKeyPEMLines = 51
)

// serviceAccountKeyExtra is what the validation bundle's ECDSA service-account key makes an
// encoded config smaller than the same config with the RSA key the user's talosctl generates,
// so that sizes held against the budget are the user's.
func serviceAccountKeyExtra(o Options, encoded []byte) (int, error) {
	contract, err := parseContract(o)
	if err != nil {
		return 0, err
	}

	if !contract.UseRSAServiceAccountKey() {
		return 0, nil
	}

	b, err := secretsBundle(contract)
	if err != nil {
		return 0, err
	}

	pemKey := b.Certs.K8sServiceAccount.Key
	b64 := []byte(base64.StdEncoding.EncodeToString(pemKey))
	rsaB64 := base64.StdEncoding.EncodedLen(rsaServiceAccountKeyPEMBytes)
	extra := bytes.Count(encoded, b64) * (rsaB64 - len(b64))

	// Literal blocks: the key's lines, each indented like the first.
	lines := bytes.SplitAfter(bytes.TrimSuffix(pemKey, []byte("\n")), []byte("\n"))
	for rest := encoded; ; {
		i := bytes.Index(rest, lines[0])
		if i < 0 {
			break
		}

		indent := i - (bytes.LastIndexByte(rest[:i], '\n') + 1)
		block := bytes.Join(lines, bytes.Repeat([]byte(" "), indent))

		if bytes.HasPrefix(rest[i:], block) {
			extra += rsaServiceAccountKeyPEMBytes - len(pemKey) + indent*(rsaServiceAccountKeyPEMLines-len(lines))
		}

		rest = rest[i+len(lines[0]):]
	}

	return extra, nil
}

// ClusterDNSProblem says what is wrong with cluster DNS in a control-plane config, or "":
// exactly one must boot, Talos's own CoreDNS or the boot manifests' (bootDNS). Talos deploys
// its CoreDNS (Deployment coredns, Service kube-dns) unless the config turns it off: v1alpha1
// cluster.coreDNS.disabled, or the KubeCoreDNSConfig document from 1.14 (machinery
// config/container: Container.K8sCoreDNSConfig).
func ClusterDNSProblem(cp config.Provider, bootDNS bool) string {
	talosDNS := cp.K8sCoreDNSConfig() != nil && cp.K8sCoreDNSConfig().Enabled()
	switch {
	case bootDNS && talosDNS:
		return "Talos's own CoreDNS is still on, and the boot manifests carry cluster DNS too: both would own Service kube-system/kube-dns; turn Talos's off in a static patch (cluster.coreDNS.disabled: true up to v1.13, a KubeCoreDNSConfig document with enabled: false from v1.14)"
	case !bootDNS && !talosDNS:
		return "Talos's own CoreDNS is off and no boot release provides cluster DNS: Flux's controllers resolve their Git and chart hosts through it, so the hand-over would hang; set dns.helmRelease in bootstrap/bootcore.yaml (the CoreDNS HelmRelease) or leave Talos's CoreDNS on"
	}
	return ""
}

func checkControlPlane(o Options, contract *config.VersionContract, cp config.Provider, manifests, userManifests []Manifest, patch namedPatch) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s %s: %s", patch.label, o.context(), fmt.Sprintf(format, args...))
	}

	// What Talos reads (machined's bootstrap manifests controller): no Flannel when this is nil.
	if cp.K8sFlannelCNIConfig() != nil {
		return fail("the control-plane config still deploys Flannel")
	}

	if o.DisableKubeProxy && cp.K8sProxyConfig().Enabled() {
		return fail("the control-plane config still deploys kube-proxy")
	}

	if problem := ClusterDNSProblem(cp, o.BootDNS); problem != "" {
		return fail("%s", problem)
	}

	got := InlineManifests(cp)
	if want := len(userManifests) + len(manifests); len(got) != want {
		return fail("the control-plane config has %d inline manifests, want %d", len(got), want)
	}

	byName := make(map[string][]byte, len(got))
	for _, m := range got {
		byName[m.Name] = m.Contents
	}

	for _, m := range manifests {
		contents, ok := byName[m.Name]
		if !ok {
			return fail("inline manifest %q is missing from the control-plane config", m.Name)
		}

		if !bytes.Equal(contents, m.Contents) {
			return fail("inline manifest %q differs after the round trip through the %s config", m.Name, contract)
		}
	}

	return nil
}

func checkHandedOver(o Options, post config.Provider, manifests, userManifests []Manifest, patch namedPatch) error {
	left := make(map[string]bool)
	for _, m := range InlineManifests(post) {
		left[m.Name] = true
	}

	for _, m := range manifests {
		if left[m.Name] {
			return fmt.Errorf("%s %s: inline manifest %q remains", patch.label, o.context(), m.Name)
		}
	}

	for _, m := range userManifests {
		if !left[m.Name] {
			return fmt.Errorf("%s %s: removed the user's inline manifest %q", patch.label, o.context(), m.Name)
		}
	}

	return nil
}

type namedPatch struct {
	label string
	data  []byte
	// shared: loaded through o.Cache (Cache.loadDocs), for configs that stay inside Validate.
	shared bool
}

// staticConfig generates the config for role and applies o.StaticPatches, without validating:
// a user's patch may only be complete together with bootcore's.
func staticConfig(o Options, role string) (config.Provider, error) {
	cfg, err := generated(o, role)
	if err != nil {
		return nil, err
	}

	var static []namedPatch
	for _, sp := range o.StaticPatches {
		if sp.appliesTo(role) {
			static = append(static, namedPatch{label: fmt.Sprintf("static patch %q (%s)", sp.Name, role), data: sp.Data})
		}
	}

	return applyPatches(o, role, cfg, static...)
}

func generated(o Options, role string) (config.Provider, error) {
	var typ machine.Type

	switch role {
	case RoleControlPlane:
		typ = machine.TypeControlPlane
	case RoleWorker:
		typ = machine.TypeWorker
	default:
		return nil, fmt.Errorf("role %q %s: want %q or %q", role, o.context(), RoleControlPlane, RoleWorker)
	}

	fail := func(err error) error {
		return fmt.Errorf("%s config %s: generating: %w", role, o.context(), err)
	}

	switch {
	case o.ClusterName == "":
		return nil, fail(fmt.Errorf("cluster name is required"))
	case o.Endpoint == "":
		return nil, fail(fmt.Errorf("endpoint is required"))
	case o.kubernetesVersion() == "":
		return nil, fail(fmt.Errorf("Kubernetes version is required"))
	}

	contract, err := parseContract(o)
	if err != nil {
		return nil, err
	}

	bundle, err := secretsBundle(contract)
	if err != nil {
		return nil, fail(err)
	}

	in, err := generate.NewInput(o.ClusterName, o.Endpoint, o.kubernetesVersion(),
		generate.WithVersionContract(contract),
		generate.WithSecretsBundle(bundle),
		generate.WithInstallDisk("/dev/sda"),
	)
	if err != nil {
		return nil, fail(err)
	}

	cfg, err := in.Config(typ)
	if err != nil {
		return nil, fail(err)
	}

	return cfg, nil
}

// applyPatches applies strategic-merge (or, on single-document configs, JSON) patches in order.
func applyPatches(o Options, role string, cfg config.Provider, patches ...namedPatch) (config.Provider, error) {
	in := configpatcher.WithConfig(cfg)

	for _, p := range patches {
		load := configpatcher.LoadPatch
		if p.shared {
			load = o.Cache.loadDocs
		}
		patch, err := load(p.data)
		if err != nil {
			return nil, fmt.Errorf("%s %s: loading: %w", p.label, o.context(), err)
		}

		if in, err = configpatcher.Apply(in, []configpatcher.Patch{patch}); err != nil {
			return nil, fmt.Errorf("%s %s: applying to the %s config: %w", p.label, o.context(), role, err)
		}
	}

	result, err := in.Config()
	if err != nil {
		return nil, fmt.Errorf("%s config %s: loading the patched config: %w", role, o.context(), err)
	}

	return result, nil
}

// validate runs machinery's client-side validation (ValidateAsClient is the non-deprecated name
// of cfg.Validate; both call the same code) for a metal node.
//
// Warnings are dropped: the generated base config already has some (e.g. "installer.image is not set").
func validate(o Options, role string, cfg config.Provider, patches ...namedPatch) error {
	if _, err := cfg.ValidateAsClient(metalMode{}, validation.WithLocal()); err != nil {
		applied := make([]string, 0, len(o.StaticPatches)+len(patches))
		for _, sp := range o.StaticPatches {
			if sp.appliesTo(role) {
				applied = append(applied, fmt.Sprintf("static patch %q", sp.Name))
			}
		}

		for _, p := range patches {
			applied = append(applied, p.label)
		}

		with := "no patches"
		if len(applied) > 0 {
			with = strings.Join(applied, " + ")
		}

		return fmt.Errorf("%s config %s with %s: invalid: %w", role, o.context(), with, compact{err})
	}

	return nil
}

// compact prints machinery's multierror without its blank lines, keeping it for errors.As.
type compact struct{ err error }

func (c compact) Unwrap() error { return c.err }

func (c compact) Error() string {
	var lines []string

	for line := range strings.Lines(c.err.Error()) {
		if line = strings.TrimRight(line, " \t\n"); line != "" {
			lines = append(lines, line)
		}
	}

	return strings.Join(lines, "\n")
}

// metalMode is the runtime mode of a node installed to disk; machinery ships no implementation.
type metalMode struct{}

func (metalMode) String() string        { return "metal" }
func (metalMode) RequiresInstall() bool { return true }
func (metalMode) InContainer() bool     { return false }

// bundleTime is the fixed clock of the validation bundle, so generated configs do not depend
// on when they are built. Keys are still random, so ECDSA signatures can change an encoded
// config's size by a few bytes between processes.
var bundleTime = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// bundle is one contract's secrets bundle, generated once (possibly in the background).
type bundle struct {
	once sync.Once
	b    *secrets.Bundle
	err  error
}

var bundles = struct {
	sync.Mutex
	byContract map[string]*bundle
}{byContract: map[string]*bundle{}}

func bundleFor(contract *config.VersionContract) *bundle {
	bundles.Lock()
	defer bundles.Unlock()
	e, ok := bundles.byContract[contract.String()]
	if !ok {
		e = &bundle{}
		bundles.byContract[contract.String()] = e
	}
	return e
}

// secretsBundle is the validation bundle of a contract, generated once per process. It only
// completes the configs machinery generates to validate and measure bootcore's patches; it never
// leaves the process (the patches carry no secrets; users generate their configs with their own
// bundle). So its service-account key is ECDSA (about a millisecond) instead of the contract's
// 4096-bit RSA key (0.5-3 s, paid by every gen run before): sizes are corrected for the
// difference (serviceAccountKeyExtra).
func secretsBundle(contract *config.VersionContract) (*secrets.Bundle, error) {
	e := bundleFor(contract)
	e.once.Do(func() {
		e.b, e.err = secrets.NewBundle(secrets.NewFixedClock(bundleTime), contract, secrets.WithECDSAServiceAccountKey())
	})
	return e.b, e.err
}

// Prewarm starts generating the throwaway secrets bundle of talosVersion's contract in the
// background, so its key generation overlaps the tree walk and the renders instead of
// following them. An invalid version is left to Generate to report.
func Prewarm(talosVersion string) {
	contract, err := config.ParseContractFromVersion(talosVersion)
	if err != nil {
		return
	}
	go func() { _, _ = secretsBundle(contract) }()
}

// recoverTo turns a panic deep in machinery into an error: bad input must never crash the caller.
func recoverTo(err *error, format string, args ...any) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: internal error: %v", fmt.Sprintf(format, args...), r)
	}
}
