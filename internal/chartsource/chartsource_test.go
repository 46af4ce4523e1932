package chartsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
)

// testRoot is a Git repository layout holding charts/demo (which depends on charts/common through
// file://../common).
const testRoot = "testdata/repo"

const origin = "HelmRelease test/demo (apps/demo/helmrelease.yaml)"

func TestMain(m *testing.M) {
	// Helm's registry client reads Helm's and Docker's credential files: keep the tests away
	// from the user's.
	dir, err := os.MkdirTemp("", "chartsource-test-")
	if err != nil {
		log.Fatal(err)
	}
	os.Setenv("HELM_CONFIG_HOME", dir)
	os.Setenv("DOCKER_CONFIG", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// packageDemo packages charts/demo at a version with its file:// dependency included, as
// `helm package --dependency-update` would, and returns the archive.
func packageDemo(t *testing.T, version string) []byte {
	t.Helper()
	ch, err := loader.LoadDir(filepath.Join(testRoot, "charts/demo"))
	if err != nil {
		t.Fatal(err)
	}
	dep, err := loader.LoadDir(filepath.Join(testRoot, "charts/common"))
	if err != nil {
		t.Fatal(err)
	}
	ch.AddDependency(dep)
	ch.Metadata.Version = version
	p, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// httpRepo is a Helm chart repository on loopback.
type httpRepo struct {
	srv      *httptest.Server
	archives map[string][]byte // by version
}

// newHTTPRepo serves the demo chart at the given versions. The index's archive URLs are relative
// when base is "", else absolute under base.
func newHTTPRepo(t *testing.T, base string, versions ...string) *httpRepo {
	t.Helper()
	dir := t.TempDir()
	r := &httpRepo{archives: map[string][]byte{}}
	for _, v := range versions {
		r.archives[v] = packageDemo(t, v)
		if err := os.WriteFile(filepath.Join(dir, "demo-"+v+".tgz"), r.archives[v], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.srv = httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(r.srv.Close)
	if base == hrBaseAbsolute {
		base = r.srv.URL
	}
	idx, err := repo.IndexDirectory(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// newRegistry starts an OCI registry on loopback and returns its host:port.
func newRegistry(t *testing.T) (string, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), srv
}

// push pushes a chart archive with Helm's registry client and returns the manifest digest.
func push(t *testing.T, ref string, data []byte) string {
	t.Helper()
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Push(data, ref, registry.PushOptStrictMode(false))
	if err != nil {
		t.Fatal(err)
	}
	return res.Manifest.Digest
}

// deadURL returns a loopback address nothing listens on: connections are refused at once.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// describe flattens what matters for rendering: metadata, values, templates, files (crds/),
// dependencies, and the rendered manifests and CRDs.
func describe(t *testing.T, ch *chart.Chart) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string, c *chart.Chart)
	walk = func(prefix string, c *chart.Chart) {
		out[prefix+"meta"] = c.Name()
		values, _ := json.Marshal(c.Values)
		out[prefix+"values"] = string(values)
		for _, f := range c.Templates {
			out[prefix+"template:"+f.Name] = string(f.Data)
		}
		for _, f := range c.Files {
			out[prefix+"file:"+f.Name] = string(f.Data)
		}
		for _, d := range c.Dependencies() {
			walk(prefix+"dep:"+d.Name()+"/", d)
		}
	}
	walk("", ch)

	// As helm-controller: dependency processing (conditions, import-values), then rendering.
	if err := chartutil.ProcessDependenciesWithMerge(ch, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, map[string]any{},
		chartutil.ReleaseOptions{Name: "rel", Namespace: "ns", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range rendered {
		out["render:"+name] = body
	}
	for _, crd := range ch.CRDObjects() {
		out["crd:"+crd.Name] = string(crd.File.Data)
	}
	return out
}

func diff(a, b map[string]string) string {
	var keys []string
	for k := range a {
		if a[k] != b[k] {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s:\n  want %q\n  got  %q\n", k, a[k], b[k])
	}
	return sb.String()
}

func mustFetch(t *testing.T, f *Fetcher, s Source) *Result {
	t.Helper()
	res, err := f.Fetch(t.Context(), s)
	if err != nil {
		t.Fatalf("Fetch(%+v): %v", s, err)
	}
	return res
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q\ndoes not contain %q", err, p)
		}
	}
}

func TestSameChartThreeWays(t *testing.T) {
	f := &Fetcher{RepoRoot: testRoot}
	git := mustFetch(t, f, Source{Kind: KindGitRepository, Chart: "./charts/demo", Origin: origin})
	if len(git.Lock) != 0 {
		t.Errorf("directory chart lock entries = %v, want none", git.Lock)
	}
	if again := mustFetch(t, f, Source{Kind: KindGitRepository, Chart: "charts/demo"}); again.Digest != git.Digest || !strings.HasPrefix(git.Digest, "sha256:") {
		t.Errorf("directory digest %q then %q, want one stable sha256", git.Digest, again.Digest)
	}
	want := describe(t, git.Chart)
	if _, ok := want["dep:common/template:templates/configmap.yaml"]; !ok {
		t.Fatalf("file:// dependency not built: %v", want)
	}
	if want["crd:crds/widget.yaml"] == "" || want["render:demo/templates/configmap.yaml"] == "" {
		t.Fatalf("test chart incomplete: %v", want)
	}

	hr := newHTTPRepo(t, "", "1.2.3", "1.3.0")
	host, _ := newRegistry(t)
	pushed := packageDemo(t, "1.2.3")
	ociDigest := push(t, host+"/charts/demo:1.2.3", pushed)
	archive := sha256Digest(pushed) // the lock holds the archive's digest, whatever the protocol

	for _, tc := range []struct {
		name string
		src  Source
		lock LockEntry
	}{
		{"http", Source{Kind: KindHelmRepository, URL: hr.srv.URL + "/", Chart: "demo", Version: "1.2.3"},
			LockEntry{hr.srv.URL, "demo", "1.2.3", sha256Digest(hr.archives["1.2.3"])}},
		{"oci helm repository", Source{Kind: KindHelmRepository, URL: "oci://" + host + "/charts", Chart: "demo", Version: "1.2.3"},
			LockEntry{"oci://" + host + "/charts", "demo", "1.2.3", archive}},
		{"oci repository tag", Source{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Version: "1.2.3"},
			LockEntry{"oci://" + host + "/charts/demo", "demo", "1.2.3", archive}},
		{"oci repository digest", Source{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Digest: ociDigest},
			LockEntry{"oci://" + host + "/charts/demo", "demo", "1.2.3", archive}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.src.Origin = origin
			res := mustFetch(t, &Fetcher{}, tc.src)
			if d := diff(want, describe(t, res.Chart)); d != "" {
				t.Errorf("chart differs from the GitRepository one:\n%s", d)
			}
			if len(res.Lock) != 1 || res.Lock[0] != tc.lock || res.Digest != tc.lock.Digest {
				t.Errorf("lock = %+v, digest %s; want [%+v]", res.Lock, res.Digest, tc.lock)
			}
		})
	}
}

func TestVersionResolution(t *testing.T) {
	versions := []string{"1.2.3", "1.3.0", "2.0.0-rc.1"}
	hr := newHTTPRepo(t, hrBaseAbsolute, versions...)
	host, _ := newRegistry(t)
	for _, v := range versions {
		push(t, host+"/charts/demo:"+v, hr.archives[v])
	}
	push(t, host+"/charts/demo:latest", hr.archives["1.2.3"])

	for _, tc := range []struct{ version, want string }{
		{"", "1.3.0"},
		{"*", "1.3.0"},
		{"~1.2", "1.2.3"},
		{">=1.2.0 <1.3.0", "1.2.3"},
		{"1.3.0", "1.3.0"},
		{"^1", "1.3.0"},
		{">=2.0.0-0", "2.0.0-rc.1"},
	} {
		for _, src := range []Source{
			{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "demo", Version: tc.version},
			{Kind: KindHelmRepository, URL: "oci://" + host + "/charts", Chart: "demo", Version: tc.version},
		} {
			res := mustFetch(t, &Fetcher{}, src)
			if got := res.Chart.Metadata.Version; got != tc.want || res.Lock[0].Version != tc.want {
				t.Errorf("%s %q: got chart %s, lock %s; want %s", src.URL, tc.version, got, res.Lock[0].Version, tc.want)
			}
		}
	}

	// OCIRepository: no ref is the tag "latest" (as in Flux); semver picks among tags.
	for _, tc := range []struct{ version, wantTag, wantChart string }{
		{"", "latest", "1.2.3"},
		{"latest", "latest", "1.2.3"},
		{"~1.3", "1.3.0", "1.3.0"},
		{"1.2.3", "1.2.3", "1.2.3"},
	} {
		res := mustFetch(t, &Fetcher{}, Source{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Version: tc.version})
		if res.Chart.Metadata.Version != tc.wantChart || res.Lock[0].Version != tc.wantTag {
			t.Errorf("OCIRepository %q: chart %s, lock version %s; want %s, %s",
				tc.version, res.Chart.Metadata.Version, res.Lock[0].Version, tc.wantChart, tc.wantTag)
		}
	}
}

// hrBaseAbsolute asks newHTTPRepo for absolute archive URLs under the server's own URL.
const hrBaseAbsolute = "self"

func TestBadVersion(t *testing.T) {
	hr := newHTTPRepo(t, "", "1.2.3", "1.3.0")
	host, _ := newRegistry(t)
	push(t, host+"/charts/demo:1.2.3", hr.archives["1.2.3"])
	f := &Fetcher{}
	for _, tc := range []struct {
		src  Source
		want []string
	}{
		{Source{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "demo", Version: "9.9.9"},
			[]string{`chart demo version "9.9.9" not found in chart repository ` + hr.srv.URL, origin, "available: 1.3.0, 1.2.3"}},
		{Source{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "demo", Version: "not a version"},
			[]string{`"not a version"`, origin}},
		{Source{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "nope"},
			[]string{`chart "nope" not found in chart repository ` + hr.srv.URL, origin}},
		{Source{Kind: KindHelmRepository, URL: "oci://" + host + "/charts", Chart: "demo", Version: "9.9.9"},
			[]string{`chart demo version "9.9.9"`, "oci://" + host + "/charts/demo", origin}},
		{Source{Kind: KindHelmRepository, URL: "oci://" + host + "/charts", Chart: "demo", Version: "~9"},
			[]string{`chart demo version "~9" not found`, "available: 1.2.3", origin}},
		{Source{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Version: "nosuchtag"},
			[]string{`chart demo version "nosuchtag"`, origin}},
	} {
		tc.src.Origin = origin
		_, err := f.Fetch(t.Context(), tc.src)
		wantErr(t, err, tc.want...)
	}
}

func TestLockMismatch(t *testing.T) {
	hr := newHTTPRepo(t, "", "1.2.3")
	host, _ := newRegistry(t)
	push(t, host+"/charts/demo:1.2.3", hr.archives["1.2.3"])
	bogus := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		src  Source
		real string
	}{
		{Source{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "demo", Version: "1.2.3"}, sha256Digest(hr.archives["1.2.3"])},
		{Source{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "demo", Version: "~1.2"}, sha256Digest(hr.archives["1.2.3"])},
		{Source{Kind: KindHelmRepository, URL: "oci://" + host + "/charts", Chart: "demo", Version: "1.2.3"}, sha256Digest(hr.archives["1.2.3"])},
		{Source{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Version: "1.2.3"}, sha256Digest(hr.archives["1.2.3"])},
	} {
		tc.src.Origin = origin
		lock := &Lock{}
		lock.Record(LockEntry{Source: tc.src.URL, Chart: "demo", Version: "1.2.3", Digest: bogus})
		_, err := (&Fetcher{Lock: lock, CacheDir: t.TempDir()}).Fetch(t.Context(), tc.src)
		wantErr(t, err, "chart demo 1.2.3", tc.real, bogus, origin)
	}

	// When the index carries no digest, the downloaded archive is checked against the lock.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo-1.2.3.tgz"), hr.archives["1.2.3"], 0o644); err != nil {
		t.Fatal(err)
	}
	idx, err := repo.IndexDirectory(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	idx.Entries["demo"][0].Digest = ""
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	lock := &Lock{}
	lock.Record(LockEntry{Source: srv.URL, Chart: "demo", Version: "1.2.3", Digest: bogus})
	_, err = (&Fetcher{Lock: lock}).Fetch(t.Context(), Source{Kind: KindHelmRepository, URL: srv.URL, Chart: "demo", Version: "1.2.3", Origin: origin})
	wantErr(t, err, "chart demo 1.2.3", sha256Digest(hr.archives["1.2.3"]), bogus, origin)
}

func TestMirror(t *testing.T) {
	upstream := "http://" + deadAddr(t) + "/charts"
	// A mirror that copied the upstream index verbatim: its archive URLs still point upstream.
	hr := newHTTPRepo(t, upstream, "1.2.3")
	f := &Fetcher{Mirrors: []Mirror{{Upstream: "http://unrelated.example", Mirror: "http://127.0.0.1:1"}, {Upstream: upstream, Mirror: hr.srv.URL}}}
	res := mustFetch(t, f, Source{Kind: KindHelmRepository, URL: upstream, Chart: "demo", Version: "1.2.3", Origin: origin})
	if want := (LockEntry{upstream, "demo", "1.2.3", sha256Digest(hr.archives["1.2.3"])}); res.Lock[0] != want {
		t.Errorf("lock = %+v, want %+v", res.Lock[0], want)
	}

	host, _ := newRegistry(t)
	ociDigest := push(t, host+"/mirror/charts/demo:1.2.3", hr.archives["1.2.3"])
	ociUpstream := "oci://" + deadAddr(t) + "/charts"
	f = &Fetcher{Mirrors: []Mirror{{Upstream: ociUpstream, Mirror: "oci://" + host + "/mirror/charts/"}}}
	res = mustFetch(t, f, Source{Kind: KindHelmRepository, URL: ociUpstream, Chart: "demo", Version: "~1", Origin: origin})
	if want := (LockEntry{ociUpstream, "demo", "1.2.3", sha256Digest(hr.archives["1.2.3"])}); res.Lock[0] != want {
		t.Errorf("lock = %+v, want %+v", res.Lock[0], want)
	}
	res = mustFetch(t, f, Source{Kind: KindOCIRepository, URL: ociUpstream + "/demo", Digest: ociDigest, Origin: origin})
	if want := (LockEntry{ociUpstream + "/demo", "demo", "1.2.3", sha256Digest(hr.archives["1.2.3"])}); res.Lock[0] != want {
		t.Errorf("lock = %+v, want %+v", res.Lock[0], want)
	}

	// Prefixes match at path boundaries only.
	m := &Fetcher{Mirrors: []Mirror{{Upstream: "https://a.example/charts/", Mirror: "https://m.example"}}}
	for in, want := range map[string]string{
		"https://a.example/charts":       "https://m.example",
		"https://a.example/charts/x.tgz": "https://m.example/x.tgz",
		"https://a.example/chartsx":      "https://a.example/chartsx",
	} {
		if got, _ := m.mirror(in); got != want {
			t.Errorf("mirror(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	dead := "http://" + deadAddr(t)
	_, err := (&Fetcher{}).Fetch(t.Context(), Source{Kind: KindHelmRepository, URL: dead, Chart: "demo", Version: "1.2.3", Origin: origin})
	wantErr(t, err, `chart demo version "1.2.3" from chart repository `+dead+" unreachable ("+origin+")", "connection refused",
		"add a mirror in bootstrap/bootcore.yaml (mirrors: [{upstream: "+dead+", mirror: <url>}]) or make it reachable")

	deadOCI := "oci://" + deadAddr(t) + "/charts"
	_, err = (&Fetcher{}).Fetch(t.Context(), Source{Kind: KindHelmRepository, URL: deadOCI, Chart: "demo", Version: "1.2.3", Origin: origin})
	wantErr(t, err, deadOCI+"/demo unreachable ("+origin+")", "mirrors: [{upstream: "+deadOCI+", mirror: <url>}]")

	// With a mirror configured, the error names it and does not suggest adding one.
	mirror := "http://" + deadAddr(t)
	_, err = (&Fetcher{Mirrors: []Mirror{{Upstream: dead, Mirror: mirror}}}).Fetch(t.Context(),
		Source{Kind: KindHelmRepository, URL: dead, Chart: "demo", Origin: origin})
	wantErr(t, err, "chart repository "+dead+" (mirror "+mirror+") unreachable ("+origin+")")
	if strings.Contains(err.Error(), "add a mirror") {
		t.Errorf("error suggests a mirror although one is configured: %v", err)
	}

	// A cancelled context stops before any network access.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := (&Fetcher{}).Fetch(ctx, Source{Kind: KindHelmRepository, URL: dead, Chart: "demo"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled fetch: %v", err)
	}
}

func TestCacheOffline(t *testing.T) {
	hr := newHTTPRepo(t, "", "1.2.3")
	host, regSrv := newRegistry(t)
	ociDigest := push(t, host+"/charts/demo:1.2.3", hr.archives["1.2.3"])
	sources := []Source{
		{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "demo", Version: "1.2.3", Origin: origin},
		{Kind: KindHelmRepository, URL: "oci://" + host + "/charts", Chart: "demo", Version: "1.2.3", Origin: origin},
		{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Version: "1.2.3", Origin: origin},
		{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Digest: ociDigest, Origin: origin},
	}
	cacheDir := t.TempDir()
	lock := &Lock{}
	want := map[int]map[string]string{}
	wantLock := map[int]LockEntry{}
	online := &Fetcher{CacheDir: cacheDir, Lock: lock}
	for i, s := range sources {
		res := mustFetch(t, online, s)
		want[i], wantLock[i] = describe(t, res.Chart), res.Lock[0]
		lock.Record(res.Lock[0])
	}
	// A corrupt cache file is a miss, not a wrong chart: it is fetched again and rewritten.
	files, _ := filepath.Glob(filepath.Join(cacheDir, "*.tgz"))
	if len(files) != 4 { // http archive, two OCI (repository) keys, and the digest pin's
		t.Fatalf("cache holds %v", files)
	}
	if err := os.WriteFile(files[0], []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range sources {
		mustFetch(t, &Fetcher{CacheDir: cacheDir, Lock: lock}, s)
	}

	hr.srv.Close()
	regSrv.Close()
	offline := &Fetcher{CacheDir: cacheDir, Lock: lock}
	for i, s := range sources {
		res := mustFetch(t, offline, s)
		if d := diff(want[i], describe(t, res.Chart)); d != "" {
			t.Errorf("%+v: cached chart differs:\n%s", s, d)
		}
		if len(res.Lock) != 1 || res.Lock[0] != wantLock[i] {
			t.Errorf("%+v: lock %+v, want [%+v]", s, res.Lock, wantLock[i])
		}
	}
	// Only locked exact versions are served offline: a constraint needs the repository.
	_, err := offline.Fetch(t.Context(), Source{Kind: KindHelmRepository, URL: hr.srv.URL, Chart: "demo", Version: "~1.2", Origin: origin})
	wantErr(t, err, "unreachable")
	// Without the lock the cache is not trusted for a version either.
	_, err = (&Fetcher{CacheDir: cacheDir}).Fetch(t.Context(), sources[0])
	wantErr(t, err, "unreachable")
}

func TestDirDependencies(t *testing.T) {
	hr := newHTTPRepo(t, "", "1.2.3", "1.3.0")
	root := t.TempDir()
	writeChart := func(dir, chartYAML string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, dir, "templates"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, "Chart.yaml"), []byte(chartYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeChart("charts/remote", `apiVersion: v2
name: remote
version: 0.1.0
dependencies:
  - name: demo
    version: "~1.2"
    repository: `+hr.srv.URL+`
`)
	host, _ := newRegistry(t)
	push(t, host+"/charts/demo:1.3.0", hr.archives["1.3.0"])
	writeChart("charts/ocidep", `apiVersion: v2
name: ocidep
version: 0.1.0
dependencies:
  - name: demo
    version: "1.3.0"
    repository: oci://`+host+`/charts
`)
	writeChart("charts/missing", `apiVersion: v2
name: missing
version: 0.1.0
dependencies:
  - name: base
    version: "0.1.0"
    repository: file://../base
`)
	writeChart("charts/toonew", `apiVersion: v2
name: toonew
version: 0.1.0
dependencies:
  - name: remote
    version: ">=1.0.0"
    repository: file://../remote
`)
	writeChart("charts/byname", `apiVersion: v2
name: byname
version: 0.1.0
dependencies:
  - name: demo
    version: "1.2.3"
    repository: "@stable"
`)
	writeChart("charts/notindir", `apiVersion: v2
name: notindir
version: 0.1.0
dependencies:
  - name: demo
    version: "1.2.3"
`)

	f := &Fetcher{RepoRoot: root}
	res := mustFetch(t, f, Source{Kind: KindGitRepository, Chart: "charts/remote", Origin: origin})
	deps := res.Chart.Dependencies()
	if len(deps) != 1 || deps[0].Name() != "demo" || deps[0].Metadata.Version != "1.2.3" {
		t.Fatalf("dependencies = %v", deps)
	}
	if want := (LockEntry{hr.srv.URL, "demo", "1.2.3", sha256Digest(hr.archives["1.2.3"])}); len(res.Lock) != 1 || res.Lock[0] != want {
		t.Errorf("lock = %+v, want [%+v]", res.Lock, want)
	}
	res = mustFetch(t, f, Source{Kind: KindGitRepository, Chart: "charts/ocidep", Origin: origin})
	if deps := res.Chart.Dependencies(); len(deps) != 1 || deps[0].Metadata.Version != "1.3.0" {
		t.Fatalf("dependencies = %v", deps)
	}
	if want := (LockEntry{"oci://" + host + "/charts", "demo", "1.3.0", sha256Digest(hr.archives["1.3.0"])}); len(res.Lock) != 1 || res.Lock[0] != want {
		t.Errorf("lock = %+v, want [%+v]", res.Lock, want)
	}
	// The remote dependency goes through the lock like any repository chart.
	lock := &Lock{}
	lock.Record(LockEntry{hr.srv.URL, "demo", "1.2.3", "sha256:" + strings.Repeat("1", 64)})
	_, err := (&Fetcher{RepoRoot: root, Lock: lock}).Fetch(t.Context(), Source{Kind: KindGitRepository, Chart: "charts/remote", Origin: origin})
	wantErr(t, err, "chart demo 1.2.3", "dependency demo of chart remote, "+origin)

	for _, tc := range []struct {
		chart string
		want  []string
	}{
		{"charts/missing", []string{`chart missing (` + origin + `): dependency "base" (repository "file://../base")`, "no chart at charts/base"}},
		{"charts/toonew", []string{`chart toonew`, `dependency "remote"`, `version 0.1.0, which does not satisfy ">=1.0.0"`}},
		{"charts/byname", []string{`chart byname`, `dependency "demo"`, "must be a URL"}},
		{"charts/notindir", []string{`chart notindir`, `dependency "demo"`, "not in charts/"}},
	} {
		_, err := f.Fetch(t.Context(), Source{Kind: KindGitRepository, Chart: tc.chart, Origin: origin})
		wantErr(t, err, tc.want...)
	}
}

func TestPathEscape(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "repo")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "charts"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "Chart.yaml"), []byte("apiVersion: v2\nname: outside\nversion: 0.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "charts", "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "charts", "sneaky"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "charts", "sneaky", "Chart.yaml"), []byte("apiVersion: v2\nname: sneaky\nversion: 0.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "Chart.yaml"), filepath.Join(root, "charts", "sneaky", "values.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "charts", "climber"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "charts", "climber", "Chart.yaml"), []byte(`apiVersion: v2
name: climber
version: 0.1.0
dependencies:
  - name: outside
    version: "*"
    repository: file://../../../outside
`), 0o644); err != nil {
		t.Fatal(err)
	}

	f := &Fetcher{RepoRoot: root}
	for _, tc := range []struct {
		chart string
		want  []string
	}{
		{"../outside", []string{"GitRepository chart path ../outside (" + origin + ")", "outside the repository root"}},
		{"charts/../../outside", []string{"outside the repository root"}},
		{outside, []string{"must be a path relative to the repository root"}},
		{"charts/linked", []string{"symbolic link", "outside the repository root"}},
		{"charts/sneaky", []string{"values.yaml is a symbolic link", "outside the repository root"}},
		{"charts/climber", []string{`chart climber (` + origin + `): dependency "outside"`, "outside the repository root"}},
		{"charts/nothing", []string{"no chart at charts/nothing"}},
	} {
		_, err := f.Fetch(t.Context(), Source{Kind: KindGitRepository, Chart: tc.chart, Origin: origin})
		wantErr(t, err, tc.want...)
	}
}

// TestBadInput feeds malformed sources and repositories: each must fail with an error naming the
// origin, never panic.
func TestBadInput(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/garbage/index.yaml", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{{{not yaml") })
	mux.HandleFunc("/nulls/index.yaml", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "apiVersion: v1\nentries:\n  demo:\n  - null\n")
	})
	mux.HandleFunc("/badarchive/index.yaml", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "apiVersion: v1\nentries:\n  demo:\n  - name: demo\n    version: 1.0.0\n    apiVersion: v2\n    urls: [demo-1.0.0.tgz]\n")
	})
	mux.HandleFunc("/badarchive/demo-1.0.0.tgz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "not a tarball") })
	mux.HandleFunc("/nourls/index.yaml", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "apiVersion: v1\nentries:\n  demo:\n  - name: demo\n    version: 1.0.0\n    apiVersion: v2\n")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host, _ := newRegistry(t)

	f := &Fetcher{RepoRoot: testRoot}
	for _, tc := range []struct {
		src  Source
		want []string
	}{
		{Source{Kind: "Bucket"}, []string{`unknown kind "Bucket"`}},
		{Source{Kind: KindHelmRepository, Chart: "demo"}, []string{"no repository URL"}},
		{Source{Kind: KindHelmRepository, URL: srv.URL}, []string{"no chart name"}},
		{Source{Kind: KindHelmRepository, URL: "ftp://example.com", Chart: "demo"}, []string{`unsupported URL scheme "ftp"`}},
		{Source{Kind: KindHelmRepository, URL: "http://charts.example.com", Chart: "demo"}, []string{"plain HTTP to charts.example.com is not allowed"}},
		{Source{Kind: KindHelmRepository, URL: "://bad", Chart: "demo"}, []string{"missing protocol scheme"}},
		{Source{Kind: KindHelmRepository, URL: srv.URL + "/missing", Chart: "demo"}, []string{"chart repository " + srv.URL + "/missing", "404"}},
		{Source{Kind: KindHelmRepository, URL: srv.URL + "/garbage", Chart: "demo"}, []string{"invalid index.yaml"}},
		{Source{Kind: KindHelmRepository, URL: srv.URL + "/nulls", Chart: "demo"}, []string{`chart demo version "" not found`}},
		{Source{Kind: KindHelmRepository, URL: srv.URL + "/badarchive", Chart: "demo"}, []string{"not a valid chart archive"}},
		{Source{Kind: KindHelmRepository, URL: srv.URL + "/nourls", Chart: "demo"}, []string{"no download URL"}},
		{Source{Kind: KindOCIRepository, URL: "oci://"}, []string{"oci://registry/path"}},
		{Source{Kind: KindOCIRepository, URL: "https://" + host + "/charts/demo"}, []string{"oci://registry/path"}},
		{Source{Kind: KindOCIRepository, URL: "oci://" + host + "/charts/demo", Digest: "sha256:zz"}, []string{"sha256:zz"}},
		{Source{Kind: KindOCIRepository, URL: "oci://" + host + "/Bad Name"}, []string{"Bad Name"}},
		{Source{Kind: KindGitRepository}, []string{"must be a path relative"}},
		{Source{Kind: KindGitRepository, Chart: "charts/demo/templates"}, []string{"Chart.yaml"}},
		{Source{Kind: KindGitRepository, Chart: "charts/demo/values.yaml"}, []string{"charts/demo/values.yaml"}},
	} {
		tc.src.Origin = origin
		_, err := f.Fetch(t.Context(), tc.src)
		wantErr(t, err, append(tc.want, origin)...)
	}
	if _, err := (&Fetcher{}).Fetch(t.Context(), Source{Kind: KindGitRepository, Chart: "charts/demo", Origin: origin}); err == nil {
		t.Error("GitRepository without RepoRoot: no error")
	}
}

func TestPlainHTTPAllowed(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true, "localhost:80": true, "localhost": true,
		"registry.example.com:5000": false, "10.0.0.1": false, "localhost.example.com": false,
	} {
		if got := (&Fetcher{}).plainHTTPAllowed(host); got != want {
			t.Errorf("plainHTTPAllowed(%s) = %v, want %v", host, got, want)
		}
		if !(&Fetcher{PlainHTTP: true}).plainHTTPAllowed(host) {
			t.Errorf("PlainHTTP: %s not allowed", host)
		}
	}
}
