package agent

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
)

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
