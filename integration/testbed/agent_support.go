package testbed

// Test-bed support for `bootcore agent`'s end-to-end tests (integration/e2e): the flux-operator
// as a process, and a read-only kubeconfig. Additive only: nothing here changes the harness.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// StartFluxOperator runs the flux-operator (built by integration/tools/flux-operator/build.sh
// into <testbin>/bin, with the Flux manifests its image carries in <testbin>/flux-operator-data)
// as a process of this cluster, the way Flux's controllers run here: KUBECONFIG +
// RUNTIME_NAMESPACE, loopback ports, no leader election. It reconciles the FluxInstance "flux"
// from the embedded manifests (spec.distribution.artifact must be empty: no registry here).
// The Flux Deployments it applies become kwok pods; the real controllers are the processes
// StartFlux runs. It returns when the operator reports ready; it stops with the cluster.
func (c *Cluster) StartFluxOperator(ctx context.Context) error {
	testbin, err := CheckBinaries("flux-operator")
	if err != nil {
		return fmt.Errorf("%w (flux-operator: bash integration/tools/flux-operator/build.sh)", err)
	}
	data := filepath.Join(testbin, "flux-operator-data")
	if _, err := os.Stat(filepath.Join(data, "flux")); err != nil {
		return fmt.Errorf("flux-operator manifests missing in %s: run bash integration/tools/flux-operator/build.sh", data)
	}
	if err := c.Namespace(ctx, FluxNamespace); err != nil {
		return err
	}
	// The operator's manager exits when a kind it watches has no CRD. The CRDs of the
	// cluster's flux-operator chart (installed at boot) win; only missing ones are added.
	files, _ := filepath.Glob(filepath.Join(testbin, "crds", "flux-operator", "*.yaml"))
	if len(files) == 0 {
		return fmt.Errorf("no flux-operator CRDs in %s/crds/flux-operator: run bash integration/tools/flux-operator/build.sh", testbin)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		objs, err := DecodeYAML(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, o := range objs {
			_, err := c.Get(ctx, crdGVR, "", o.GetName())
			if apierrors.IsNotFound(err) {
				c.logf("testbed: %s: flux-operator CRD %s missing, installing it from the operator module", c.Name, o.GetName())
				err = c.ApplyObjects(ctx, o)
			}
			if err != nil {
				return err
			}
		}
	}
	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	health, err := freeAddr()
	if err != nil {
		return err
	}
	env := c.podEnv()
	if _, err := c.runPod("flux-operator", env,
		"--storage-path="+data,
		"--metrics-addr="+metrics,
		"--health-addr="+health,
		"--enable-leader-election=false",
		"--web-server-port=0",
		"--log-level=debug",
	); err != nil {
		return err
	}
	url := "http://" + health + "/readyz"
	return c.waitFor(ctx, "flux-operator "+url, 60*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// ReadOnlyKubeconfig writes a kubeconfig for a ServiceAccount that may get, list and watch
// everything and change nothing: a run with it proves that a command writes nothing (any
// write is Forbidden). Returns the file's path.
func (c *Cluster) ReadOnlyKubeconfig(ctx context.Context, name string) (string, error) {
	const ns = "kube-system"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	tok, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(c.RunDir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}
