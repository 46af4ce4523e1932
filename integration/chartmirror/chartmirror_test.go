package chartmirror

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

const charts = "../testdata/upstream-charts"

func start(t *testing.T) *Mirror {
	t.Helper()
	m, err := Start("127.0.0.1:0", charts, t.TempDir(), Upstreams)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// viaProxy is a client configured the way the test bed configures source-controller: the
// mirror as HTTPS proxy, and its CA as the only trusted root.
func viaProxy(t *testing.T, m *Mirror) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA in", m.CAFile)
	}
	proxy, _ := url.Parse("http://" + m.Addr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// The mirror path and the upstream URL through the proxy serve the same index, listing the
// published package with its sha256.
func TestHTTPRepositoryTwoWays(t *testing.T) {
	m := start(t)
	code, mirrored := get(t, http.DefaultClient, MirrorURL(m.Addr, "https://helm.cilium.io")+"/index.yaml")
	if code != http.StatusOK || !strings.Contains(mirrored, "version: 1.19.6") ||
		!strings.Contains(mirrored, "21c43cf53841f9ab0375047d95aa4c64051ea52bbd2c679416e6408f5f1c9179") {
		t.Fatalf("mirror index: %d\n%s", code, mirrored)
	}
	code, proxied := get(t, viaProxy(t, m), "https://helm.cilium.io/index.yaml")
	if code != http.StatusOK || proxied != mirrored {
		t.Errorf("through the proxy: %d, same as the mirror: %v", code, proxied == mirrored)
	}
	pkg, err := os.ReadFile(charts + "/cilium-1.19.6.tgz")
	if err != nil {
		t.Fatal(err)
	}
	if code, got := get(t, viaProxy(t, m), "https://helm.cilium.io/cilium-1.19.6.tgz"); code != http.StatusOK || got != string(pkg) {
		t.Errorf("package through the proxy: %d, identical to the published file: %v", code, got == string(pkg))
	}
}

// The OCI charts are in the registry under the mirror path and, through the proxy, under the
// upstream registry's own repository names.
func TestOCIRegistryTwoWays(t *testing.T) {
	m := start(t)
	code, tags := get(t, http.DefaultClient, "http://"+m.Addr+"/v2/ghcr.io/controlplaneio-fluxcd/charts/flux-operator/tags/list")
	if code != http.StatusOK || !strings.Contains(tags, "0.49.0") {
		t.Fatalf("mirror tags: %d %s", code, tags)
	}
	code, proxied := get(t, viaProxy(t, m), "https://ghcr.io/v2/controlplaneio-fluxcd/charts/flux-instance/tags/list")
	if code != http.StatusOK || !strings.Contains(proxied, "0.49.0") {
		t.Errorf("through the proxy: %d %s", code, proxied)
	}
}

// The proxy is no way out: a host that is not an upstream chart repository is refused.
func TestProxyRefusesOtherHosts(t *testing.T) {
	m := start(t)
	_, err := viaProxy(t, m).Get("https://example.com/")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("GET https://example.com through the proxy: want Forbidden, got %v", err)
	}
}
