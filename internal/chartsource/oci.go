package chartsource

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/registry"
)

// fetchOCI gets a chart from an OCI registry with Helm's registry client. src and name are the
// lock key (repository URL and chart name); upstreamRef is the artifact, oci://registry/path/chart.
func (c *call) fetchOCI(s Source, src, name, upstreamRef string) (*chart.Chart, LockEntry, error) {
	effRef, _ := c.f.mirror(upstreamRef)
	if !strings.HasPrefix(effRef, "oci://") || len(effRef) == len("oci://") {
		return nil, LockEntry{}, fmt.Errorf("%s %s%s: an OCI URL must look like oci://registry/path", s.Kind, upstreamRef, where(s.Origin))
	}
	ref := strings.TrimPrefix(effRef, "oci://")
	tag, constraint := ociVersion(s)

	// A digest-pinned chart or a locked tag whose chart is cached needs no network at all.
	if s.Digest != "" {
		if data, ok := c.cache().ociArchive(LockEntry{Source: src, Chart: name, Digest: s.Digest}); ok {
			return c.lockedOCI(s, src, name, "", data, s.Digest)
		}
	} else if tag != "" {
		if ch, e, ok, err := c.cachedOCI(s, src, name, tag); ok {
			return ch, e, err
		}
	}

	client, err := c.registryClient()
	if err != nil {
		return nil, LockEntry{}, fmt.Errorf("OCI registry client%s: %w", where(s.Origin), err)
	}
	if s.Digest == "" && tag == "" {
		if err := c.ctx.Err(); err != nil {
			return nil, LockEntry{}, err
		}
		tags, err := client.Tags(ref)
		if err != nil {
			return nil, LockEntry{}, fetchError("OCI repository", upstreamRef, effRef, src, s, err)
		}
		if tag, err = registry.GetTagMatchingVersionOrConstraint(tags, constraint); err != nil {
			return nil, LockEntry{}, fmt.Errorf("chart %s version %q not found in OCI repository %s%s: %v; available: %s",
				name, s.Version, upstreamRef, where(s.Origin), err, listSome(tags))
		}
		if ch, e, ok, err := c.cachedOCI(s, src, name, tag); ok {
			return ch, e, err
		}
	}

	pullRef, what := ref+":"+tag, fmt.Sprintf("chart %s version %q", name, tag)
	if s.Digest != "" {
		pullRef, what = ref+"@"+s.Digest, fmt.Sprintf("chart %s digest %s", name, s.Digest)
	}
	if err := c.ctx.Err(); err != nil {
		return nil, LockEntry{}, err
	}
	res, err := client.Pull(pullRef)
	if err != nil {
		return nil, LockEntry{}, fetchError(what+" from OCI repository", upstreamRef, effRef, src, s, err)
	}
	manifest := res.Manifest.Digest
	if s.Digest != "" && manifest != s.Digest {
		return nil, LockEntry{}, fmt.Errorf("%s from %s%s: the registry returned manifest %s", what, upstreamRef, where(s.Origin), manifest)
	}
	ch, e, err := c.lockedOCI(s, src, name, tag, res.Chart.Data, manifest)
	if err != nil {
		return nil, LockEntry{}, err
	}
	if err := c.cache().put(e, res.Chart.Data, nil); err != nil {
		return nil, LockEntry{}, err
	}
	if s.Digest != "" { // a digest pin finds its chart by the manifest digest (see ociArchive)
		pin := LockEntry{Source: src, Chart: name, Digest: manifest}
		if err := c.cache().put(pin, res.Chart.Data, res.Manifest.Data); err != nil {
			return nil, LockEntry{}, err
		}
	}
	return ch, e, nil
}

// lockedOCI loads a chart archive pulled from (or cached for) a registry and checks it against
// the lock. The lock records the archive's digest, as for an HTTP repository, so that a chart
// locked through one protocol is the same chart through the other (a mirror may serve a
// repository over either). manifest is the OCI manifest digest the archive came with, "" if not
// known: locks written before archive digests recorded that digest, which names the same content.
func (c *call) lockedOCI(s Source, src, name, tag string, data []byte, manifest string) (*chart.Chart, LockEntry, error) {
	e := LockEntry{Source: src, Chart: name, Version: tag, Digest: sha256Digest(data)}
	ch, err := loadArchive(data, e, s)
	if err != nil {
		return nil, LockEntry{}, err
	}
	if s.Digest != "" {
		// Flux ignores tag and semver when a digest is set; the chart's own version names it.
		e.Version = ch.Metadata.Version
	}
	if locked, isLocked := c.f.Lock.Lookup(src, name, e.Version); isLocked && locked.Digest != e.Digest && locked.Digest != manifest {
		return nil, LockEntry{}, lockMismatch(s, e, locked.Digest, e.Digest)
	}
	return ch, e, nil
}

// cachedOCI serves a locked tag from the cache: the archive under its digest, or, for a lock
// entry written before archive digests (the OCI manifest digest), the archive cached with that
// manifest. ok is false on a miss.
func (c *call) cachedOCI(s Source, src, name, tag string) (*chart.Chart, LockEntry, bool, error) {
	locked, isLocked := c.f.Lock.Lookup(src, name, tag)
	if !isLocked {
		return nil, LockEntry{}, false, nil
	}
	if data, ok := c.cache().archive(locked); ok {
		ch, err := loadArchive(data, locked, s)
		return ch, locked, true, err
	}
	if data, ok := c.cache().ociArchive(locked); ok {
		ch, e, err := c.lockedOCI(s, src, name, tag, data, locked.Digest)
		return ch, e, true, err
	}
	return nil, LockEntry{}, false, nil
}

// ociVersion splits Source.Version into a tag to pull or a constraint to match against the
// repository's tags, following source-controller: an exact semver version is used as a tag
// without listing tags; for a HelmRepository anything else is a constraint ("" and "*" mean the
// latest stable version); for an OCIRepository "" is the tag "latest" and a string that is not a
// semver constraint is a plain tag (spec.ref.tag), while a constraint is spec.ref.semver.
func ociVersion(s Source) (tag, constraint string) {
	v := strings.TrimSpace(s.Version)
	if _, err := semver.StrictNewVersion(strings.TrimPrefix(v, "v")); err == nil {
		return v, ""
	}
	if s.Kind != KindOCIRepository {
		return "", v
	}
	if v == "" {
		return "latest", ""
	}
	if _, err := semver.NewConstraint(v); err != nil {
		return v, ""
	}
	return "", v
}

// ociArtifactName is the chart name of an OCIRepository: the last element of its URL, which
// Helm's push makes the chart's name.
func ociArtifactName(u string) string {
	return path.Base(strings.TrimPrefix(u, "oci://"))
}

// registryClient builds a Helm registry client on this call's transport. Credentials come from
// Helm's registry config and Docker's, as for `helm pull`.
func (c *call) registryClient() (*registry.Client, error) {
	t := &plainFallback{base: c.tr, allow: c.f.plainHTTPAllowed}
	return registry.NewClient(
		registry.ClientOptHTTPClient(&http.Client{Transport: t, Timeout: requestTimeout}),
		registry.ClientOptWriter(io.Discard),
	)
}

// plainFallback is Helm v3's own fallback for registries (pkg/registry/fallback.go), limited to
// hosts where plain HTTP is allowed: requests go over HTTPS, and when the server answers in plain
// HTTP they are repeated over HTTP, and the host is remembered as plain.
type plainFallback struct {
	base  http.RoundTripper
	allow func(host string) bool
	plain sync.Map // host -> struct{}
}

func (t *plainFallback) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" || !t.allow(req.URL.Host) {
		return t.base.RoundTrip(req)
	}
	if _, ok := t.plain.Load(req.URL.Host); ok {
		return t.base.RoundTrip(withScheme(req, "http"))
	}
	resp, err := t.base.RoundTrip(req)
	var rh tls.RecordHeaderError
	// Registry reads carry no body, so the request can be sent again as is.
	if err != nil && errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" && (req.Body == nil || req.GetBody != nil) {
		t.plain.Store(req.URL.Host, struct{}{})
		r := withScheme(req, "http")
		if req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		return t.base.RoundTrip(r)
	}
	return resp, err
}

func withScheme(req *http.Request, scheme string) *http.Request {
	r := req.Clone(req.Context())
	r.URL.Scheme = scheme
	return r
}
