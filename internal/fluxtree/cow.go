package fluxtree

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// cowFS is one walk's copy-on-write view of a repository snapshot shared by the walks of a run
// (WithSnapshot). The snapshot's in-memory file system is never written after it was read: a
// walk writes the kustomization files Flux's generator computes (replaceFile, buildFlat) into
// its own overlay, and every read goes through the overlay first. So walks of different
// clusters, which may run concurrently, see the repository and their own writes only
// (TestSharedSnapshotWalksAreIsolated).
//
// Only files are written through a view (what the walks write); creating or removing
// directories, and Create, are refused rather than half-emulated.
type cowFS struct {
	base filesys.FileSystem // shared, read-only

	mu      sync.Mutex
	files   map[string][]byte // written files, by cleaned absolute path
	removed map[string]bool   // base files removed in this view
}

func newCowFS(base filesys.FileSystem) *cowFS {
	return &cowFS{base: base, files: map[string][]byte{}, removed: map[string]bool{}}
}

// cowKey is the in-memory file system's reading of a path: relative paths are relative to
// its root "/".
func cowKey(p string) string { return filepath.Join(string(filepath.Separator), p) }

// lookup reports what the overlay says about p: its content when written here, gone when
// removed here; neither when the base decides.
func (c *cowFS) lookup(p string) (data []byte, written, gone bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cowKey(p)
	if d, ok := c.files[k]; ok {
		return d, true, false
	}
	return nil, false, c.removed[k]
}

func (c *cowFS) changed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.files) > 0 || len(c.removed) > 0
}

func (c *cowFS) notExist(p string) error {
	return fmt.Errorf("'%s' doesn't exist: %w", p, fs.ErrNotExist)
}

func (c *cowFS) WriteFile(p string, data []byte) error {
	k := cowKey(p)
	if c.base.IsDir(k) {
		return fmt.Errorf("cannot write to directory '%s'", p)
	}
	if !c.base.IsDir(filepath.Dir(k)) {
		return fmt.Errorf("cannot write '%s': its directory is not in the repository snapshot", p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[k] = append([]byte(nil), data...)
	delete(c.removed, k)
	return nil
}

func (c *cowFS) RemoveAll(p string) error {
	k := cowKey(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.files[k]; ok {
		delete(c.files, k)
		if c.base.Exists(k) {
			c.removed[k] = true
		}
		return nil
	}
	if c.removed[k] || !c.base.Exists(k) {
		return nil
	}
	if c.base.IsDir(k) {
		return fmt.Errorf("cannot remove directory '%s' from a shared repository snapshot", p)
	}
	c.removed[k] = true
	return nil
}

func (c *cowFS) ReadFile(p string) ([]byte, error) {
	if d, written, gone := c.lookup(p); written {
		return append([]byte(nil), d...), nil
	} else if gone {
		return nil, c.notExist(p)
	}
	return c.base.ReadFile(p)
}

func (c *cowFS) Exists(p string) bool {
	if _, written, gone := c.lookup(p); written || gone {
		return written
	}
	return c.base.Exists(p)
}

func (c *cowFS) IsDir(p string) bool {
	if _, written, gone := c.lookup(p); written || gone {
		return false
	}
	return c.base.IsDir(p)
}

func (c *cowFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	if _, written, gone := c.lookup(p); written {
		k := cowKey(p)
		return filesys.ConfirmedDir(filepath.Dir(k)), filepath.Base(k), nil
	} else if gone {
		return "", "", c.notExist(p)
	}
	return c.base.CleanedAbs(p)
}

func (c *cowFS) ReadDir(p string) ([]string, error) {
	names, err := c.base.ReadDir(p)
	if err != nil || !c.changed() {
		return names, err
	}
	dir := cowKey(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := names[:0:0]
	for _, n := range names {
		if !c.removed[filepath.Join(dir, n)] {
			out = append(out, n)
		}
	}
	for k := range c.files {
		if filepath.Dir(k) == dir && !slices.Contains(out, filepath.Base(k)) {
			out = append(out, filepath.Base(k))
		}
	}
	return out, nil
}

func (c *cowFS) Glob(pattern string) ([]string, error) {
	matches, err := c.base.Glob(pattern)
	if err != nil || !c.changed() {
		return matches, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := matches[:0:0]
	for _, m := range matches {
		if !c.removed[cowKey(m)] {
			out = append(out, m)
		}
	}
	for k := range c.files {
		if ok, _ := filepath.Match(pattern, k); ok && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Walk walks the base while this view has not changed it (kustomize builds do not walk).
func (c *cowFS) Walk(p string, walkFn filepath.WalkFunc) error {
	if c.changed() {
		return fmt.Errorf("cannot walk '%s': this view of the repository snapshot has written files", p)
	}
	return c.base.Walk(p, walkFn)
}

// Open reads the file into a private in-memory file system: opening a node of the shared
// snapshot would mark it open for every walk.
func (c *cowFS) Open(p string) (filesys.File, error) {
	data, err := c.ReadFile(p)
	if err != nil {
		return nil, err
	}
	private := filesys.MakeFsInMemory()
	k := cowKey(p)
	if err := private.WriteFile(k, data); err != nil {
		return nil, err
	}
	return private.Open(k)
}

func (c *cowFS) Create(p string) (filesys.File, error) {
	return nil, fmt.Errorf("cannot create '%s' in a shared repository snapshot (WriteFile only)", p)
}

func (c *cowFS) Mkdir(p string) error { return c.MkdirAll(p) }

func (c *cowFS) MkdirAll(p string) error {
	if c.IsDir(p) {
		return nil
	}
	return fmt.Errorf("cannot create directory '%s' in a shared repository snapshot", p)
}
