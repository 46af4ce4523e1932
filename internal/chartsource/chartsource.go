// Package chartsource gets a Helm chart the way Flux's source-controller would (HTTP and OCI
// Helm repositories, OCIRepository artifacts, chart directories in the Git repository with their
// dependencies built), with URL mirrors, a local archive cache and a lock file of digests.
//
// Everything runs in-process through the Helm SDK (getter, repo, registry, loader); nothing
// execs helm.
package chartsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/repo"
)

// Source kinds, named after the Flux objects a chart comes from.
const (
	KindHelmRepository = "HelmRepository"
	KindOCIRepository  = "OCIRepository"
	KindGitRepository  = "GitRepository"
)

// specPath is where users configure mirrors (internal/spec.DefaultPath); named in error hints.
const specPath = "bootstrap/bootcore.yaml"

// requestTimeout bounds each HTTP request, so a black-holed host fails instead of hanging.
// Flux's default HelmRepository timeout is 60s; archives may be larger than indexes, hence more.
const requestTimeout = 2 * time.Minute

// Source says where a chart comes from, already resolved from Flux objects by the caller.
type Source struct {
	// Kind is KindHelmRepository, KindOCIRepository or KindGitRepository.
	Kind string
	// URL is, for a HelmRepository, the repository URL (https://... or oci://registry/path);
	// for an OCIRepository, the artifact URL oci://registry/path/chart. Unused for GitRepository.
	URL string
	// Chart is the chart name (HelmRepository), or for a GitRepository the chart directory
	// relative to the repository root (e.g. ./charts/cilium). Unused for OCIRepository.
	Chart string
	// Version is a version or semver constraint; "" or "*" is the latest stable version.
	// OCIRepository (spec.ref.tag or spec.ref.semver): an exact version or any string that is
	// not a semver constraint is a tag; "" is the tag "latest", as in Flux.
	Version string
	// Digest is an OCI manifest digest (OCIRepository spec.ref.digest); it wins over Version.
	Digest string
	// Origin names the Flux object for error messages, e.g.
	// "HelmRelease kube-system/cilium (kubernetes/.../helmrelease.yaml)".
	Origin string
}

// Mirror replaces the URL prefix Upstream with Mirror before any network access. Prefixes match
// at a path boundary: https://a.example/charts matches https://a.example/charts/x, not .../chartsx.
type Mirror struct{ Upstream, Mirror string }

// Fetcher gets charts. The zero value works for repository charts without cache or lock.
// A Fetcher remembers repository indexes it downloaded, so it must not be copied after first use;
// it is safe for concurrent use.
type Fetcher struct {
	// RepoRoot is the Git repository root that GitRepository chart paths are relative to.
	RepoRoot string
	// CacheDir holds downloaded archives (e.g. $XDG_CACHE_HOME/bootcore/charts); "" disables it.
	CacheDir string
	// Mirrors rewrite repository and archive URLs; the longest matching Upstream wins.
	Mirrors []Mirror
	// Lock holds the recorded digests: fetching different content for a locked version is an
	// error, and locked versions are served from the cache without network.
	Lock *Lock
	// PlainHTTP allows http:// repositories and plain-HTTP OCI registries on any host; without
	// it only loopback hosts (127.0.0.0/8, ::1, localhost) may use plain HTTP. Registries are
	// always tried over HTTPS first and fall back to HTTP where allowed, as Helm v3 does.
	PlainHTTP bool

	mu      sync.Mutex
	indexes map[string]*repo.IndexFile // by effective index URL; charts share repositories
}

// Result is what Fetch got.
type Result struct {
	Chart *chart.Chart
	// Digest identifies the chart content: "sha256:..." of the archive (HTTP repositories), the OCI
	// manifest digest, or for a directory chart the digest described at dirDigest.
	Digest string
	// Lock lists the entries for the caller to record in the lock file: the chart itself when it
	// came from a repository, and every remote dependency fetched for a directory chart.
	// Directory charts themselves are not locked: see fetchDir.
	Lock []LockEntry
}

// Fetch gets the chart s describes. Errors name s.Origin.
func (f *Fetcher) Fetch(ctx context.Context, s Source) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &call{f: f, ctx: ctx, tr: newTransport(ctx)}
	defer c.tr.CloseIdleConnections()
	switch s.Kind {
	case KindHelmRepository, KindOCIRepository:
		ch, e, err := c.fetchRepo(s)
		if err != nil {
			return nil, err
		}
		return &Result{Chart: ch, Digest: e.Digest, Lock: []LockEntry{e}}, nil
	case KindGitRepository:
		return c.fetchDir(s)
	default:
		return nil, fmt.Errorf("chart source%s: unknown kind %q (want %s, %s or %s)",
			where(s.Origin), s.Kind, KindHelmRepository, KindOCIRepository, KindGitRepository)
	}
}

// call holds what one Fetch uses: its context and an HTTP transport bound to it.
type call struct {
	f   *Fetcher
	ctx context.Context
	tr  *http.Transport
}

func (c *call) cache() cache { return cache{dir: c.f.CacheDir} }

// fetchRepo gets a chart from a HelmRepository (HTTP or OCI) or an OCIRepository.
func (c *call) fetchRepo(s Source) (*chart.Chart, LockEntry, error) {
	if s.URL == "" {
		return nil, LockEntry{}, fmt.Errorf("%s%s: no repository URL", s.Kind, where(s.Origin))
	}
	upstream := strings.TrimSuffix(s.URL, "/")
	if s.Kind == KindOCIRepository {
		return c.fetchOCI(s, upstream, ociArtifactName(upstream), upstream)
	}
	if s.Chart == "" {
		return nil, LockEntry{}, fmt.Errorf("HelmRepository %s%s: no chart name", upstream, where(s.Origin))
	}
	// The protocol is the effective URL's: an HTTP repository may be mirrored into a registry.
	if eff, _ := c.f.mirror(upstream); strings.HasPrefix(eff, "oci://") {
		return c.fetchOCI(s, upstream, s.Chart, upstream+"/"+s.Chart)
	}
	return c.fetchIndexed(s, upstream)
}

// where formats an origin for the middle of an error message.
func where(origin string) string {
	if origin == "" {
		return ""
	}
	return " (" + origin + ")"
}

// mirror rewrites u with the longest matching mirror prefix.
func (f *Fetcher) mirror(u string) (string, bool) {
	best, bestLen := -1, -1
	for i, m := range f.Mirrors {
		up := strings.TrimSuffix(m.Upstream, "/")
		if up == "" || m.Mirror == "" {
			continue
		}
		if (u == up || strings.HasPrefix(u, up+"/")) && len(up) > bestLen {
			best, bestLen = i, len(up)
		}
	}
	if best < 0 {
		return u, false
	}
	return strings.TrimSuffix(f.Mirrors[best].Mirror, "/") + u[bestLen:], true
}

// plainHTTPAllowed says whether host (with or without port) may be contacted without TLS.
func (f *Fetcher) plainHTTPAllowed(host string) bool {
	if f.PlainHTTP {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkHTTPURL refuses URLs the getter should not fetch.
func (c *call) checkHTTPURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		if c.f.plainHTTPAllowed(p.Host) {
			return nil
		}
		return fmt.Errorf("plain HTTP to %s is not allowed (only loopback hosts, unless plain HTTP is enabled)", p.Host)
	default:
		return fmt.Errorf("unsupported URL scheme %q (want https://, http:// or oci://)", p.Scheme)
	}
}

// fetchError describes a failed download from a repository. When the server could not be reached
// at all (a transport error, as opposed to an HTTP status), it says how to configure a mirror:
// that is the usual fix on a machine without access to the upstream repository.
// hint is the URL prefix to suggest mirroring.
func fetchError(what, upstream, effective, hint string, s Source, err error) error {
	unreachable := IsUnreachable(err)
	switch {
	case !unreachable && upstream == effective:
		return fmt.Errorf("%s %s%s: %w", what, upstream, where(s.Origin), err)
	case !unreachable:
		return fmt.Errorf("%s %s (mirror %s)%s: %w", what, upstream, effective, where(s.Origin), err)
	case upstream != effective:
		return fmt.Errorf("%s %s (mirror %s) unreachable%s: %w", what, upstream, effective, where(s.Origin), err)
	default:
		return fmt.Errorf("%s %s unreachable%s: %w; add a mirror in %s (mirrors: [{upstream: %s, mirror: <url>}]) or make it reachable",
			what, upstream, where(s.Origin), err, specPath, hint)
	}
}

// IsUnreachable tells whether err (from Fetch) means a repository could not be reached at all,
// as opposed to answering with an error: callers such as `bootcore check` report that as
// "needs network" instead of a defect of the tree.
func IsUnreachable(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	return (errors.As(err, &ue) || errors.As(err, &oe)) && !errors.Is(err, context.Canceled)
}

// newTransport returns an HTTP transport whose connections are dialled with ctx and closed when
// ctx ends. Helm's getter and registry client take no context; this makes cancellation work anyway.
func newTransport(ctx context.Context) *http.Transport {
	t := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone() // proxy settings, HTTP/2 and timeouts as every Go client
	}
	// As Helm's getter: a server sending a .tgz with Content-Encoding: gzip must not have it
	// transparently decompressed, or the digest would not match.
	t.DisableCompression = true
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(_ context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		return &ctxConn{Conn: conn, stop: stop}, nil
	}
	return t
}

type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
