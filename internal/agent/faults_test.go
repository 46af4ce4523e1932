package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
)

// flakyPhase fails its check and its run with a transient error a few times each.
type flakyPhase struct {
	checkFails, runFails int
	runs                 int
	done                 bool
	err                  error
}

func (p *flakyPhase) Name() string  { return "flaky" }
func (p *flakyPhase) Title() string { return "flaky" }
func (p *flakyPhase) Done(context.Context) (Outcome[struct{}], error) {
	if p.checkFails > 0 {
		p.checkFails--
		return Outcome[struct{}]{}, p.err
	}
	return Outcome[struct{}]{Done: p.done, Why: "done"}, nil
}
func (p *flakyPhase) Run(context.Context) (struct{}, error) {
	p.runs++
	if p.runFails > 0 {
		p.runFails--
		return struct{}{}, p.err
	}
	p.done = true
	return struct{}{}, nil
}

// An API server that refuses connections for a while (restart) is waited out: the check and
// the run are retried; a permanent error is not retried; retries stop at the phase timeout.
func TestManagerRetriesTransientErrors(t *testing.T) {
	refused := fmt.Errorf("helm install: %w", syscall.ECONNREFUSED)
	p := &flakyPhase{checkFails: 1, runFails: 1, err: refused}
	var out bytes.Buffer
	m := &Manager{Reporter: NewReporter(&out, false)}
	if _, err := RunPhase(context.Background(), m, p); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if p.runs != 2 || strings.Count(out.String(), "retrying in") != 2 || strings.Count(out.String(), "► flaky") != 1 {
		t.Errorf("runs=%d, output:\n%s", p.runs, out.String())
	}

	p = &flakyPhase{runFails: 5, err: errors.New("invalid spec")}
	m = &Manager{Reporter: NewReporter(io.Discard, false)}
	if _, err := RunPhase(context.Background(), m, p); err == nil || p.runs != 1 {
		t.Errorf("permanent error: err=%v runs=%d, want one run", err, p.runs)
	}

	p = &flakyPhase{runFails: 1000, err: refused}
	m = &Manager{Reporter: NewReporter(io.Discard, false), Timeouts: map[string]time.Duration{"flaky": 1500 * time.Millisecond}}
	var pe *PhaseError
	if _, err := RunPhase(context.Background(), m, p); !errors.As(err, &pe) || pe.Timeout == 0 || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("retries past the timeout: %v", err)
	}
}

// A Helm release left pending by a killed agent, or failed before it was ever deployed, is
// discarded so the next attempt leaves no failed or pending revision; a failed upgrade on
// top of a deployed revision stays (Helm's own history).
func TestDiscardInterruptedReleases(t *testing.T) {
	rel := func(v int, st release.Status) *release.Release {
		return &release.Release{Name: "flux-operator", Namespace: "flux-system", Version: v,
			Info: &release.Info{Status: st}, Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "flux-operator", Version: "1.0.0"}}}
	}
	fr := fluxRelease{id: "flux-system/flux-operator", rel: &fluxtree.Release{HR: &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "flux-operator", Namespace: "flux-system"}}}}
	for _, c := range []struct {
		name    string
		history []*release.Release
		want    string
	}{
		{"killed mid-install", []*release.Release{rel(1, release.StatusPendingInstall)}, ""},
		{"first install failed", []*release.Release{rel(1, release.StatusFailed), rel(2, release.StatusFailed)}, ""},
		{"killed mid-upgrade", []*release.Release{rel(1, release.StatusDeployed), rel(2, release.StatusPendingUpgrade)}, "1:deployed"},
		{"failed upgrade stays", []*release.Release{rel(1, release.StatusSuperseded), rel(2, release.StatusDeployed), rel(3, release.StatusFailed)}, "1:superseded 2:deployed 3:failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := &action.Configuration{Releases: storage.Init(driver.NewMemory())}
			for _, r := range c.history {
				if err := cfg.Releases.Create(r); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			if err := discardInterrupted(NewReporter(&out, false), cfg, fr); err != nil {
				t.Fatal(err)
			}
			h, _ := cfg.Releases.History("flux-operator")
			var got []string
			for v := 1; v <= 3; v++ {
				for _, r := range h {
					if r.Version == v {
						got = append(got, fmt.Sprintf("%d:%s", v, r.Info.Status))
					}
				}
			}
			if strings.Join(got, " ") != c.want {
				t.Errorf("history %v, want %q\n%s", got, c.want, out.String())
			}
		})
	}
}
