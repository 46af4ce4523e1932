package testbed

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// FluxNamespace is where the Flux controllers' runtime objects live.
const FluxNamespace = "flux-system"

// GroupVersionResources of the Flux objects tests create.
var (
	GitRepositoryGVR = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	KustomizationGVR = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	HelmReleaseGVR   = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}
	HelmChartGVR     = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmcharts"}
)

// Flux describes the Flux controllers running against a cluster.
type Flux struct {
	// StorageAddr is source-controller's artifact server (127.0.0.1:port);
	// artifact URLs in GitRepository status point there.
	StorageAddr string
}

// StartFlux installs the CRDs of source-controller, kustomize-controller and
// helm-controller (from the modules `make testbin` built them from) and runs
// the three controllers as processes of this cluster, the way they run
// outside a cluster: KUBECONFIG + RUNTIME_NAMESPACE, own loopback ports, no
// leader election, all namespaces watched. It returns when each reports
// ready on its health port. They stop with the cluster.
func (c *Cluster) StartFlux(ctx context.Context) (*Flux, error) {
	if _, err := CheckBinaries(fluxBinaries...); err != nil {
		return nil, err
	}
	if err := c.Namespace(ctx, FluxNamespace); err != nil {
		return nil, err
	}
	for _, ctrl := range fluxBinaries {
		files, _ := filepath.Glob(filepath.Join(c.testbin, "crds", ctrl, "*.yaml"))
		if len(files) == 0 {
			return nil, fmt.Errorf("no CRDs for %s in %s/crds: run `make testbin`", ctrl, c.testbin)
		}
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if err := c.Apply(ctx, data); err != nil {
				return nil, fmt.Errorf("%s CRD %s: %w", ctrl, filepath.Base(f), err)
			}
		}
	}

	f := &Flux{}
	var err error
	if f.StorageAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	env := c.podEnv()
	healthAddrs := map[string]string{}
	for _, ctrl := range fluxBinaries {
		metrics, err := freeAddr()
		if err != nil {
			return nil, err
		}
		health, err := freeAddr()
		if err != nil {
			return nil, err
		}
		healthAddrs[ctrl] = health
		args := []string{
			"--metrics-addr=" + metrics,
			"--health-addr=" + health,
			"--enable-leader-election=false",
			"--watch-all-namespaces=true",
			"--log-level=debug",
		}
		if ctrl == "source-controller" {
			storage := filepath.Join(c.RunDir, "flux", "storage")
			if err := os.MkdirAll(storage, 0o755); err != nil {
				return nil, err
			}
			args = append(args,
				"--storage-path="+storage,
				"--storage-addr="+f.StorageAddr,
				"--storage-adv-addr="+f.StorageAddr,
			)
		}
		if ctrl == "kustomize-controller" || ctrl == "helm-controller" {
			// The 30s default between dependsOn checks dominates a hand-over on the test bed.
			args = append(args, "--requeue-dependency=5s")
		}
		if _, err := c.runPod(ctrl, env, args...); err != nil {
			return nil, err
		}
	}
	for _, ctrl := range fluxBinaries {
		url := "http://" + healthAddrs[ctrl] + "/readyz"
		if err := c.waitFor(ctx, ctrl+" "+url, 60*time.Second, func(ctx context.Context) (bool, error) {
			resp, err := http.Get(url)
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		}); err != nil {
			return nil, err
		}
	}
	c.logf("testbed: %s: Flux controllers ready (artifacts at %s)", c.Name, f.StorageAddr)
	return f, nil
}
