package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// A canary value fed through every input path the agent has — an environment variable, a plain
// file, a SOPS-encrypted file, and the age key that decrypts it — reaches the cluster's Secrets
// and nothing else: not stdout or stderr (text and JSON), not the support bundle (written 0600),
// not any file under the repository, HOME or the bundle directory, not any other object.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	c, l := bootedCluster(t, "infra")
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}

	ageKey, err := os.ReadFile(filepath.Join(root, "internal", "sopsage", "testdata", "test.agekey"))
	if err != nil {
		t.Fatal(err)
	}
	ageSecret := regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]+`).Find(ageKey)
	if ageSecret == nil {
		t.Fatal("test.agekey holds no AGE-SECRET-KEY")
	}
	fileCanary := fmt.Sprintf("file-canary-%d-91d2", time.Now().UnixNano())
	inputs := map[string][]byte{
		"bootstrap/secrets/age.agekey":    ageKey,
		"bootstrap/secrets/git-token.txt": []byte(fileCanary + "\n"),
	}
	for rel, data := range inputs {
		if err := os.WriteFile(filepath.Join(l.repo, rel), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	specPath := filepath.Join(l.repo, spec.DefaultPath)
	text, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	extra := `  secrets:
    - name: flux-system/sops-age
      data:
        age.agekey: {file: bootstrap/secrets/age.agekey}
    - name: flux-system/bootcore-canary
      data:
        from-file: {file: bootstrap/secrets/git-token.txt}
        from-sops: {file: bootstrap/secrets/onepassword-connect.sops.yaml, key: stringData.token}
`
	if !bytes.Contains(text, []byte("  secrets:\n")) {
		t.Fatal("lab spec has no agent.secrets")
	}
	text = bytes.Replace(text, []byte("  secrets:\n"), []byte(extra), 1)
	if err := os.WriteFile(specPath, text, 0o644); err != nil {
		t.Fatal(err)
	}

	canaries := map[string]string{
		"env token":      l.canary,
		"plain file":     fileCanary,
		"SOPS file":      "canary-token-7f3a9b", // stringData.token of the SOPS fixture
		"age key (file)": string(ageSecret),
	}
	leaks := func(where string, data []byte) {
		t.Helper()
		for what, v := range canaries {
			for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte(v + "\n"))} {
				if bytes.Contains(data, []byte(form)) {
					t.Errorf("%s holds the %s canary", where, what)
				}
			}
		}
	}

	// A failed run in text mode (install-flux cannot finish in 3s) prints its failure and writes
	// a support bundle; a second run in JSON hands over; a third finds everything done.
	bundleDir := t.TempDir()
	failed := runAgentText(t, l, c.KubeconfigPath, "infra", "--install-flux-timeout", "3s", "--bundle-dir", bundleDir)
	if failed.code != agent.ExitFailed {
		t.Fatalf("run with a 3s install-flux timeout: exit %d, want %d\n%s%s", failed.code, agent.ExitFailed, failed.stdout, failed.stderr)
	}
	bundle := regexp.MustCompile(`support bundle: (\S+\.zip)`).FindStringSubmatch(failed.stdout + failed.stderr)
	if bundle == nil {
		t.Fatalf("failed run names no support bundle:\n%s%s", failed.stdout, failed.stderr)
	}
	done := runAgent(t, l, c.KubeconfigPath, "infra")
	if done.code != agent.ExitOK {
		dumpOnFailure(t, done)
		t.Fatalf("hand-over run: exit %d", done.code)
	}
	again := runAgentText(t, l, c.KubeconfigPath, "infra")
	if again.code != agent.ExitOK {
		t.Fatalf("re-run: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}
	for i, r := range []agentRun{failed, done, again} {
		leaks(fmt.Sprintf("run %d stdout", i+1), []byte(r.stdout))
		leaks(fmt.Sprintf("run %d stderr", i+1), []byte(r.stderr))
	}

	// The bundle: only its owner may read it, and no entry holds a value.
	st, err := os.Stat(bundle[1])
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("support bundle mode %o, want 600", st.Mode().Perm())
	}
	sawSecretList := false
	for _, f := range readBundle(t, bundle[1]) {
		data := f.data
		leaks("bundle entry "+f.name, data)
		if f.name == "bootcore/secrets.txt" {
			sawSecretList = bytes.Contains(data, []byte("flux-system/bootcore-canary type=Opaque keys=from-file,from-sops")) &&
				bytes.Contains(data, []byte("flux-system/sops-age"))
		}
	}
	if !sawSecretList {
		t.Error("bundle's bootcore/secrets.txt does not list the bootstrap Secrets by name and keys")
	}

	// Every file anything wrote: the repository (minus the inputs themselves), HOME, the bundle dir.
	home := strings.TrimPrefix(l.env[len(l.env)-1], "HOME=")
	for _, dir := range []string{l.repo, home, bundleDir} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) == ".zip" {
				return err
			}
			rel, _ := filepath.Rel(l.repo, path)
			if _, input := inputs[filepath.ToSlash(rel)]; input {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			leaks(path, data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// The values are where they belong, and in no other object of the cluster.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := cs.CoreV1().Secrets("flux-system").Get(ctx, "bootcore-canary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["from-file"]) != fileCanary+"\n" || string(sec.Data["from-sops"]) != "canary-token-7f3a9b" {
		t.Errorf("Secret flux-system/bootcore-canary holds %q, %q", sec.Data["from-file"], sec.Data["from-sops"])
	}
	leaks("Secret bootcore-canary metadata (annotations, managedFields)", []byte(fmt.Sprint(sec.ObjectMeta)))
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		leaks("ConfigMap "+cm.Namespace+"/"+cm.Name, []byte(fmt.Sprint(cm.Data, cm.BinaryData, cm.Annotations)))
	}
	events, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		leaks("Event "+e.Namespace+"/"+e.Name, []byte(e.Message))
	}
}

// runAgentText runs the agent with its human output (-o text), which is what people paste into
// issues, so it gets the same scrutiny as the JSON events.
func runAgentText(t *testing.T, l *lab, kubeconfig, name string, extra ...string) agentRun {
	t.Helper()
	cmd := agentCmd(t, l, kubeconfig, name, append(extra, "-o", "text")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := agentRun{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bootcore agent: %v", err)
	}
	t.Logf("bootcore agent -o text %s: exit %d", strings.Join(extra, " "), r.code)
	return r
}
