package chartsource

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"helm.sh/helm/v3/pkg/registry"

	"github.com/bootcore-dev/bootcore/internal/atomicfile"
)

// cache keeps chart archives on disk, keyed by upstream URL, chart, version and digest. An entry
// is only used after its content is checked against the digest in its key, so a truncated or
// tampered file is a miss, never a wrong chart. An empty dir disables the cache.
//
// Layout: <dir>/<sha256 of key>.tgz, the key's digest being the archive's; and for OCI charts
// pinned by manifest digest (and caches written before the lock held archive digests), the key's
// digest is the manifest's, with <...>.manifest.json next to the archive.
type cache struct{ dir string }

func (c cache) path(e LockEntry, ext string) string {
	sum := sha256.Sum256([]byte(e.key() + "\x00" + e.Digest))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+ext)
}

// verified returns the cached file with extension ext when it hashes to the entry's digest.
func (c cache) verified(e LockEntry, ext string) ([]byte, bool) {
	if c.dir == "" || e.Digest == "" {
		return nil, false
	}
	data, err := os.ReadFile(c.path(e, ext))
	if err != nil || sha256Digest(data) != e.Digest {
		return nil, false
	}
	return data, true
}

// archive returns the cached archive of a chart whose entry's digest is the archive's.
func (c cache) archive(e LockEntry) ([]byte, bool) { return c.verified(e, ".tgz") }

// ociArchive returns the cached chart layer of an OCI chart: the manifest must hash to the
// entry's digest and list a chart layer whose digest matches the cached archive.
func (c cache) ociArchive(e LockEntry) ([]byte, bool) {
	manifest, ok := c.verified(e, ".manifest.json")
	if !ok {
		return nil, false
	}
	data, err := os.ReadFile(c.path(e, ".tgz"))
	if err != nil {
		return nil, false
	}
	if layer, ok := chartLayerDigest(manifest); !ok || layer != sha256Digest(data) {
		return nil, false
	}
	return data, true
}

func (c cache) put(e LockEntry, archive, manifest []byte) error {
	if c.dir == "" {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("chart cache: %w", err)
	}
	// The archive goes first: a manifest without its archive is a miss, so a crash in between
	// leaves nothing that looks complete.
	if err := writeAtomic(c.path(e, ".tgz"), archive); err != nil {
		return err
	}
	if manifest != nil {
		return writeAtomic(c.path(e, ".manifest.json"), manifest)
	}
	return nil
}

// writeAtomic writes so that a concurrent reader (another gen run) sees either nothing or the
// whole file.
func writeAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("chart cache: %w", err)
	}
	return nil
}

func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// chartLayerDigest returns the digest of the Helm chart layer listed in an OCI manifest.
func chartLayerDigest(manifest []byte) (string, bool) {
	var m struct {
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	if json.Unmarshal(manifest, &m) != nil {
		return "", false
	}
	for _, l := range m.Layers {
		if l.MediaType == registry.ChartLayerMediaType || l.MediaType == registry.LegacyChartLayerMediaType {
			return l.Digest, true
		}
	}
	return "", false
}

// DefaultCacheDir is $BOOTCORE_CACHE_DIR, else <user cache dir>/bootcore/charts.
func DefaultCacheDir() string {
	if d := os.Getenv("BOOTCORE_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "bootcore", "charts")
	}
	return filepath.Join(os.TempDir(), "bootcore-charts")
}
