package testbed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/kube"
)

// The lab's ClusterSecretStore, as the lab tree has it (Flux substitutes ${CLUSTER_NAME}).
const labStoreFile = "../testdata/lab/kubernetes/infrastructure/security/external-secrets/clustersecretstore.yaml"

// The real External Secrets controller on the published chart's CRDs, against the 1Password
// Connect stand-in: the lab's store becomes Ready through the bootstrap Secret's token, an
// ExternalSecret syncs an item's field into a Secret (the story's smoke test), a wrong token
// and a removed bootstrap Secret each make the store not Ready, and it recovers (E2E-007).
func TestExternalSecretsOnePassword(t *testing.T) {
	const cluster = "eso"
	c := testbed.StartT(t, testbed.Options{Name: cluster, ControlPlanes: 1, Workers: -1})
	ctx := context.Background()
	if err := c.InstallExternalSecretsCRDs(ctx); err != nil {
		t.Fatal(err)
	}

	token := fmt.Sprintf("connect-token-%d", time.Now().UnixNano())
	connect, err := testbed.StartOnePasswordConnect(token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = connect.Close() })
	connect.ServeHost(testbed.LabConnectHost)
	connect.SetItem(cluster, "grafana-admin", map[string]string{"username": "admin", "password": "from-1password-7f3a"})

	if err := c.Namespace(ctx, testbed.ExternalSecretsNamespace); err != nil {
		t.Fatal(err)
	}
	secrets := c.Client.CoreV1().Secrets(testbed.ExternalSecretsNamespace)
	bootstrap := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "onepassword-connect", Namespace: testbed.ExternalSecretsNamespace},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"token": []byte(token), "1password-credentials.json": []byte(`{"verifier":{}}`)},
	}
	if _, err := secrets.Create(ctx, bootstrap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.StartExternalSecrets(startCtx, connect); err != nil {
		t.Fatal(err)
	}

	store, err := os.ReadFile(labStoreFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, []byte(strings.ReplaceAll(string(store), "${CLUSTER_NAME}", cluster))); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitCondition(ctx, testbed.ClusterSecretStoreGVR, "", "onepassword", "Ready", time.Minute); err != nil {
		t.Fatal(err)
	}

	// Smoke test: an ExternalSecret through the store.
	if err := c.Namespace(ctx, "apps"); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, []byte(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: grafana-admin
  namespace: apps
spec:
  refreshInterval: 1h
  secretStoreRef:
    kind: ClusterSecretStore
    name: onepassword
  target:
    name: grafana-admin
  data:
    - secretKey: admin-password
      remoteRef:
        key: grafana-admin
        property: password
    - secretKey: admin-user
      remoteRef:
        key: grafana-admin
        property: username
`)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitCondition(ctx, testbed.ExternalSecretGVR, "apps", "grafana-admin", "Ready", time.Minute); err != nil {
		t.Fatal(err)
	}
	synced, err := c.Client.CoreV1().Secrets("apps").Get(ctx, "grafana-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(synced.Data["admin-password"]); got != "from-1password-7f3a" {
		t.Errorf("synced Secret apps/grafana-admin admin-password = %q, want the 1Password item's password", got)
	}
	if got := string(synced.Data["admin-user"]); got != "admin" {
		t.Errorf("synced Secret apps/grafana-admin admin-user = %q, want admin", got)
	}

	// A token Connect does not accept (rotated on the 1Password side): the store's validation
	// fails; the old token accepted again, it recovers.
	connect.SetToken(token + "-rotated")
	waitStore(t, c, "False", "InvalidProviderConfig")
	connect.SetToken(token)
	waitStore(t, c, "True", "Valid")

	// E2E-007 shape: without the bootstrap Secret the store cannot build its client; the
	// controller's event names the Secret. Restored, the store is Ready again.
	if err := secrets.Delete(ctx, bootstrap.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cond := waitStore(t, c, "False", "InvalidProviderConfig")
	if cond["message"] != "unable to create client" {
		t.Errorf("store Ready=False message %q, want the controller's \"unable to create client\"", cond["message"])
	}
	err = c.WaitFor(ctx, "a Warning event of ClusterSecretStore onepassword naming the Secret", time.Minute, func(ctx context.Context) (bool, error) {
		events, err := c.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=ClusterSecretStore,involvedObject.name=onepassword,type=Warning"})
		if err != nil {
			return false, nil
		}
		for _, e := range events.Items {
			if strings.Contains(e.Message, `"onepassword-connect"`) && strings.Contains(e.Message, `namespace "external-secrets"`) && strings.Contains(e.Message, "not found") {
				t.Logf("event: %s: %s", e.Reason, e.Message)
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	restored := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: bootstrap.Name, Namespace: bootstrap.Namespace}, Type: bootstrap.Type, Data: bootstrap.Data}
	if _, err := secrets.Create(ctx, restored, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStore(t, c, "True", "Valid")
}

// waitStore waits for the lab store's Ready condition to have status and reason, and returns it.
func waitStore(t *testing.T, c *testbed.Cluster, want, reason string) map[string]any {
	t.Helper()
	var cond map[string]any
	err := c.WaitFor(context.Background(), fmt.Sprintf("ClusterSecretStore onepassword Ready=%s %s", want, reason), time.Minute, func(ctx context.Context) (bool, error) {
		u, err := c.Get(ctx, testbed.ClusterSecretStoreGVR, "", "onepassword")
		if err != nil {
			return false, nil
		}
		cond, _ = kube.Condition(u, "Ready")
		return cond["status"] == want && cond["reason"] == reason, nil
	})
	if err != nil {
		t.Fatalf("%v (last condition: %v)", err, cond)
	}
	return cond
}

// The stand-in answers what connect-sdk-go v1.5.3 asks, in the shapes it decodes: vaults and
// items by title filter, item overviews without values, items by ID with fields; Bearer token
// auth on /v1/; proxied requests only for the hosts it stands in for.
func TestOnePasswordConnectAPI(t *testing.T) {
	connect, err := testbed.StartOnePasswordConnect("t0ken")
	if err != nil {
		t.Fatal(err)
	}
	defer connect.Close()
	vaultID := connect.AddVault("infra")
	connect.SetItem("infra", "db", map[string]string{"password": "pw"})

	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, connect.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	filter := func(title string) string { return "?filter=" + url.QueryEscape(`title eq "`+title+`"`) }

	if code, body := get("/v1/vaults", ""); code != http.StatusUnauthorized || !strings.Contains(string(body), `"status":401`) {
		t.Errorf("no token: %d %s, want 401 with Connect's error body", code, body)
	}
	if code, _ := get("/v1/vaults", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, _ := get("/heartbeat", ""); code != http.StatusOK {
		t.Errorf("/heartbeat: %d, want 200 without a token", code)
	}
	var vaults []struct{ ID, Name string }
	code, body := get("/v1/vaults"+filter("infra"), "t0ken")
	if err := json.Unmarshal(body, &vaults); code != http.StatusOK || err != nil || len(vaults) != 1 || vaults[0].ID != vaultID || len(vaultID) != 26 {
		t.Fatalf("vault by title: %d %s", code, body)
	}
	if _, body := get("/v1/vaults"+filter("other"), "t0ken"); string(body) != "[]" {
		t.Errorf("unknown vault title: %s, want []", body)
	}
	var items []struct {
		ID     string
		Vault  struct{ ID string }
		Fields []any
	}
	code, body = get("/v1/vaults/"+vaultID+"/items"+filter("db"), "t0ken")
	if err := json.Unmarshal(body, &items); code != http.StatusOK || err != nil || len(items) != 1 || items[0].Vault.ID != vaultID || items[0].Fields != nil {
		t.Fatalf("item overview by title: %d %s", code, body)
	}
	var item struct {
		Title  string
		Fields []struct{ Label, Value, Type string }
	}
	code, body = get("/v1/vaults/"+vaultID+"/items/"+items[0].ID, "t0ken")
	if err := json.Unmarshal(body, &item); code != http.StatusOK || err != nil || item.Title != "db" || len(item.Fields) != 1 || item.Fields[0].Value != "pw" || item.Fields[0].Type != "CONCEALED" {
		t.Fatalf("item by ID: %d %s", code, body)
	}
	if code, _ := get("/v1/vaults/"+vaultID+"/items/nosuchitem0000000000000000", "t0ken"); code != http.StatusNotFound {
		t.Errorf("unknown item: %d, want 404", code)
	}

	// Through it as a proxy: the served Service host answers, any other host does not.
	proxy, _ := url.Parse(connect.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	connect.ServeHost("onepassword-connect.external-secrets.svc:8080")
	for host, want := range map[string]int{"onepassword-connect.external-secrets.svc:8080": http.StatusOK, "elsewhere.example:8080": http.StatusBadGateway} {
		resp, err := client.Get("http://" + host + "/heartbeat")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("proxied to %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
