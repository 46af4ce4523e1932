package chartsource

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/repo"
)

// The published flux-operator package (integration/testdata/upstream-charts, unmodified).
const fluxOperatorTgz = "../../integration/testdata/upstream-charts/flux-operator-0.49.0.tgz"

// fluxOperatorUpstream is where the real tree's HelmRepository points; it is only ever mirrored.
const fluxOperatorUpstream = "oci://ghcr.io/controlplaneio-fluxcd/charts"

func readPackage(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// serveHTTPRepo serves archives (file name -> bytes) as an HTTP Helm repository on loopback.
func serveHTTPRepo(t *testing.T, archives map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range archives {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := repo.IndexDirectory(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// repackage returns the package with one file's content changed and the version kept: what a
// republished chart looks like.
func repackage(t *testing.T, data []byte, file, appendText string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == file {
			body, found = append(body, appendText...), true
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("%s not in the package", file)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Defect 5 of issue 13: the same published package, mirrored once as an HTTP repository and once
// as an OCI registry (both on loopback), is locked with the same digest, so switching the
// mirror's protocol is not "republished"; a changed package under the same version still is,
// through either protocol.
func TestLockDigestIndependentOfMirrorProtocol(t *testing.T) {
	pkg := readPackage(t, fluxOperatorTgz)
	httpURL := serveHTTPRepo(t, map[string][]byte{"flux-operator-0.49.0.tgz": pkg})
	host, _ := newRegistry(t)
	push(t, host+"/charts/flux-operator:0.49.0", pkg)
	src := Source{Kind: KindHelmRepository, URL: fluxOperatorUpstream, Chart: "flux-operator", Version: "0.49.0", Origin: origin}
	viaHTTP := []Mirror{{Upstream: fluxOperatorUpstream, Mirror: httpURL}}
	viaOCI := []Mirror{{Upstream: fluxOperatorUpstream, Mirror: "oci://" + host + "/charts"}}

	h := mustFetch(t, &Fetcher{Mirrors: viaHTTP, CacheDir: t.TempDir()}, src)
	o := mustFetch(t, &Fetcher{Mirrors: viaOCI, CacheDir: t.TempDir()}, src)
	want := LockEntry{Source: fluxOperatorUpstream, Chart: "flux-operator", Version: "0.49.0", Digest: sha256Digest(pkg)}
	for name, res := range map[string]*Result{"http": h, "oci": o} {
		if len(res.Lock) != 1 || res.Lock[0] != want || res.Digest != want.Digest {
			t.Errorf("through the %s mirror: lock %+v, digest %s; want [%+v]", name, res.Lock, res.Digest, want)
		}
	}
	t.Logf("flux-operator 0.49.0 locked as %s through both mirrors", want.Digest)

	// Locked through one protocol, fetched through the other: the same chart, no error.
	lock := &Lock{}
	lock.Record(h.Lock[0])
	mustFetch(t, &Fetcher{Mirrors: viaOCI, Lock: lock, CacheDir: t.TempDir()}, src)
	lock = &Lock{}
	lock.Record(o.Lock[0])
	mustFetch(t, &Fetcher{Mirrors: viaHTTP, Lock: lock, CacheDir: t.TempDir()}, src)

	// Republished: same version, one changed file; both protocols refuse it against the lock.
	changed := repackage(t, pkg, "flux-operator/values.yaml", "\n# republished\n")
	httpChanged := serveHTTPRepo(t, map[string][]byte{"flux-operator-0.49.0.tgz": changed})
	host2, _ := newRegistry(t)
	push(t, host2+"/charts/flux-operator:0.49.0", changed)
	for name, mirrors := range map[string][]Mirror{
		"http": {{Upstream: fluxOperatorUpstream, Mirror: httpChanged}},
		"oci":  {{Upstream: fluxOperatorUpstream, Mirror: "oci://" + host2 + "/charts"}},
	} {
		lock := &Lock{}
		lock.Record(want)
		_, err := (&Fetcher{Mirrors: mirrors, Lock: lock, CacheDir: t.TempDir()}).Fetch(t.Context(), src)
		if err == nil || !strings.Contains(err.Error(), "republished") || !strings.Contains(err.Error(), sha256Digest(changed)) {
			t.Errorf("republished package through the %s mirror: err = %v", name, err)
		}
	}
}

// A lock written before archive digests holds the OCI manifest digest of an OCI chart: it is
// still the same chart (the registry serves that manifest), so gen accepts it and records the
// archive digest instead; the cache written then is still used offline.
func TestOldOCILockEntryIsRelocked(t *testing.T) {
	pkg := readPackage(t, fluxOperatorTgz)
	host, regSrv := newRegistry(t)
	manifest := push(t, host+"/charts/flux-operator:0.49.0", pkg)
	src := Source{Kind: KindHelmRepository, URL: "oci://" + host + "/charts", Chart: "flux-operator", Version: "0.49.0", Origin: origin}
	old := LockEntry{Source: src.URL, Chart: "flux-operator", Version: "0.49.0", Digest: manifest}

	lock := &Lock{}
	lock.Record(old)
	res := mustFetch(t, &Fetcher{Lock: lock}, src)
	if want := sha256Digest(pkg); res.Lock[0].Digest != want {
		t.Errorf("old lock entry re-locked as %s, want the archive digest %s", res.Lock[0].Digest, want)
	}

	// The cache layout of before (archive and manifest keyed by the manifest digest) still serves
	// the old entry offline.
	cacheDir := t.TempDir()
	if err := (cache{dir: cacheDir}).put(old, pkg, manifestOf(t, host, "charts/flux-operator", manifest)); err != nil {
		t.Fatal(err)
	}
	regSrv.Close()
	res = mustFetch(t, &Fetcher{Lock: lock, CacheDir: cacheDir}, src)
	if res.Lock[0].Digest != sha256Digest(pkg) {
		t.Errorf("offline: lock %+v", res.Lock[0])
	}
}

// manifestOf downloads a manifest from the loopback registry.
func manifestOf(t *testing.T, host, repository, digest string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+host+"/v2/"+repository+"/manifests/"+digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest %s: %v %s", digest, err, resp.Status)
	}
	return data
}
