package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/internal/spec"
)

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
