package sopsage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func useTestKey(t *testing.T) {
	t.Helper()
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("SOPS_AGE_KEY_FILE", filepath.Join("testdata", "test.agekey"))
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no user key file
}

func decryptFile(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if !IsEncrypted(data) {
		t.Fatalf("%s: IsEncrypted = false", name)
	}
	doc, err := Decrypt(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

func lookup(t *testing.T, doc map[string]any, key string) string {
	t.Helper()
	v, err := Lookup(doc, key)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", key, err)
	}
	return string(v)
}

func TestDecryptFilesWrittenBySops(t *testing.T) {
	useTestKey(t)

	// encrypted_regex: only stringData is encrypted; a key with dots in its name.
	doc := decryptFile(t, "secret.sops.yaml")
	for key, want := range map[string]string{
		"stringData.token":                      "canary-token-7f3a9b",
		"stringData.1password-credentials.json": `{"verifier":{"salt":"abc"}}`,
		"metadata.name":                         "onepassword-connect",
	} {
		if got := lookup(t, doc, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if _, ok := doc["sops"]; ok {
		t.Error("the sops metadata is part of the result")
	}

	// Everything encrypted, typed values, a list, an _unencrypted key, empty and null values,
	// and an encrypted comment (dropped).
	doc = decryptFile(t, "mixed.sops.yaml")
	for key, want := range map[string]string{
		"db.user": "admin", "db.password": "s3cr3t-P4ss", "db.port": "5432", "db.ratio": "0.25",
		"db.enabled": "True", "db.hosts.1": "b.example", "db.note_unencrypted": "visible",
	} {
		if got := lookup(t, doc, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	// The binary format (any file): the content is the value of "data".
	doc = decryptFile(t, "blob.sops.json")
	if got := lookup(t, doc, "data"); got != "raw binary-ish content\nline2\n" {
		t.Errorf("data = %q", got)
	}

	// encrypted_suffix with mac_only_encrypted: plain values stay out of the MAC.
	doc = decryptFile(t, "suffix-maconly.sops.yaml")
	if got := lookup(t, doc, "nested.key_secret"); got != "deep-value" {
		t.Errorf("nested.key_secret = %q", got)
	}
	if got := lookup(t, doc, "api_secret"); got != "abc-123-xyz" {
		t.Errorf("api_secret = %q", got)
	}
}

func TestDecryptRefusesTampering(t *testing.T) {
	useTestKey(t)
	data, err := os.ReadFile(filepath.Join("testdata", "mixed.sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Changing an unencrypted value breaks the MAC.
	tampered := strings.Replace(string(data), "note_unencrypted: visible", "note_unencrypted: changed", 1)
	if tampered == string(data) {
		t.Fatal("fixture changed: no note_unencrypted line")
	}
	if _, err := Decrypt([]byte(tampered)); err == nil || !strings.Contains(err.Error(), "MAC mismatch") {
		t.Errorf("tampered plain value: err = %v, want MAC mismatch", err)
	}
	// Moving an encrypted value to another key fails its authentication (the key path is
	// its additional data).
	lines := strings.Split(string(data), "\n")
	var user, pass int
	for i, l := range lines {
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "user: ENC["):
			user = i
		case strings.HasPrefix(strings.TrimSpace(l), "password: ENC["):
			pass = i
		}
	}
	lines[user] = strings.Replace(lines[pass], "password:", "user:", 1)
	if _, err := Decrypt([]byte(strings.Join(lines, "\n"))); err == nil || !strings.Contains(err.Error(), "db.user") {
		t.Errorf("moved value: err = %v, want an error naming db.user", err)
	}
}

func TestDecryptWithoutKey(t *testing.T) {
	t.Setenv("SOPS_AGE_KEY", "")
	t.Setenv("SOPS_AGE_KEY_FILE", filepath.Join(t.TempDir(), "missing"))
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	data, err := os.ReadFile(filepath.Join("testdata", "secret.sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Decrypt(data)
	if err == nil || !strings.Contains(err.Error(), "SOPS_AGE_KEY_FILE") {
		t.Fatalf("err = %v, want a hint at SOPS_AGE_KEY_FILE", err)
	}
}

func TestNotEncrypted(t *testing.T) {
	if IsEncrypted([]byte("a: b\n")) || IsEncrypted([]byte("\x00\x01 not yaml")) {
		t.Error("plain data reported as encrypted")
	}
	if _, err := Decrypt([]byte("a: b\n")); err == nil || !strings.Contains(err.Error(), "not SOPS-encrypted") {
		t.Errorf("err = %v", err)
	}
}

func TestLookupErrors(t *testing.T) {
	doc := map[string]any{"a": map[string]any{"b": []any{"x"}}, "n": nil}
	for key, want := range map[string]string{
		"a.c": "not found", "a.b": "map or list", "a.b.3": "not an index", "n": "null", "a.b.0.z": "not found",
	} {
		if _, err := Lookup(doc, key); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookup(%s) = %v, want %q", key, err, want)
		}
	}
}
