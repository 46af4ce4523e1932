package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/bootcore-dev/bootcore/internal/spec"
)

// fakePhase records what the manager did with it.
type fakePhase struct {
	name    string
	done    bool
	runErr  error
	block   bool // Run waits for its context (to test timeouts)
	ran     bool
	checked bool
}

func (p *fakePhase) Name() string  { return p.name }
func (p *fakePhase) Title() string { return "doing " + p.name }
func (p *fakePhase) Done(context.Context) (bool, string, error) {
	p.checked = true
	return p.done, "it is", nil
}
func (p *fakePhase) Run(ctx context.Context) error {
	p.ran = true
	if p.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return p.runErr
}

func TestManagerRunsInOrderAndSkipsDone(t *testing.T) {
	a, b, c := &fakePhase{name: "a"}, &fakePhase{name: "b", done: true}, &fakePhase{name: "c"}
	var out bytes.Buffer
	var order []string
	m := &Manager{Phases: []Phase{a, b, c}, Reporter: NewReporter(&out, false),
		OnDone: func(p string, _ time.Time, ran bool) { order = append(order, fmt.Sprintf("%s:%v", p, ran)) }}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !a.ran || b.ran || !c.ran {
		t.Errorf("ran a=%v b=%v c=%v, want a and c only", a.ran, b.ran, c.ran)
	}
	if got := strings.Join(order, " "); got != "a:true b:false c:true" {
		t.Errorf("OnDone order = %s", got)
	}
	text := out.String()
	for _, want := range []string{"► a: doing a", "✔ a: done", "✔ b: already done: it is", "► c: doing c"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	// Force runs done phases too.
	b.ran = false
	m.Force = true
	if err := m.Run(context.Background()); err != nil || !b.ran {
		t.Errorf("force: err=%v b.ran=%v", err, b.ran)
	}
}

func TestManagerStopsAtFailureAndTimeout(t *testing.T) {
	boom := errors.New("boom")
	a, b, c := &fakePhase{name: "a"}, &fakePhase{name: "b", runErr: boom}, &fakePhase{name: "c"}
	m := &Manager{Phases: []Phase{a, b, c}, Reporter: NewReporter(&bytes.Buffer{}, false)}
	err := m.Run(context.Background())
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != "b" || !errors.Is(err, boom) || pe.Timeout != 0 {
		t.Fatalf("err = %#v", err)
	}
	if c.checked || c.ran {
		t.Error("a phase after the failure was touched")
	}

	slow := &fakePhase{name: "slow", block: true}
	m = &Manager{Phases: []Phase{slow}, Reporter: NewReporter(&bytes.Buffer{}, false), Timeouts: map[string]time.Duration{"slow": 20 * time.Millisecond}}
	err = m.Run(context.Background())
	if !errors.As(err, &pe) || pe.Timeout != 20*time.Millisecond || !strings.Contains(err.Error(), "timed out after 20ms") {
		t.Fatalf("timeout err = %v", err)
	}

	// A cancelled run is not reported as the phase's timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow = &fakePhase{name: "slow", block: true}
	m.Phases = []Phase{slow}
	m.Timeouts = map[string]time.Duration{"slow": time.Hour}
	if err := m.Run(ctx); !errors.As(err, &pe) || pe.Timeout != 0 {
		t.Fatalf("cancelled err = %v", err)
	}
}

func TestManagerAllDone(t *testing.T) {
	m := &Manager{Phases: []Phase{&fakePhase{name: "a", done: true}, &fakePhase{name: "b"}}}
	notDone, _, err := m.AllDone(context.Background())
	if err != nil || notDone != "b" {
		t.Errorf("AllDone = %q, %v", notDone, err)
	}
	var out bytes.Buffer
	m.Reporter = NewReporter(&out, false)
	m.Phases[1].(*fakePhase).done = true
	if notDone, _, _ := m.AllDone(context.Background()); notDone != "" {
		t.Errorf("AllDone = %q, want all done", notDone)
	}
	if got := out.String(); !strings.Contains(got, "✔ a: already done: it is") || !strings.Contains(got, "✔ b: already done: it is") {
		t.Errorf("all done: output %q, want a skip line per phase", got)
	}
	for _, p := range m.Phases {
		if p.(*fakePhase).ran {
			t.Error("AllDone ran a phase")
		}
	}
}

func TestReporterJSONLines(t *testing.T) {
	var out bytes.Buffer
	r := NewReporter(&out, true)
	code := 1
	r.Emit(Event{Type: EventStart, Phase: "handover", Message: "waiting"})
	r.Emit(Event{Type: EventResult, Message: "failed\nsecond line", ExitCode: &code, Elapsed: 1.5, Bundle: "b.zip"})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON object per line, got %q", out.String())
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != EventResult || *e.ExitCode != 1 || e.Bundle != "b.zip" || e.Message != "failed\nsecond line" || e.Time.IsZero() {
		t.Errorf("event = %+v", e)
	}
	if len(r.Events()) != 2 {
		t.Errorf("Events() = %d", len(r.Events()))
	}
}

func TestTextFormat(t *testing.T) {
	code := 0
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Type: EventStart, Phase: "p", Message: "m"}, "► p: m"},
		{Event{Type: EventProgress, Phase: "p", Message: "m"}, "◎ p: m"},
		{Event{Type: EventReady, Phase: "p", Message: "Node a Ready"}, "✔ p: Node a Ready"},
		{Event{Type: EventDone, Phase: "p", Message: "done", Elapsed: 2.25}, "✔ p: done (2.3s)"},
		{Event{Type: EventFail, Phase: "p", Message: "a\nb"}, "✗ p: a\n    b"},
		{Event{Type: EventWarning, Message: "w"}, "⚠ w"},
		{Event{Type: EventResult, Message: "ok", ExitCode: &code, Elapsed: 75}, "✔ ok (1m15s)"},
	} {
		if got := formatText(tc.e); got != tc.want {
			t.Errorf("formatText(%+v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		spec, server string
		ok           bool
	}{
		{"https://10.10.0.10:6443", "https://10.10.0.10:6443", true},
		{"https://10.10.0.10:6443", "10.10.0.10:6443", true},
		{"https://API.example.com", "https://api.example.com:443", true},
		{"https://[fd00::1]:6443", "https://[FD00::1]:6443", true},
		{"https://10.10.0.10:6443", "https://10.20.0.10:6443", false},
		{"https://127.0.0.1:6443", "https://127.0.0.1:6444", false},
		{"https://10.10.0.10:6443", "https://10.10.0.10", false},
	} {
		err := checkEndpoint("infra", tc.spec, tc.server)
		var wc *WrongClusterError
		if tc.ok != (err == nil) || (!tc.ok && !errors.As(err, &wc)) {
			t.Errorf("checkEndpoint(%s, %s) = %v", tc.spec, tc.server, err)
		}
		if !tc.ok && err != nil && !strings.Contains(err.Error(), "cluster infra's endpoint") {
			t.Errorf("message %q does not name the cluster", err)
		}
	}
}

func TestCheckIdentity(t *testing.T) {
	m := &Marker{Cluster: "infra", ClusterUID: "uid-1"}
	if err := checkIdentity("infra", "uid-1", m); err != nil {
		t.Error(err)
	}
	if err := checkIdentity("infra", "uid-2", nil); err != nil {
		t.Errorf("no marker: %v", err)
	}
	var wc *WrongClusterError
	if err := checkIdentity("apps", "uid-1", m); !errors.As(err, &wc) || !strings.Contains(err.Error(), `records cluster "infra"`) {
		t.Errorf("other cluster: %v", err)
	}
	if err := checkIdentity("infra", "uid-2", m); !errors.As(err, &wc) || !strings.Contains(err.Error(), "uid-1") {
		t.Errorf("other UID: %v", err)
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	m := &Marker{Cluster: "infra", ClusterUID: "u", GitRevision: "main@sha1:abc", FluxInstall: "helm",
		Versions: map[string]string{"bootcore": "v1", "chart.flux-operator": "0.58.1"},
		Phases:   map[string]time.Time{PhaseHandover: at}, HandedOverAt: at}
	c := fake.NewClientset(m.ConfigMap())
	got, err := readMarker(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cluster != "infra" || got.GitRevision != "main@sha1:abc" || !got.Phases[PhaseHandover].Equal(at) ||
		got.Versions["chart.flux-operator"] != "0.58.1" || !got.HandedOverAt.Equal(at) {
		t.Errorf("marker = %+v", got)
	}
	if none, err := readMarker(context.Background(), fake.NewClientset()); none != nil || err != nil {
		t.Errorf("no marker: %v, %v", none, err)
	}
	bad := m.ConfigMap()
	bad.Data["phase.x"] = "yesterday"
	if _, err := readMarker(context.Background(), fake.NewClientset(bad)); err == nil || !strings.Contains(err.Error(), "phase.x") {
		t.Errorf("bad phase time: %v", err)
	}
}

func TestLock(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := &Lock{Client: c, Identity: "a", TTL: 15 * time.Second, PollInterval: time.Millisecond, now: clock}
	b := &Lock{Client: c, Identity: "b", TTL: 15 * time.Second, PollInterval: time.Millisecond, now: clock}
	if err := a.Acquire(ctx, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var told []string
	err := b.Acquire(ctx, 20*time.Millisecond, func(h string) { told = append(told, h) })
	var held *LockHeldError
	if !errors.As(err, &held) || held.Holder != "a" || !strings.Contains(err.Error(), "kube-system/bootcore-agent") {
		t.Fatalf("second agent: %v", err)
	}
	if strings.Join(told, ",") != "a" {
		t.Errorf("told about holders %v, want [a] once", told)
	}

	// a renews; b still waits. Once a stops renewing for longer than the TTL, b takes over.
	now = now.Add(10 * time.Second)
	if err := a.renew(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Second)
	if err := b.Acquire(ctx, 20*time.Millisecond, nil); !errors.As(err, &held) {
		t.Fatalf("lock taken although renewed 10s ago: %v", err)
	}
	now = now.Add(6 * time.Second)
	if err := b.Acquire(ctx, time.Second, nil); err != nil {
		t.Fatalf("expired lock not taken over: %v", err)
	}
	lease, _ := c.CoordinationV1().Leases(LockNamespace).Get(ctx, LockName, metav1.GetOptions{})
	if ptr.Deref(lease.Spec.HolderIdentity, "") != "b" {
		t.Errorf("holder = %v", lease.Spec.HolderIdentity)
	}

	// Release deletes only the holder's own lease.
	a.Release()
	if _, err := c.CoordinationV1().Leases(LockNamespace).Get(ctx, LockName, metav1.GetOptions{}); err != nil {
		t.Errorf("a released b's lock: %v", err)
	}
	b.Release()
	if _, err := c.CoordinationV1().Leases(LockNamespace).Get(ctx, LockName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lock not released: %v", err)
	}
}

func TestResolveSecrets(t *testing.T) {
	repo := t.TempDir()
	home := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(repo, "known_hosts"), []byte("github.com ssh-ed25519 AAAA\n"), 0o644))
	must(os.WriteFile(filepath.Join(home, "id"), []byte("PRIVATE-KEY-MATERIAL"), 0o600))
	must(os.WriteFile(filepath.Join(repo, "plain.yaml"), []byte("stringData:\n  token: from-yaml\n"), 0o644))
	sopsFixture, err := os.ReadFile(filepath.Join("..", "sopsage", "testdata", "secret.sops.yaml"))
	must(err)
	must(os.WriteFile(filepath.Join(repo, "op.sops.yaml"), sopsFixture, 0o644))
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("SOPS_AGE_KEY_FILE", filepath.Join("..", "sopsage", "testdata", "test.agekey"))

	env := map[string]string{"TOKEN": "env-token-value", "EMPTY": ""}
	src := secretSources{repo: repo, home: func() (string, error) { return home, nil },
		getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	specs := []spec.AgentSecret{
		{Name: "flux-system/flux-system", Data: map[string]spec.SecretSource{
			"identity": {File: "~/id"}, "known_hosts": {File: "known_hosts"},
		}},
		{Name: "external-secrets/onepassword-connect", Type: "Opaque", Data: map[string]spec.SecretSource{
			"token":       {Env: "TOKEN"},
			"credentials": {File: "op.sops.yaml", Key: "stringData.1password-credentials.json"},
			"sopstoken":   {File: "op.sops.yaml", Key: "stringData.token"},
			"plain":       {File: "plain.yaml", Key: "stringData.token"},
		}},
	}
	secrets, values, err := resolveSecrets(src, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 2 || len(values) != 6 {
		t.Fatalf("%d secrets, %d values", len(secrets), len(values))
	}
	op := secrets[1]
	if op.Namespace != "external-secrets" || op.Name != "onepassword-connect" || op.Type != corev1.SecretTypeOpaque {
		t.Errorf("secret = %s/%s %s", op.Namespace, op.Name, op.Type)
	}
	for k, want := range map[string]string{"token": "env-token-value", "credentials": `{"verifier":{"salt":"abc"}}`, "sopstoken": "canary-token-7f3a9b", "plain": "from-yaml"} {
		if string(op.Data[k]) != want {
			t.Errorf("%s = %q, want %q", k, op.Data[k], want)
		}
	}
	if string(secrets[0].Data["identity"]) != "PRIVATE-KEY-MATERIAL" {
		t.Errorf("identity from ~/ not read")
	}
	if err := checkGitSecret("flux-system/flux-system", "ssh://git@github.com/x/y.git", secrets[0]); err != nil {
		t.Errorf("checkGitSecret: %v", err)
	}

	// Every missing input is reported at once, each naming its Secret, key and source, and
	// no value appears in the message.
	bad := []spec.AgentSecret{{Name: "a/b", Data: map[string]spec.SecretSource{
		"unset": {Env: "NOT_SET"}, "empty": {Env: "EMPTY"}, "nofile": {File: "nope.txt"},
		"nokey": {File: "op.sops.yaml"}, "wrongkey": {File: "op.sops.yaml", Key: "stringData.nope"},
	}}}
	_, _, err = resolveSecrets(src, bad)
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an InputError", err)
	}
	for _, want := range []string{
		"agent.secrets[a/b].data.unset: environment variable NOT_SET is not set",
		"agent.secrets[a/b].data.empty: environment variable EMPTY is empty",
		"agent.secrets[a/b].data.nofile: file nope.txt: no such file",
		"agent.secrets[a/b].data.nokey: file op.sops.yaml is SOPS-encrypted: set key",
		`agent.secrets[a/b].data.wrongkey: file op.sops.yaml: key "stringData.nope" not found`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, v := range []string{"canary-token-7f3a9b", "env-token-value", "verifier"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error leaks a value: %v", err)
		}
	}
}

func TestCheckGitSecret(t *testing.T) {
	sec := func(keys ...string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "flux-system", Name: "flux-system"}, Data: map[string][]byte{}}
		for _, k := range keys {
			s.Data[k] = []byte("x")
		}
		return s
	}
	for _, tc := range []struct {
		url  string
		keys []string
		want string
	}{
		{"ssh://git@host/r.git", []string{"identity", "known_hosts"}, ""},
		{"git@host:r.git", []string{"identity"}, "missing known_hosts"},
		{"ssh://git@host/r.git", nil, "missing identity, known_hosts"},
		{"https://host/r.git", []string{"username", "password"}, ""},
		{"https://host/r.git", []string{"bearerToken"}, ""},
		{"https://host/r.git", []string{"password"}, "needs key username"},
		{"https://host/r.git", []string{"identity"}, "password (with username) or bearerToken"},
	} {
		err := checkGitSecret("flux-system/flux-system", tc.url, sec(tc.keys...))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %v: %v, want %q", tc.url, tc.keys, err, tc.want)
		}
	}
}

func TestRemoveFromInventory(t *testing.T) {
	ctx := context.Background()
	keep := "kube-system_coredns_apps_Deployment"
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: TalosInventoryNamespace, Name: TalosInventoryName, ResourceVersion: "1"},
		Data: map[string]string{
			"kube-system_cilium_apps_DaemonSet":                                              "",
			"_ciliumnetworkpolicies.cilium.io_apiextensions.k8s.io_CustomResourceDefinition": "",
			keep: "",
		},
	}
	c := fake.NewClientset(cm)
	boot := []string{"kube-system_cilium_apps_DaemonSet", "_ciliumnetworkpolicies.cilium.io_apiextensions.k8s.io_CustomResourceDefinition", "kube-system_cilium-operator_apps_Deployment"}
	var drop object.ObjMetadataSet
	for _, k := range boot {
		ref, err := object.ParseObjMetadata(k)
		if err != nil {
			t.Fatal(err)
		}
		drop = append(drop, ref)
	}
	// (The fake clientset ignores dry-run; the e2e tests cover --dry-run on a real API server.)
	removed, err := removeFromInventory(ctx, c, drop, false)
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	got, _ := c.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{})
	if len(got.Data) != 1 || got.Data[keep] != "" {
		t.Errorf("inventory = %v, want only %s", got.Data, keep)
	}
	// Nothing left to remove: no write.
	before := got.ResourceVersion
	if removed, err := removeFromInventory(ctx, c, drop, false); err != nil || len(removed) != 0 {
		t.Errorf("second run: %v, %v", removed, err)
	}
	got, _ = c.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{})
	if got.ResourceVersion != before {
		t.Error("second run wrote the inventory")
	}
	// No inventory (Talos <= 1.12): nothing to do, and nothing created.
	empty := fake.NewClientset()
	if removed, err := removeFromInventory(ctx, empty, drop, false); err != nil || removed != nil {
		t.Errorf("no inventory: %v, %v", removed, err)
	}
	if _, err := empty.CoreV1().ConfigMaps(TalosInventoryNamespace).Get(ctx, TalosInventoryName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Error("an inventory was created")
	}
}

func TestReadBootObjectsBothContracts(t *testing.T) {
	dir := t.TempDir()
	cni := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: cilium, namespace: kube-system}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: cilium-operator, namespace: kube-system}\n"
	crds := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.example.com}\n"
	indent := func(s string) string {
		return "        " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n        ") + "\n"
	}
	v1alpha1 := "cluster:\n  inlineManifests:\n    - name: bootcore-crds\n      contents: |\n" + indent(crds) + "    - name: bootcore-cni\n      contents: |\n" + indent(cni)
	v114 := "apiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: bootcore-cni\nmanifest: |\n" + strings.ReplaceAll(indent(cni), "        ", "  ") +
		"---\napiVersion: v1alpha1\nkind: KubeInlineManifestConfig\nname: bootcore-crds\nmanifest: |\n" + strings.ReplaceAll(indent(crds), "        ", "  ")
	for name, content := range map[string]string{"v1alpha1": v1alpha1, "v1.14": v114} {
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := readBootObjects(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b.CRDs) != 1 || len(b.CNI) != 2 || b.CNI[1].GetName() != "cilium-operator" || len(b.all()) != 3 {
			t.Errorf("%s: crds %d cni %d", name, len(b.CRDs), len(b.CNI))
		}
	}
	p := filepath.Join(dir, "other.yaml")
	_ = os.WriteFile(p, []byte("machine: {}\n"), 0o644)
	if _, err := readBootObjects(p); err == nil || !strings.Contains(err.Error(), `no inline manifest "bootcore-cni"`) {
		t.Errorf("err = %v", err)
	}
	if _, err := readBootObjects(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "run bootcore gen") {
		t.Errorf("err = %v", err)
	}
}

func TestRedact(t *testing.T) {
	secret := []byte("canary-value-123")
	in := []byte("event: token canary-value-123 leaked; b64 Y2FuYXJ5LXZhbHVlLTEyMw== too; short x")
	out := string(redact(in, [][]byte{secret, []byte("x")}))
	if strings.Contains(out, "canary") || strings.Contains(out, "Y2FuYXJ5LXZhbHVlLTEyMw==") {
		t.Errorf("not redacted: %s", out)
	}
	if !strings.Contains(out, "short x") {
		t.Errorf("short values must not be redacted: %s", out)
	}
}

func TestVersionBefore(t *testing.T) {
	for v, want := range map[string]bool{"v1.13.9": true, "v1.14.1": false, "1.12": true, "v2.0.0": false, "junk": false} {
		if versionBefore(v, 1, 14) != want {
			t.Errorf("versionBefore(%s) != %v", v, want)
		}
	}
}
