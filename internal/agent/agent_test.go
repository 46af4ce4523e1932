package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
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

	"github.com/bootcore-dev/bootcore/internal/spec"
)

// fakePhase records what the manager did with it; its facts say who produced them.
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
func (p *fakePhase) Done(context.Context) (Outcome[string], error) {
	p.checked = true
	return Outcome[string]{Done: p.done, Why: "it is", Facts: p.name + " found"}, nil
}
func (p *fakePhase) Run(ctx context.Context) (string, error) {
	p.ran = true
	if p.block {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return p.name + " ran", p.runErr
}

// dryPhase can dry-run.
type dryPhase struct{ fakePhase }

func (p *dryPhase) DryRun(context.Context) (string, error) { return p.name + " dry", nil }

// Phases run in order, a done one is passed over and hands on the facts its check found, a
// phase that ran hands on its own; the manager remembers which ran and when each finished.
func TestManagerRunsAndSkipsDone(t *testing.T) {
	a, b := &fakePhase{name: "a"}, &fakePhase{name: "b", done: true}
	var out bytes.Buffer
	m := &Manager{Reporter: NewReporter(&out, false)}
	ctx := context.Background()
	if f, err := RunPhase(ctx, m, a); err != nil || f != "a ran" || !a.ran {
		t.Fatalf("a: %q %v ran=%v", f, err, a.ran)
	}
	if f, err := RunPhase(ctx, m, b); err != nil || f != "b found" || b.ran {
		t.Fatalf("b: %q %v ran=%v", f, err, b.ran)
	}
	if !m.RanAny() || len(m.Finished()) != 2 {
		t.Errorf("RanAny %v, finished %v", m.RanAny(), m.Finished())
	}
	text := out.String()
	for _, want := range []string{"► a: doing a", "✔ a: done", "✔ b: already done: it is"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	only := &Manager{Reporter: NewReporter(io.Discard, false)}
	if _, err := RunPhase(ctx, only, &fakePhase{name: "c", done: true}); err != nil || only.RanAny() {
		t.Errorf("a done phase counted as run: %v", err)
	}

	// Force runs done phases too.
	m.Force = true
	if f, err := RunPhase(ctx, m, b); err != nil || !b.ran || f != "b ran" {
		t.Errorf("force: %q err=%v b.ran=%v", f, err, b.ran)
	}
}

// Under --dry-run a phase's DryRun runs instead of Run; a phase without one is passed over.
func TestManagerDryRun(t *testing.T) {
	m := &Manager{DryRun: true, Reporter: NewReporter(io.Discard, false)}
	d := &dryPhase{fakePhase{name: "d"}}
	if f, err := RunPhase(context.Background(), m, d); err != nil || f != "d dry" || d.ran {
		t.Errorf("dry phase: %q %v ran=%v", f, err, d.ran)
	}
	w := &fakePhase{name: "w"}
	if f, err := RunPhase(context.Background(), m, w); err != nil || f != "" || w.ran {
		t.Errorf("phase without a dry run: %q %v ran=%v", f, err, w.ran)
	}
}

func TestManagerFailureAndTimeout(t *testing.T) {
	boom := errors.New("boom")
	m := &Manager{Reporter: NewReporter(&bytes.Buffer{}, false)}
	_, err := RunPhase(context.Background(), m, &fakePhase{name: "b", runErr: boom})
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != "b" || !errors.Is(err, boom) || pe.Timeout != 0 {
		t.Fatalf("err = %#v", err)
	}

	m.Timeouts = map[string]time.Duration{"slow": 20 * time.Millisecond}
	_, err = RunPhase(context.Background(), m, &fakePhase{name: "slow", block: true})
	if !errors.As(err, &pe) || pe.Timeout != 20*time.Millisecond || !strings.Contains(err.Error(), "timed out after 20ms") {
		t.Fatalf("timeout err = %v", err)
	}

	// A cancelled run is not reported as the phase's timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Timeouts = map[string]time.Duration{"slow": time.Hour}
	if _, err := RunPhase(ctx, m, &fakePhase{name: "slow", block: true}); !errors.As(err, &pe) || pe.Timeout != 0 {
		t.Fatalf("cancelled err = %v", err)
	}
}

func TestManagerAllDone(t *testing.T) {
	a, b := &fakePhase{name: "a", done: true}, &fakePhase{name: "b"}
	m := &Manager{Reporter: NewReporter(io.Discard, false)}
	notDone, _, err := m.AllDone(context.Background(), Check(a), Check(b))
	if err != nil || notDone != "b" {
		t.Errorf("AllDone = %q, %v", notDone, err)
	}
	var out bytes.Buffer
	m.Reporter = NewReporter(&out, false)
	b.done = true
	if notDone, _, _ := m.AllDone(context.Background(), Check(a), Check(b)); notDone != "" {
		t.Errorf("AllDone = %q, want all done", notDone)
	}
	if got := out.String(); !strings.Contains(got, "✔ a: already done: it is") || !strings.Contains(got, "✔ b: already done: it is") {
		t.Errorf("all done: output %q, want a skip line per phase", got)
	}
	if a.ran || b.ran {
		t.Error("AllDone ran a phase")
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
