// Package chartmirror serves the published upstream charts (integration/testdata/upstream-charts)
// on loopback the way an air-gapped site's mirror does, in two ways at once:
//
//   - as a mirror: each upstream HTTP Helm repository under http://<addr>/<host>/<path>/ (an
//     index.yaml made by Helm's own repo package, and the packages), and each upstream OCI
//     repository in an OCI registry at http://<addr>/v2/<host>/<path>/<chart> (charts pushed with
//     Helm's registry client). bootcore reaches these through the spec's `mirrors:`;
//   - as the network itself: an HTTPS proxy (CONNECT) that answers for the upstream hosts
//     (helm.cilium.io, ghcr.io, ...) with certificates of its own CA and serves the same content.
//     Flux's source-controller reaches it through its cluster's network gate (testbed.NetGate, its
//     HTTPS_PROXY) and trusts its CA (SSL_CERT_FILE), so the lab's
//     HelmRepository objects name the real upstream URLs and still resolve offline.
//
// Nothing else is reachable through the proxy: a CONNECT to any other host is refused, as a
// firewall of an air-gapped site would.
package chartmirror

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// DefaultAddr is the mirror address the lab spec's `mirrors:` name.
const DefaultAddr = "127.0.0.1:5790"

// Repo is one upstream chart repository and the chart packages it publishes.
type Repo struct {
	// Upstream is the repository URL users' HelmRepository objects name:
	// https://host/path (HTTP Helm repository) or oci://host/path (OCI).
	Upstream string
	// Charts are package file names in the charts directory.
	Charts []string
}

// Upstreams are the repositories of the charts in integration/testdata/upstream-charts, as their
// projects publish them (see PROVENANCE.md there).
var Upstreams = []Repo{
	{Upstream: "https://helm.cilium.io", Charts: []string{"cilium-1.19.6.tgz"}},
	{Upstream: "https://coredns.github.io/helm", Charts: []string{"coredns-1.46.2.tgz"}},
	{Upstream: "https://charts.jetstack.io", Charts: []string{"cert-manager-v1.19.1.tgz"}},
	{Upstream: "https://charts.external-secrets.io", Charts: []string{"external-secrets-2.9.0.tgz"}},
	{Upstream: "oci://ghcr.io/controlplaneio-fluxcd/charts", Charts: []string{"flux-operator-0.49.0.tgz", "flux-instance-0.49.0.tgz"}},
}

// Mirror is a running chart mirror.
type Mirror struct {
	// Addr is host:port of the mirror and proxy on 127.0.0.1.
	Addr string
	// CAFile is the PEM certificate of the CA the proxy's host certificates chain to.
	CAFile string

	srv    *http.Server
	ln     net.Listener
	http   map[string]map[string][]byte // "host/path" -> file name -> content
	reg    http.Handler
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	hosts  map[string]bool // upstream hosts the proxy answers for
	mu     sync.Mutex
	certs  map[string]*tls.Certificate
	logger *log.Logger
}

// MirrorURL is the URL the spec's `mirrors:` entry for upstream names on this mirror.
func MirrorURL(addr, upstream string) string {
	u, err := url.Parse(upstream)
	if err != nil {
		return ""
	}
	scheme := "http"
	if u.Scheme == "oci" {
		scheme = "oci"
	}
	return scheme + "://" + addr + "/" + u.Host + strings.TrimSuffix(u.Path, "/")
}

// Start serves the charts in dir as repos describe on addr ("127.0.0.1:0" for a free port), with
// the proxy's CA written into stateDir. It returns once the OCI charts are pushed.
func Start(addr, dir, stateDir string, repos []Repo) (*Mirror, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	m := &Mirror{
		http:   map[string]map[string][]byte{},
		reg:    ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))),
		hosts:  map[string]bool{},
		certs:  map[string]*tls.Certificate{},
		logger: log.New(io.Discard, "", 0),
		CAFile: filepath.Join(stateDir, "chartmirror-ca.crt"),
	}
	if err := m.newCA(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("chart mirror: %w", err)
	}
	m.ln, m.Addr = ln, ln.Addr().String()
	m.srv = &http.Server{Handler: m, ReadHeaderTimeout: 30 * time.Second}
	go m.srv.Serve(ln)

	var oci []pushItem
	for _, r := range repos {
		u, err := url.Parse(r.Upstream)
		if err != nil || u.Host == "" {
			m.Close()
			return nil, fmt.Errorf("chart mirror: bad upstream %q", r.Upstream)
		}
		m.hosts[u.Host] = true
		key := u.Host + strings.TrimSuffix(u.Path, "/")
		for _, name := range r.Charts {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				m.Close()
				return nil, fmt.Errorf("chart mirror: %w", err)
			}
			if u.Scheme == "oci" {
				oci = append(oci, pushItem{repo: key, data: data})
				continue
			}
			if m.http[key] == nil {
				m.http[key] = map[string][]byte{}
			}
			m.http[key][name] = data
		}
		if u.Scheme != "oci" {
			index, err := indexFor(m.http[key])
			if err != nil {
				m.Close()
				return nil, fmt.Errorf("chart mirror: index of %s: %w", r.Upstream, err)
			}
			m.http[key]["index.yaml"] = index
		}
	}
	if err := m.push(oci); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

type pushItem struct {
	repo string // host/path of the OCI repository
	data []byte
}

// push uploads OCI charts through the mirror's own registry API, as `helm push` would.
func (m *Mirror) push(items []pushItem) error {
	if len(items) == 0 {
		return nil
	}
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptWriter(io.Discard))
	if err != nil {
		return err
	}
	for _, it := range items {
		ch, err := loader.LoadArchive(bytes.NewReader(it.data))
		if err != nil {
			return fmt.Errorf("chart mirror: %w", err)
		}
		ref := fmt.Sprintf("%s/%s/%s:%s", m.Addr, it.repo, ch.Name(), ch.Metadata.Version)
		// A fixed creation time keeps the manifest, hence its digest, the same on every start.
		created := registry.PushOptCreationTime("2026-01-01T00:00:00Z")
		if _, err := client.Push(it.data, ref, registry.PushOptStrictMode(false), created); err != nil {
			return fmt.Errorf("chart mirror: pushing %s: %w", ref, err)
		}
	}
	return nil
}

// indexFor builds index.yaml for the packages with Helm's repo package; URLs are relative to the
// repository, as `helm repo index` writes them, so the index works under any base URL.
func indexFor(files map[string][]byte) ([]byte, error) {
	idx := repo.NewIndexFile()
	for name, data := range files {
		ch, err := loader.LoadArchive(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := idx.MustAdd(ch.Metadata, name, "", digestOf(data)); err != nil {
			return nil, err
		}
	}
	idx.SortEntries()
	// A fixed Generated time keeps the index byte-identical across runs.
	idx.Generated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, vs := range idx.Entries {
		for _, v := range vs {
			v.Created = idx.Generated
		}
	}
	return yaml.Marshal(idx)
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Close stops the server.
func (m *Mirror) Close() error {
	if m.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.srv.Shutdown(ctx)
}

// ServeHTTP serves the mirror paths, the registry API and the proxy's CONNECT.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		m.connect(w, r)
		return
	}
	m.serveMirror(w, r)
}

func (m *Mirror) serveMirror(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
		m.reg.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read-only mirror", http.StatusMethodNotAllowed)
		return
	}
	dir, file := path.Split(strings.TrimPrefix(r.URL.Path, "/"))
	files := m.http[strings.TrimSuffix(dir, "/")]
	data, ok := files[file]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if file == "index.yaml" {
		w.Header().Set("Content-Type", "application/x-yaml")
	} else {
		w.Header().Set("Content-Type", "application/gzip")
	}
	http.ServeContent(w, r, file, time.Time{}, bytes.NewReader(data))
}

// connect answers a CONNECT to an upstream host: TLS with a certificate for that host, then the
// host's content (requests rewritten onto the mirror paths).
func (m *Mirror) connect(w http.ResponseWriter, r *http.Request) {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil || port != "443" || !m.hosts[host] {
		http.Error(w, "chart mirror proxy: "+r.Host+" is not reachable from here", http.StatusForbidden)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "no hijack", http.StatusInternalServerError)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		conn.Close()
		return
	}
	cert, err := m.certFor(host)
	if err != nil {
		conn.Close()
		return
	}
	tconn := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"http/1.1"}})
	go m.serveTunnel(tconn, host)
}

// serveTunnel serves HTTP/1.1 requests for host on one proxied TLS connection.
func (m *Mirror) serveTunnel(conn *tls.Conn, host string) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		rw := newConnResponse()
		p := req.URL.Path
		if p == "/v2" || strings.HasPrefix(p, "/v2/") {
			if rest := strings.TrimPrefix(strings.TrimPrefix(p, "/v2"), "/"); rest != "" {
				req.URL.Path = "/v2/" + host + "/" + rest
			}
		} else {
			req.URL.Path = "/" + host + p
		}
		m.serveMirror(rw, req)
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		if err := rw.writeTo(conn, req); err != nil {
			return
		}
		if req.Close {
			return
		}
	}
}

func (m *Mirror) newCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bootcore test-bed chart mirror CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	m.ca, err = x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	m.caKey = key
	return os.WriteFile(m.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func (m *Mirror) certFor(host string) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.certs[host]; ok {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca, &key.PublicKey, m.caKey)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	m.certs[host] = c
	return c, nil
}

// IsUpstreamHost reports whether the proxy answers for host.
func (m *Mirror) IsUpstreamHost(host string) bool { return m.hosts[host] }

// connResponse buffers one response of a tunnelled request.
type connResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newConnResponse() *connResponse { return &connResponse{header: http.Header{}} }

func (c *connResponse) Header() http.Header { return c.header }

func (c *connResponse) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *connResponse) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(p)
}

func (c *connResponse) writeTo(w io.Writer, req *http.Request) error {
	c.WriteHeader(http.StatusOK)
	resp := &http.Response{
		StatusCode: c.status, ProtoMajor: 1, ProtoMinor: 1, Request: req, Header: c.header,
		ContentLength: int64(c.body.Len()), Body: io.NopCloser(&c.body),
	}
	return resp.Write(w)
}
