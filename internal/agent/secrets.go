package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/sopsage"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// InputError is a missing or unusable input (environment variable, file, SOPS key). It is
// found before anything is written.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// secretSources reads values from the environment and the file system; tests replace both.
type secretSources struct {
	repo   string
	getenv func(string) (string, bool)
	home   func() (string, error)
}

func osSources(repo string) secretSources {
	return secretSources{repo: repo, getenv: os.LookupEnv, home: os.UserHomeDir}
}

// osSourcesWith reads the environment through getenv (Options.Getenv).
func osSourcesWith(repo string, getenv func(string) (string, bool)) secretSources {
	src := osSources(repo)
	src.getenv = getenv
	return src
}

// resolveSecrets builds the bootstrap Secrets of the spec. It returns every value too, so the
// support bundle can redact them. Errors name the Secret, the key and the variable or file,
// never a value.
func resolveSecrets(src secretSources, specs []spec.AgentSecret) ([]*corev1.Secret, [][]byte, error) {
	var out []*corev1.Secret
	var values [][]byte
	var errs []error
	for _, s := range specs {
		ns, name := spec.SplitName(s.Name)
		typ := corev1.SecretType(s.Type)
		if typ == "" {
			typ = corev1.SecretTypeOpaque
		}
		sec := &corev1.Secret{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: ns,
				Labels: map[string]string{managedByLabel: "bootcore"},
			},
			Type: typ,
			Data: map[string][]byte{},
		}
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, err := src.value(s.Data[k])
			if err != nil {
				errs = append(errs, fmt.Errorf("agent.secrets[%s].data.%s: %w", s.Name, k, err))
				continue
			}
			sec.Data[k] = v
			values = append(values, v)
		}
		out = append(out, sec)
	}
	if len(errs) > 0 {
		return nil, nil, &InputError{Err: errors.Join(errs...)}
	}
	return out, values, nil
}

func (src secretSources) value(s spec.SecretSource) ([]byte, error) {
	if s.Env != "" {
		v, ok := src.getenv(s.Env)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", s.Env)
		}
		if v == "" {
			return nil, fmt.Errorf("environment variable %s is empty", s.Env)
		}
		return []byte(v), nil
	}
	path, err := src.path(s.File)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", s.File, unwrapPathError(err))
	}
	encrypted := sopsage.IsEncrypted(data)
	if s.Key == "" {
		if encrypted {
			return nil, fmt.Errorf("file %s is SOPS-encrypted: set key: to the path of the value in it (e.g. stringData.token, or data for a binary file)", s.File)
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("file %s is empty", s.File)
		}
		return data, nil
	}
	var doc map[string]any
	if encrypted {
		if doc, err = sopsage.Decrypt(data); err != nil {
			return nil, fmt.Errorf("file %s (SOPS): %w", s.File, err)
		}
	} else if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("file %s: key %s needs a YAML or JSON document: %w", s.File, s.Key, err)
	}
	v, err := sopsage.Lookup(doc, s.Key)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", s.File, err)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("file %s: key %s is empty", s.File, s.Key)
	}
	return v, nil
}

// path resolves ~/, absolute and repository-relative paths.
func (src secretSources) path(p string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := src.home()
		if err != nil {
			return "", fmt.Errorf("file %s: %w", p, err)
		}
		return filepath.Join(home, rest), nil
	}
	if filepath.IsAbs(p) {
		return p, nil
	}
	return filepath.Join(src.repo, p), nil
}

// unwrapPathError drops the path from *PathError: the message already names the file as the
// user wrote it.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkGitSecret makes sure the Secret a GitRepository names has the keys Flux reads for
// its URL scheme: SSH needs identity and known_hosts; HTTPS a password (with username) or a
// bearer token. Names of keys only, never values, appear in errors.
func checkGitSecret(repoID, url string, sec *corev1.Secret) error {
	has := func(k string) bool { return len(sec.Data[k]) > 0 }
	where := fmt.Sprintf("Secret %s/%s (for GitRepository %s, %s)", sec.Namespace, sec.Name, repoID, url)
	switch {
	case strings.HasPrefix(url, "ssh://") || (!strings.Contains(url, "://") && strings.Contains(url, "@")):
		var missing []string
		for _, k := range []string{"identity", "known_hosts"} {
			if !has(k) {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return &InputError{Err: fmt.Errorf("%s: an SSH source needs keys identity and known_hosts; missing %s", where, strings.Join(missing, ", "))}
		}
	case strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://"):
		if !has("password") && !has("bearerToken") {
			return &InputError{Err: fmt.Errorf("%s: an HTTP(S) source needs key password (with username) or bearerToken", where)}
		}
		if has("password") && !has("username") {
			return &InputError{Err: fmt.Errorf("%s: key password needs key username", where)}
		}
	}
	return nil
}
