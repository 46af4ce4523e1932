package chartsource

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
)

// fetchDir loads a chart from the Git repository (a directory, or an archive checked in) and, for
// a directory, builds its missing dependencies as source-controller does.
//
// Directory charts are not written to the lock: their content is pinned by the same Git commit
// that holds the lock file, Flux builds them from that commit, and a lock entry would turn every
// edit of an in-repository chart (whose version is rarely bumped) into a digest mismatch. Their
// remote dependencies are locked like any repository chart.
func (c *call) fetchDir(s Source) (*Result, error) {
	root := c.f.RepoRoot
	if root == "" {
		return nil, fmt.Errorf("GitRepository chart %s%s: no repository root configured", s.Chart, where(s.Origin))
	}
	if s.Chart == "" || filepath.IsAbs(s.Chart) {
		return nil, fmt.Errorf("GitRepository chart path %q%s: must be a path relative to the repository root", s.Chart, where(s.Origin))
	}
	path := filepath.Join(root, filepath.FromSlash(s.Chart))
	real, err := within(root, path)
	if err == nil {
		err = checkSymlinks(root, real)
	}
	if err != nil {
		return nil, fmt.Errorf("GitRepository chart path %s%s: %w", s.Chart, where(s.Origin), err)
	}
	ch, err := loader.Load(real)
	if err != nil {
		return nil, fmt.Errorf("GitRepository chart %s%s: %w", s.Chart, where(s.Origin), err)
	}
	res := &Result{Chart: ch, Digest: dirDigest(ch)}
	if info, err := os.Stat(real); err == nil && info.IsDir() {
		if res.Lock, err = c.buildDependencies(s, ch, path); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// buildDependencies adds the dependencies declared in Chart.yaml (or pinned in Chart.lock) that
// are not in charts/, like source-controller's DependencyManager: file:// ones are loaded from
// the repository, the others fetched through this Fetcher (mirrors, cache and lock included).
// It returns the lock entries of the fetched remote dependencies.
func (c *call) buildDependencies(s Source, ch *chart.Chart, dir string) ([]LockEntry, error) {
	reqs := ch.Metadata.Dependencies
	if ch.Lock != nil { // source-controller: the lock file takes precedence
		reqs = ch.Lock.Dependencies
	}
	var entries []LockEntry
	for _, dep := range collectMissing(ch.Dependencies(), reqs) {
		fail := func(err error) error {
			return fmt.Errorf("chart %s%s: dependency %q (repository %q): %w", ch.Name(), where(s.Origin), dep.Name, dep.Repository, err)
		}
		if dep.Repository == "" {
			// Flux would resolve an empty repository to the chart's own directory; Helm requires
			// such a dependency to be in charts/. Either way it is missing.
			return nil, fail(errors.New("not in charts/ and no repository to get it from"))
		}
		if strings.HasPrefix(dep.Repository, "file://") {
			sub, err := c.localDependency(dir, dep)
			if err != nil {
				return nil, fail(err)
			}
			ch.AddDependency(sub)
			continue
		}
		u, err := url.Parse(dep.Repository)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "oci") {
			// "@name" and "alias:name" refer to `helm repo add` names, which Flux has no notion of.
			return nil, fail(errors.New("the repository must be a URL (https://, oci:// or file://)"))
		}
		origin := fmt.Sprintf("dependency %s of chart %s", dep.Name, ch.Name())
		if s.Origin != "" {
			origin += ", " + s.Origin
		}
		sub, e, err := c.fetchRepo(Source{Kind: KindHelmRepository, URL: dep.Repository, Chart: dep.Name, Version: dep.Version, Origin: origin})
		if err != nil {
			return nil, err
		}
		ch.AddDependency(sub)
		entries = append(entries, e)
	}
	return entries, nil
}

// collectMissing is source-controller's: dependencies whose name, or alias when set, is not the
// name of a chart in charts/. Its shortcut is kept too: when the counts match nothing is missing.
// Unlike Flux (which ranges over a map) the declared order is kept, so results are deterministic.
func collectMissing(current []*chart.Chart, reqs []*chart.Dependency) []*chart.Dependency {
	if len(current) == len(reqs) {
		return nil
	}
	var missing []*chart.Dependency
	seen := map[string]bool{}
	for _, dep := range reqs {
		if dep == nil {
			continue
		}
		name := dep.Name
		if dep.Alias != "" {
			name = dep.Alias
		}
		found := seen[name]
		for _, existing := range current {
			if existing.Name() == name {
				found = true
			}
		}
		if !found {
			missing = append(missing, dep)
			seen[name] = true
		}
	}
	return missing
}

// localDependency loads a file:// dependency, relative to the chart directory and confined to
// the repository, and checks its version against the declared constraint (as Flux does).
func (c *call) localDependency(dir string, dep *chart.Dependency) (*chart.Chart, error) {
	u, err := url.Parse(dep.Repository)
	if err != nil {
		return nil, err
	}
	// file://../common parses as host ".." and path "/common".
	path := filepath.Join(dir, u.Host, filepath.FromSlash(u.Path))
	real, err := within(c.f.RepoRoot, path)
	if err != nil {
		return nil, err
	}
	constraint, err := semver.NewConstraint(dep.Version)
	if err != nil {
		return nil, fmt.Errorf("invalid version constraint %q: %w", dep.Version, err)
	}
	if err := checkSymlinks(c.f.RepoRoot, real); err != nil {
		return nil, err
	}
	sub, err := loader.Load(real)
	if err != nil {
		return nil, err
	}
	v, err := semver.NewVersion(sub.Metadata.Version)
	if err != nil {
		return nil, fmt.Errorf("chart at %s: version %q: %w", rel(c.f.RepoRoot, real), sub.Metadata.Version, err)
	}
	if !constraint.Check(v) {
		return nil, fmt.Errorf("chart at %s has version %s, which does not satisfy %q", rel(c.f.RepoRoot, real), v, dep.Version)
	}
	return sub, nil
}

// within resolves path and checks that it stays inside root, lexically and after following
// symbolic links: Flux only sees the repository, so a chart reaching outside it would render
// here and fail in the cluster.
func within(root, path string) (string, error) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if !inside(absRoot, abs) {
		return "", fmt.Errorf("%s is outside the repository root %s", abs, absRoot)
	}
	realRoot, err := filepath.EvalSymlinks(absRoot)
	if err != nil {
		return "", fmt.Errorf("repository root: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no chart at %s", rel(absRoot, abs))
	}
	if err != nil {
		return "", err
	}
	if !inside(realRoot, real) {
		return "", fmt.Errorf("%s leads through a symbolic link to %s, outside the repository root", rel(absRoot, abs), real)
	}
	return real, nil
}

// checkSymlinks refuses symbolic links in a chart directory that point outside the repository
// (Helm's loader follows them). Links inside linked directories are not examined.
func checkSymlinks(root, dir string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling: Helm's loader reports it
		}
		if !inside(realRoot, target) {
			return fmt.Errorf("%s is a symbolic link to %s, outside the repository root", rel(realRoot, p), target)
		}
		return nil
	})
}

func inside(root, path string) bool {
	r, err := filepath.Rel(root, path)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && inside(root, path) {
		return r
	}
	return path
}

// dirDigest identifies a chart loaded from the repository: sha256 over its files as Helm loaded
// them (after .helmignore, before dependencies are built), sorted by path, each written as
// path, NUL, size, NUL, content. A packaged archive would not do: Helm stamps tar entries with
// the current time.
func dirDigest(ch *chart.Chart) string {
	files := append([]*chart.File(nil), ch.Raw...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
