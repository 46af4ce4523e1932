package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type workflowStep struct {
	Name  string `json:"name"`
	Uses  string `json:"uses"`
	Run   string `json:"run"`
	Shell string `json:"shell"`
}

type workflow struct {
	Defaults struct {
		Run struct {
			Shell string `json:"shell"`
		} `json:"run"`
	} `json:"defaults"`
	Env  map[string]string `json:"env"`
	Jobs map[string]struct {
		Defaults struct {
			Run struct {
				Shell string `json:"shell"`
			} `json:"run"`
		} `json:"defaults"`
		Steps []workflowStep `json:"steps"`
	} `json:"jobs"`
}

// The README's CI section points at this workflow: it must run a pinned, verified bootcore,
// not a moving target, and fail when a command in a pipe fails.
func TestCIWorkflowPinned(t *testing.T) {
	lintWorkflow(t, "../../.github/workflows/bootcore.yaml", true)
}

// The lint catches what the workflow used to do.
func TestCIWorkflowLintCatches(t *testing.T) {
	bad := `jobs:
  check:
    steps:
      - uses: actions/setup-go@v5
      - run: go run github.com/bootcore-dev/bootcore/cmd/bootcore@latest check -o json | tee check.json
`
	p := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	ft := &fakeT{}
	lintWorkflowOn(ft, p, false)
	for _, want := range []string{"@latest", "pipefail", "go run", "check -o github"} {
		if !strings.Contains(strings.Join(ft.errs, "\n"), want) {
			t.Errorf("the lint did not report %q on the old workflow: %q", want, ft.errs)
		}
	}
}

type lintT interface {
	Helper()
	Errorf(format string, args ...any)
	Fatal(args ...any)
}

type fakeT struct{ errs []string }

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errs = append(f.errs, strings.TrimSpace(strings.ReplaceAll(format, "%", "")))
}
func (f *fakeT) Fatal(args ...any) { f.errs = append(f.errs, "fatal") }

func lintWorkflow(t *testing.T, path string, pinned bool) {
	t.Helper()
	lintWorkflowOn(t, path, pinned)
}

// pipe matches a shell pipe, not ||.
var pipe = regexp.MustCompile(`(^|[^|])\|([^|]|$)`)

func lintWorkflowOn(t lintT, path string, pinned bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wf workflow
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if strings.Contains(text, "@latest") {
		t.Errorf("%s: @latest: pin versions", path)
	}
	if regexp.MustCompile(`go (run|install) [^\n]*bootcore`).MatchString(text) {
		t.Errorf("%s: go run/go install of bootcore: go.mod's replace directives forbid it; use the release binary", path)
	}
	ranCheck := false
	for name, job := range wf.Jobs {
		for i, s := range job.Steps {
			if s.Run == "" {
				continue
			}
			shell := s.Shell
			if shell == "" {
				shell = job.Defaults.Run.Shell
			}
			if shell == "" {
				shell = wf.Defaults.Run.Shell
			}
			// An explicit bash shell runs with -eo pipefail; the implicit default does not.
			underPipefail := shell == "bash" || strings.Contains(s.Run, "set -o pipefail") || strings.Contains(shell, "pipefail")
			for _, line := range strings.Split(s.Run, "\n") {
				if pipe.MatchString(line) && !underPipefail {
					t.Errorf("%s: job %s step %d: a pipe without pipefail: %q", path, name, i, line)
				}
			}
			if strings.Contains(s.Run, "bootcore check") {
				ranCheck = true
				if !strings.Contains(s.Run, "check -o github") {
					t.Errorf("%s: job %s step %d: run check -o github (annotations) or use the JSON it writes", path, name, i)
				}
			}
		}
	}
	if !ranCheck {
		t.Errorf("%s: no step runs bootcore check -o github", path)
	}
	if pinned {
		if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(wf.Env["BOOTCORE_VERSION"]) {
			t.Errorf("%s: BOOTCORE_VERSION %q: pin a release", path, wf.Env["BOOTCORE_VERSION"])
		}
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(wf.Env["BOOTCORE_SHA256"]) || !strings.Contains(text, `sha256sum -c`) {
			t.Errorf("%s: the binary must be verified against a pinned BOOTCORE_SHA256", path)
		}
	}
}
