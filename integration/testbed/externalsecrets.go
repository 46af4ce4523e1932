package testbed

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bootcore-dev/bootcore/internal/render"
)

// The External Secrets controller (github.com/external-secrets/external-secrets, built by
// `make testbin`, group external-secrets) runs as a process of the cluster, as the Flux
// controllers do. In a cluster it is the pod of Deployment external-secrets/external-secrets;
// here that Deployment's pods are kwok pods and this process does their work.

// ExternalSecretsNamespace is where the lab installs External Secrets and its bootstrap Secret.
const ExternalSecretsNamespace = "external-secrets"

// GroupVersionResources of the External Secrets objects tests read and create.
var (
	ClusterSecretStoreGVR = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "clustersecretstores"}
	SecretStoreGVR        = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "secretstores"}
	ExternalSecretGVR     = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
)

// externalSecretsCRDs are the kinds the controller watches with the reconcilers the chart
// enables by default (its manager exits when one is not served).
var externalSecretsCRDs = []string{
	"externalsecrets.external-secrets.io",
	"secretstores.external-secrets.io",
	"clustersecretstores.external-secrets.io",
	"clusterexternalsecrets.external-secrets.io",
	"pushsecrets.external-secrets.io",
	"clusterpushsecrets.external-secrets.io",
	"generatorstates.generators.external-secrets.io",
}

// ExternalSecretsChart is the published external-secrets chart the lab installs (phase 0 boots
// its templated CRDs), relative to the repository root.
const ExternalSecretsChart = "integration/testdata/upstream-charts/external-secrets-2.9.0.tgz"

// LabConnectHost is the Service the lab's ClusterSecretStore names as its connectHost
// (kubernetes/infrastructure/security/external-secrets/clustersecretstore.yaml in the lab tree).
const LabConnectHost = "onepassword-connect.external-secrets.svc:8080"

// storeRequeueInterval replaces the controller's 5-minute default between store validations:
// a store does not watch the Secrets it references, so a removed or restored token shows on
// the store at its next validation only.
const storeRequeueInterval = 2 * time.Second

// ExternalSecretsCRDs renders the CRDs of the external-secrets chart package at chartPath (a
// .tgz, or relative to the repository root) with its default values, as `helm template`
// renders them: they are templates (templates/crds/), not files of a crds/ directory.
func ExternalSecretsCRDs(chartPath string) ([]*unstructured.Unstructured, error) {
	if !filepath.IsAbs(chartPath) {
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		chartPath = filepath.Join(root, chartPath)
	}
	ch, err := loader.Load(chartPath)
	if err != nil {
		return nil, err
	}
	objs, err := render.Render(render.Input{Chart: ch, ReleaseName: "external-secrets", Namespace: ExternalSecretsNamespace, KubeVersion: "1.35.4"})
	if err != nil {
		return nil, err
	}
	var crds []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o.Unstructured)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("%s renders no CRDs", chartPath)
	}
	return crds, nil
}

// InstallExternalSecretsCRDs applies the CRDs of the published external-secrets chart
// (ExternalSecretsChart), for tests that do not boot phase 0.
func (c *Cluster) InstallExternalSecretsCRDs(ctx context.Context) error {
	crds, err := ExternalSecretsCRDs(ExternalSecretsChart)
	if err != nil {
		return err
	}
	return c.ApplyObjects(ctx, crds...)
}

// StartExternalSecrets runs the External Secrets core controller (no webhook, no cert
// controller: stores and ExternalSecrets need neither) as a process of this cluster:
// KUBECONFIG, metrics and health on loopback, no leader election, all namespaces. Its HTTP
// proxy is connect, so a store whose connectHost is a host connect serves (ServeHost) reaches
// it as it would reach the Connect Service in a cluster. The External Secrets CRDs must be
// installed (phase 0, or InstallExternalSecretsCRDs). It returns when the controller reports
// healthy; it stops with the cluster.
func (c *Cluster) StartExternalSecrets(ctx context.Context, connect *OnePasswordConnect) error {
	if _, err := CheckBinaries("external-secrets"); err != nil {
		return err
	}
	if connect == nil {
		return fmt.Errorf("external-secrets: no 1Password Connect server given")
	}
	var missing []string
	for _, name := range externalSecretsCRDs {
		if _, err := c.Get(ctx, crdGVR, "", name); apierrors.IsNotFound(err) {
			missing = append(missing, name)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("external-secrets needs CRDs %s (phase 0 installs them, or InstallExternalSecretsCRDs)", strings.Join(missing, ", "))
	}
	for _, name := range externalSecretsCRDs {
		if err := c.WaitCRDEstablished(ctx, name, 30*time.Second); err != nil {
			return err
		}
	}
	if err := c.Namespace(ctx, ExternalSecretsNamespace); err != nil {
		return err
	}
	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	health, err := freeAddr()
	if err != nil {
		return err
	}
	env := []string{
		"KUBECONFIG=" + c.KubeconfigPath,
		"HTTP_PROXY=" + connect.URL, "http_proxy=" + connect.URL,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
	}
	if _, err := c.runPod("external-secrets", env,
		"--metrics-addr="+metrics,
		"--live-addr="+health,
		"--enable-leader-election=false",
		"--store-requeue-interval="+storeRequeueInterval.String(),
		"--loglevel=debug",
		"--zap-time-encoding=iso8601",
	); err != nil {
		return err
	}
	// The manager registers a liveness check only (healthz); it answers once the manager runs.
	url := "http://" + health + "/healthz"
	if err := c.waitFor(ctx, "external-secrets "+url, 60*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return err
	}
	c.logf("testbed: %s: external-secrets controller running (1Password Connect stand-in at %s)", c.Name, connect.URL)
	return nil
}

// StartLabExternalSecrets runs External Secrets for a cluster booted from the lab: a 1Password
// Connect stand-in that accepts token (the bootstrap Secret's `token`), serves LabConnectHost
// and has the vault the lab's store names (the cluster's name), then the controller. The
// stand-in stops with the cluster.
func (c *Cluster) StartLabExternalSecrets(ctx context.Context, token string) (*OnePasswordConnect, error) {
	connect, err := StartOnePasswordConnect(token)
	if err != nil {
		return nil, err
	}
	connect.ServeHost(LabConnectHost)
	connect.AddVault(c.Name)
	c.onStop(connect.Close)
	if err := c.StartExternalSecrets(ctx, connect); err != nil {
		return nil, err
	}
	return connect, nil
}
