package chartsource

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/repo"
)

// fetchIndexed gets a chart from an HTTP Helm repository the way source-controller does for a
// default-type HelmRepository: download index.yaml, resolve the version, download the archive.
func (c *call) fetchIndexed(s Source, upstream string) (*chart.Chart, LockEntry, error) {
	// A locked exact version whose archive is cached needs no network at all.
	if e, ok := c.f.Lock.Lookup(upstream, s.Chart, s.Version); ok {
		if data, ok := c.cache().archive(e); ok {
			ch, err := loadArchive(data, e, s)
			return ch, e, err
		}
	}

	eff, _ := c.f.mirror(upstream)
	idx, err := c.index(s, upstream, eff)
	if err != nil {
		return nil, LockEntry{}, err
	}
	cv, err := idx.Get(s.Chart, s.Version) // "" is the latest stable version, anything else a constraint
	if err != nil {
		return nil, LockEntry{}, versionError(s, upstream, idx, err)
	}

	e := LockEntry{Source: upstream, Chart: s.Chart, Version: cv.Version}
	locked, isLocked := c.f.Lock.Lookup(upstream, s.Chart, cv.Version)
	indexDigest := normalizeDigest(cv.Digest)
	if isLocked && indexDigest != "" && indexDigest != locked.Digest {
		return nil, LockEntry{}, lockMismatch(s, e, locked.Digest, indexDigest)
	}
	// The index digest (or the lock's) names the archive, so a cached copy saves the download.
	e.Digest = indexDigest
	if isLocked {
		e.Digest = locked.Digest
	}
	if data, ok := c.cache().archive(e); ok {
		ch, err := loadArchive(data, e, s)
		return ch, e, err
	}

	if len(cv.URLs) == 0 {
		return nil, LockEntry{}, fmt.Errorf("chart %s %s in chart repository %s%s: the index lists no download URL",
			s.Chart, cv.Version, upstream, where(s.Origin))
	}
	archiveUp, archiveEff, hint, err := c.archiveURL(upstream, eff, cv.URLs[0])
	if err == nil {
		err = c.checkHTTPURL(archiveEff)
	}
	if err != nil {
		return nil, LockEntry{}, fmt.Errorf("chart %s %s in chart repository %s%s: archive URL %q: %w",
			s.Chart, cv.Version, upstream, where(s.Origin), cv.URLs[0], err)
	}
	data, err := c.get(archiveEff)
	if err != nil {
		return nil, LockEntry{}, fetchError(fmt.Sprintf("chart %s %s: archive", s.Chart, cv.Version), archiveUp, archiveEff, hint, s, err)
	}
	got := sha256Digest(data)
	if indexDigest != "" && got != indexDigest {
		return nil, LockEntry{}, fmt.Errorf("chart %s %s from %s%s: the archive's digest %s differs from the repository index's %s",
			s.Chart, cv.Version, archiveEff, where(s.Origin), got, indexDigest)
	}
	if isLocked && got != locked.Digest {
		return nil, LockEntry{}, lockMismatch(s, e, locked.Digest, got)
	}
	e.Digest = got
	if err := c.cache().put(e, data, nil); err != nil {
		return nil, LockEntry{}, err
	}
	ch, err := loadArchive(data, e, s)
	return ch, e, err
}

// index returns the repository's index, downloaded once per Fetcher: a run renders several
// charts from the same repository, while a later run must see newly published versions.
func (c *call) index(s Source, upstream, eff string) (*repo.IndexFile, error) {
	u, err := repo.ResolveReferenceURL(eff, "index.yaml")
	if err == nil {
		err = c.checkHTTPURL(u)
	}
	if err != nil {
		return nil, fmt.Errorf("chart repository %s%s: %w", upstream, where(s.Origin), err)
	}
	c.f.mu.Lock()
	idx := c.f.indexes[u]
	c.f.mu.Unlock()
	if idx != nil {
		return idx, nil
	}
	data, err := c.get(u)
	if err != nil {
		return nil, fetchError(fmt.Sprintf("chart %s version %q from chart repository", s.Chart, s.Version), upstream, eff, upstream, s, err)
	}
	if idx, err = parseIndex(data); err != nil {
		return nil, fmt.Errorf("chart repository %s%s: invalid index.yaml: %w", upstream, where(s.Origin), err)
	}
	c.f.mu.Lock()
	if c.f.indexes == nil {
		c.f.indexes = map[string]*repo.IndexFile{}
	}
	c.f.indexes[u] = idx
	c.f.mu.Unlock()
	return idx, nil
}

// parseIndex loads an index with Helm's own loader, which validates entries and drops broken
// ones (a nil entry would otherwise crash IndexFile.Get). Helm only loads indexes from files.
func parseIndex(data []byte) (*repo.IndexFile, error) {
	f, err := os.CreateTemp("", "bootcore-index-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	idx, err := repo.LoadIndexFile(f.Name())
	if err != nil {
		// Helm prefixes the (temporary, meaningless) file name.
		return nil, errors.New(strings.TrimPrefix(err.Error(), "error loading "+f.Name()+": "))
	}
	return idx, nil
}

// archiveURL resolves an index entry's URL. Relative URLs are relative to the repository (the
// mirror when there is one); absolute ones get the mirrors applied too, because indexes often
// point at another host (GitHub releases). hint is the prefix to suggest mirroring.
func (c *call) archiveURL(upstream, eff, raw string) (up, effective, hint string, err error) {
	ref, err := url.Parse(raw)
	if err != nil {
		return "", "", "", err
	}
	if ref.IsAbs() {
		effective, _ = c.f.mirror(raw)
		hint = upstream
		if !strings.HasPrefix(raw, upstream+"/") {
			hint = ref.Scheme + "://" + ref.Host
		}
		return raw, effective, hint, nil
	}
	if up, err = repo.ResolveReferenceURL(upstream, raw); err != nil {
		return "", "", "", err
	}
	if effective, err = repo.ResolveReferenceURL(eff, raw); err != nil {
		return "", "", "", err
	}
	return up, effective, upstream, nil
}

// get downloads a URL with Helm's HTTP getter.
func (c *call) get(u string) ([]byte, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	g, err := getter.NewHTTPGetter(getter.WithURL(u), getter.WithTransport(c.tr), getter.WithTimeout(requestTimeout))
	if err != nil {
		return nil, err
	}
	buf, err := g.Get(u)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func versionError(s Source, upstream string, idx *repo.IndexFile, err error) error {
	if errors.Is(err, repo.ErrNoChartName) {
		return fmt.Errorf("chart %q not found in chart repository %s%s", s.Chart, upstream, where(s.Origin))
	}
	var versions []string
	for _, cv := range idx.Entries[s.Chart] {
		versions = append(versions, cv.Version)
	}
	return fmt.Errorf("chart %s version %q not found in chart repository %s%s: %v; available: %s",
		s.Chart, s.Version, upstream, where(s.Origin), err, listSome(versions))
}

// listSome lists the first versions (indexes are sorted newest first), enough to spot a typo.
func listSome(versions []string) string {
	const max = 10
	if len(versions) == 0 {
		return "none"
	}
	if len(versions) > max {
		return strings.Join(versions[:max], ", ") + fmt.Sprintf(", ... (%d more)", len(versions)-max)
	}
	return strings.Join(versions, ", ")
}

func lockMismatch(s Source, e LockEntry, locked, got string) error {
	return fmt.Errorf("chart %s %s from %s%s: digest %s does not match %s recorded in the chart lock: "+
		"the chart was republished under the same version; if the new content is expected, remove its lock entry",
		e.Chart, e.Version, e.Source, where(s.Origin), got, locked)
}

// normalizeDigest turns an index digest (hex, as Helm writes it) into "sha256:<hex>". Anything
// that is not a sha256 is ignored: it could not be verified anyway.
func normalizeDigest(d string) string {
	d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "sha256:"))
	if !digestRE.MatchString("sha256:" + d) {
		return ""
	}
	return "sha256:" + d
}

func loadArchive(data []byte, e LockEntry, s Source) (*chart.Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("chart %s %s from %s%s: not a valid chart archive: %w", e.Chart, e.Version, e.Source, where(s.Origin), err)
	}
	return ch, nil
}
